"""README.md runs as written: every fenced ``bash`` and ``python`` block, in order, in one temporary
directory, with a throwaway HOME, in the venv where the wheel of this tree is installed (as a user who
ran ``pip install .``; tests/wheel_env.py). A block that cannot run there is marked by
``<!-- not run: REASON -->`` on the line right above it and is reported as skipped with its reason;
an unmarked block that fails fails the test with its output."""
import os
import re
import subprocess

import pytest

import wheel_env

README = os.path.join(wheel_env.REPO, "README.md")
RUN_LANGS = ("bash", "python")
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARK = re.compile(r"^<!--\s*not run:\s*(.*?)\s*-->\s*$")


def readme_blocks(text):
    """``[(line number, language, code, not-run reason or None)]`` of every fenced block."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or not m.group(1):
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        mark = _MARK.match(prev)
        blocks.append((i + 1, m.group(1), "\n".join(lines[i + 1:j]) + "\n", mark.group(1) if mark else None))
        i = j + 1
    return blocks


with open(README, encoding="utf-8") as _fh:
    _TEXT = _fh.read()
BLOCKS = [b for b in readme_blocks(_TEXT) if b[1] in RUN_LANGS]


def test_markers_name_a_reason_and_sit_on_a_block():
    marked = {b[0] for b in readme_blocks(_TEXT) if b[3] is not None}
    lines = _TEXT.splitlines()
    for n, line in enumerate(lines, 1):
        if "not run" in line and line.lstrip().startswith("<!--"):
            m = _MARK.match(line)
            assert m and m.group(1), f"README.md:{n}: expected <!-- not run: REASON -->, got {line!r}"
            nxt = next(k for k in range(n, len(lines)) if lines[k].strip()) + 1
            assert nxt in marked, f"README.md:{n}: a not-run marker must sit right above a fenced block"
    assert sum(b[3] is None for b in BLOCKS) >= 6     # the README is mostly run, not mostly marked


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    work, home = tmp_path_factory.mktemp("readme"), tmp_path_factory.mktemp("home")
    bin_dir = wheel_env.session_venv()["bin"]
    return {"cwd": str(work), "env": wheel_env.user_env(bin_dir, str(home)), "python": os.path.join(bin_dir, "python")}


@pytest.mark.parametrize("line, lang, code, reason", BLOCKS, ids=[f"README.md:{b[0]}-{b[1]}" for b in BLOCKS])
def test_readme_block(session, line, lang, code, reason):
    if reason is not None:
        pytest.skip(f"not run: {reason}")
    cmd = ["bash", "-e", "-o", "pipefail", "-c", code] if lang == "bash" else [session["python"], "-c", code]
    r = subprocess.run(cmd, cwd=session["cwd"], env=session["env"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (f"README.md:{line} ({lang} block) exited with {r.returncode}:\n{code}\n"
                               f"--- stdout\n{r.stdout[-3000:]}\n--- stderr\n{r.stderr[-3000:]}")
