"""Read the printed tensors of the seed tutorials (copied into tests/data).

Cells are marked ``In [N]:`` (seed 000) or ``[N]:`` (seed 001, where the
marker repeats before the output). The printed outputs of cell N are all
``tensor(...)``/``torch.Size(...)`` texts between its first marker and the
first marker of another cell.
"""
import os
import re

import torch

DATA = os.path.join(os.path.dirname(__file__), 'data')
_MARK = re.compile(r'^(?:In )?\[(\d+)\]:\s*$', re.M)


def _cells(text):
    marks = [(m.start(), m.end(), int(m.group(1))) for m in _MARK.finditer(text)]
    cells = {}
    for i, (_, end, n) in enumerate(marks):
        j = i + 1
        while j < len(marks) and marks[j][2] == n:
            j += 1
        stop = marks[j][0] if j < len(marks) else len(text)
        cells.setdefault(n, text[end:stop])
    return cells


def _balanced(text, start):
    depth = 0
    for i in range(start, len(text)):
        if text[i] == '(':
            depth += 1
        elif text[i] == ')':
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    raise ValueError("unbalanced parentheses in seed output")


def printed(seed_file, cell):
    """Printed tensors (as torch tensors) and sizes (as tuples) of one cell, in order."""
    with open(os.path.join(DATA, seed_file)) as f:
        body = _cells(f.read())[cell]
    out = []
    for m in re.finditer(r'tensor\(|torch\.Size\(', body):
        chunk = _balanced(body, m.end() - 1)
        if m.group(0).startswith('tensor'):
            values = chunk[1:-1].split(', grad_fn')[0]
            out.append(torch.tensor(eval(values, {})))
        else:
            out.append(tuple(eval(chunk, {})))
    return out
