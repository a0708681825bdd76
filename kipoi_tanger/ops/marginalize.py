"""``marginalize`` over a Kipoi model: :func:`kipoi_tanger.marginalize.marginalize`
with an inner op (predict or deeplift-shap), written as ``y_before`` and
``y_after`` (``y_before/<name>`` for several outputs).

The motif is written into the canonical one-hot (A, C, G, T for DNA) and
reaches the model in its own channel order and layout (the dataloader's, e.g.
DeepSEA/beluga's AGCT: :mod:`kipoi_tanger.adapter.layout`), so ``--motif
GATAAG`` inserts GATAAG whatever that order; its length and ``--start`` are
checked against the sequence length the schema or the dataloader's arguments
give. With ``--op deeplift-shap`` the inner op's first-batch check and declared
rules apply (:mod:`kipoi_tanger.ops.deeplift_shap`)."""
from .base import OpError, Param, Perturbation, name_outputs


class Marginalize(Perturbation):
    """The inner op's results before and after inserting a motif into every region."""

    name = "marginalize"
    help = "predictions/attributions before and after inserting a motif"
    params = (
        Param("motif", None, "motif to insert, e.g. GATAAG (N keeps the base)", required=True),
        Param("start", None, "insert position (default: centred)", kind="int", minimum=0,
              expect="a non-negative integer position"),
    )
    inner_help = "what to compute before and after inserting the motif (default predict)"

    def check(self, target) -> None:
        spec = target.spec
        motif = self.values["motif"]
        if not motif or not isinstance(motif, str):
            raise OpError("--motif: give the motif to insert, e.g. --motif GATAAG")
        bad = sorted({c for c in motif if c not in spec.alphabet and c != "N"})
        if bad:
            raise OpError(f"--motif: {motif!r} has characters {''.join(bad)!r} outside the alphabet "
                          f"{''.join(spec.alphabet)} (N keeps the original base)")
        super().check(target)
        start, L = self.values["start"], spec.sequence_length
        if L is not None and len(motif) > L:
            raise OpError(f"--motif: {len(motif)} characters do not fit sequences of length {L}")
        if L is not None and start is not None and start > L - len(motif):
            raise OpError(f"--start: {start} puts the {len(motif)}-character motif past the end of sequences of "
                          f"length {L}; expected 0 to {L - len(motif)}")

    def function(self):
        from ..marginalize import marginalize
        func, kwargs = self.inner.function()
        return marginalize, dict(kwargs, motif=self.values["motif"], start=self.values["start"],
                                 alphabet=list(self._ctx.target.spec.alphabet), func=func)

    def name_outputs(self, y):
        before, after = y[0], y[1]
        names = self.inner.result_names()
        out = name_outputs("y_before", before, names)
        out.update(name_outputs("y_after", after, names))
        return out
