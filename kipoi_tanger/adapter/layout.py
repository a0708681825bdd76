"""How one example of a model's sequence input is laid out, and the mapping to
and from tangermeme's canonical one-hot ``(N, A, L)``.

One spelling everywhere (model.yaml's tanger section, ``info``, file
attributes, the shared dataloaders' ``layout`` argument): the non-batch axes in
parentheses, ``"(A, L)"``, ``"(L, A)"``, ``"(A, L, 1)"``, ``"(L)"`` for integer
tokens. :meth:`Layout.parse` is the single parser of that grammar (it also
reads the compact ``"AL1"`` / ``"A L 1"`` forms and lists of axis names).

**Channel order.** Ops see DNA in one order, A, C, G, T (:func:`canonical_alphabet`),
whatever order the model's one-hot channels (or token values) follow: a layout
may carry a channel permutation (:meth:`Layout.with_alphabet`) that
:meth:`Layout.to_model` and :meth:`Layout.from_model` apply, so that, for a
model fed AGCT (DeepSEA/beluga's dataloader), a motif inserted as ``GATAAG`` in
canonical order reaches the model as ``GATAAG``, and attributions come back in
ACGT order. ``str(layout)`` names the axes only; the model's own alphabet is
recorded next to it (``model_alphabet``).

:func:`kipoiseq_layout` is kipoiseq's ``ReorderedOneHot`` axis rule
(``alphabet_axis``, ``dummy_axis``) as a :class:`Layout`. No Kipoi import here:
dataloaders may use this module on its own.
"""
from typing import Optional, Sequence, Tuple, Union

from .errors import AdapterError

__all__ = ["Layout", "infer_layout", "format_shape", "DNA", "canonical_alphabet", "kipoiseq_layout"]

DNA = ("A", "C", "G", "T")


def canonical_alphabet(alphabet: Sequence[str]) -> Tuple[str, ...]:
    """The channel order ops work in for a model whose one-hot follows ``alphabet``.

    ``A, C, G, T`` for any ordering of those four letters (DeepSEA/beluga's
    ``AGCT`` included); any other alphabet keeps its own order.

    Parameters
    ----------
    alphabet : sequence of str
        The model's alphabet, in the order of its one-hot channels / token values.

    Returns
    -------
    tuple of str
    """
    alphabet = tuple(alphabet)
    return DNA if sorted(alphabet) == sorted(DNA) else alphabet


def format_shape(shape: Sequence) -> str:
    """``(4, None)`` style text of a schema shape (``None`` = any size)."""
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


class Layout:
    """How one example of the model's sequence input is laid out.

    ``axes`` names every non-batch axis: ``'A'`` (alphabet), ``'L'`` (length),
    ``'1'`` (a size-1 dummy axis). ``('L',)`` means integer tokens (index into
    the alphabet) rather than one-hot.

    Parameters
    ----------
    axes : sequence of str
        E.g. ``('L', 'A')`` for ``(L, 4)`` inputs, ``('A', 'L', '1')`` for Basset's
        ``(4, 600, 1)``.
    order : sequence of int, optional
        Channel permutation: canonical channel ``i`` is the model's channel
        ``order[i]`` (see :meth:`with_alphabet`); None = the same order.
    """

    def __init__(self, axes: Sequence[str], order: Optional[Sequence[int]] = None):
        axes = tuple(str(a).upper() for a in axes)
        if any(a not in ("A", "L", "1") for a in axes):
            raise AdapterError(f"layout: axes must be A, L or 1, got {axes}")
        if axes.count("L") != 1 or axes.count("A") > 1:
            raise AdapterError(f"layout: needs exactly one L axis and at most one A axis, got {axes}")
        self.axes = axes
        self.tokens = "A" not in axes
        if self.tokens and len(axes) != 1:
            raise AdapterError(f"layout: integer tokens take the form (L), got {axes}")
        # position of every canonical axis in the model's layout (batch = 0)
        names = self._named(axes)
        self._canon = ["A", "L"] + [n for n in names if n.startswith("1")]
        self._to_model = [0] + [1 + self._canon.index(n) for n in names] if not self.tokens else None
        self._from_model = ([0] + [1 + names.index(n) for n in self._canon]) if not self.tokens else None
        self._n_dummy = axes.count("1")
        self.order = None
        self._inverse = None
        if order is not None:
            order = tuple(int(i) for i in order)
            if sorted(order) != list(range(len(order))):
                raise AdapterError(f"layout: channel order {order} is not a permutation of 0..{len(order) - 1}")
            if order != tuple(range(len(order))):
                self.order = order
                inv = [0] * len(order)
                for i, j in enumerate(order):
                    inv[j] = i
                self._inverse = tuple(inv)

    def with_alphabet(self, model_alphabet: Sequence[str]) -> "Layout":
        """This layout mapping the canonical channel order (:func:`canonical_alphabet`) to
        and from ``model_alphabet``, the order of the model's one-hot channels / token values."""
        model_alphabet = tuple(model_alphabet)
        canon = canonical_alphabet(model_alphabet)
        return Layout(self.axes, [model_alphabet.index(c) for c in canon])

    @staticmethod
    def _named(axes):
        out, k = [], 0
        for a in axes:
            if a == "1":
                out.append(f"1{k}")
                k += 1
            else:
                out.append(a)
        return out

    @classmethod
    def parse(cls, value: Union[str, Sequence[str]]) -> "Layout":
        """Parse ``"(A, L, 1)"`` (also ``"A L 1"``, ``"AL1"`` or a list of axis names)."""
        if isinstance(value, Layout):
            return value
        if isinstance(value, (list, tuple)):
            return cls([str(v) for v in value])
        if not isinstance(value, str):
            raise AdapterError(f"layout: expected a string such as \"(L, A)\", got {value!r}")
        s = value.strip().strip("()[]").replace(",", " ")
        parts = s.split()
        if len(parts) == 1 and len(parts[0]) > 1:
            parts = list(parts[0])
        if not parts:
            raise AdapterError(f"layout: empty layout {value!r}; expected e.g. \"(L, A)\"")
        return cls(parts)

    def __str__(self):
        return "(" + ", ".join(self.axes) + ")"

    def __repr__(self):
        return f"Layout({str(self)!r}" + (f", order={self.order}" if self.order else "") + ")"

    def __eq__(self, other):
        return isinstance(other, Layout) and other.axes == self.axes and other.order == self.order

    def __hash__(self):
        return hash((self.axes, self.order))

    def shape(self, length: Optional[int], alphabet_size: int = 4) -> Tuple[Optional[int], ...]:
        """One example's shape in this layout (``None`` length stays ``None``)."""
        return tuple(length if a == "L" else alphabet_size if a == "A" else 1 for a in self.axes)

    def to_model(self, X):
        """Canonical ``(N, A, L)`` one-hot (canonical channel order) → the model's layout and order."""
        if self._inverse is not None:
            X = X[:, list(self._inverse)]
        if self.tokens:
            return X.argmax(dim=1)
        t = X
        for _ in range(self._n_dummy):
            t = t.unsqueeze(-1)
        return t.permute(*self._to_model)

    def from_model(self, x, alphabet_size: int = 4):
        """The model's layout and channel order → canonical ``(N, A, L)`` (one-hot for tokens)."""
        import torch
        if self.order is not None and len(self.order) != alphabet_size:
            raise AdapterError(f"layout: channel order {self.order} is for {len(self.order)} letters, "
                               f"not {alphabet_size}")
        if self.tokens:
            x = torch.as_tensor(x).long()
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= alphabet_size):
                raise AdapterError(f"sequence input: token values must lie in [0, {alphabet_size}) to "
                                   f"map onto the alphabet, got [{int(x.min())}, {int(x.max())}]")
            t = torch.nn.functional.one_hot(x, alphabet_size).permute(0, 2, 1).float()
        else:
            x = torch.as_tensor(x)
            t = x.permute(*self._from_model)
            t = t.reshape(t.shape[0], t.shape[1], t.shape[2])
        if self.order is not None:
            t = t[:, list(self.order)]
        return t

    def length_axis(self) -> int:
        """Index of the L axis among the non-batch axes."""
        return self.axes.index("L")


def kipoiseq_layout(alphabet_axis=1, dummy_axis=None, where: str = "dataloader") -> Layout:
    """The layout kipoiseq's one-hot (``SeqIntervalDl``, ``ReorderedOneHot``) yields.

    Mirrors ``ReorderedOneHot.get_output_shape``: start from ``(L, A)``, insert a
    dummy axis at ``dummy_axis``, then swap the alphabet axis into
    ``alphabet_axis``: ``(0, None)`` → ``(A, L)``, ``(0, 1)`` → ``(A, 1, L)``
    (DeepSEA), ``(0, 2)`` → ``(A, L, 1)`` (Basset), ``(1, None)`` → ``(L, A)``.

    Parameters
    ----------
    alphabet_axis : int, default 1
    dummy_axis : int or None, default None
    where : str
        What to name in error messages (e.g. ``"model.yaml default_dataloader.default_args"``).

    Returns
    -------
    Layout
    """
    def axis(v, name, allow_none):
        if v is None and allow_none:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 2:
            raise AdapterError(f"{where}: {name}: expected 0, 1 or 2{' or null' if allow_none else ''}, got {v!r}")
        return v

    a, d = axis(alphabet_axis, "alphabet_axis", False), axis(dummy_axis, "dummy_axis", True)
    if d is not None and d == a:
        raise AdapterError(f"{where}: alphabet_axis and dummy_axis are both {a}; kipoiseq needs them to differ")
    if a == 2 and d is None:
        raise AdapterError(f"{where}: alphabet_axis 2 needs a dummy_axis (one example has 2 axes without one)")
    axes = ["L", "A"]
    if d is not None:
        axes.insert(d, "1")
    existing = 2 if d is not None and d < 2 else 1
    if a != existing:
        axes[a], axes[existing] = axes[existing], axes[a]
    return Layout(axes)


def infer_layout(shape: Optional[Sequence], alphabet_size: int = 4) -> Tuple[Optional[Layout], Optional[str]]:
    """Infer a :class:`Layout` from a schema shape (batch axis excluded).

    Returns
    -------
    tuple
        ``(layout, None)`` or ``(None, reason)``.
    """
    if shape is None:
        return None, "the schema gives no shape"
    shape = tuple(shape)
    four = [i for i, s in enumerate(shape) if s == alphabet_size]
    if len(four) != 1:
        return None, (f"shape {format_shape(shape)} has {'no' if not four else 'several'} axes of "
                      f"size {alphabet_size}")
    axes = []
    for i, s in enumerate(shape):
        if i == four[0]:
            axes.append("A")
        elif s == 1:
            axes.append("1")
        else:
            axes.append("L")
    if axes.count("L") != 1:
        return None, f"shape {format_shape(shape)} has no single length axis"
    return Layout(axes), None
