"""``deeplift-shap`` over a Kipoi model: :func:`kipoi_tanger.deep_lift_shap.deep_lift_shap`
on canonical ``(N, A, L)`` sequences, explaining one (reduced) output, written
as ``attributions`` ``(N, A, L)``, ``convergence_deltas`` ``(N,)`` and, on
request, ``references`` ``(N, K, A, L)``, channels in the canonical order
(A, C, G, T for DNA, whatever the model's one-hot order; the file's
``alphabet`` attribute).

Never silently wrong: the rules declared under ``postprocessing: tanger:
deeplift_rules`` reach every call, and the first call of a run (this op's, or
the one a marginalize/product/ablate/space op makes through :meth:`function`)
first runs :func:`~kipoi_tanger.deep_lift_shap.explain_check` on the same
model, sequences, arguments and settings. A model refused by name, or first
batch whose convergence deltas exceed ``--warning_threshold``, stops the run
before anything is written (one line naming the suspects), unless
``--accept_large_deltas`` is given (then recorded in the file's parameters).
The Python ``deep_lift_shap`` keeps warning instead, as tangermeme does.
"""
import functools

import numpy as np

from ..adapter.errors import AdapterError
from .base import Op, OpError, Param, to_numpy

#: keywords of deep_lift_shap that explain_check takes as well
_CHECK_KEYS = ("target", "batch_size", "references", "n_shuffles", "warning_threshold", "additional_nonlinear_ops",
               "dtype", "device", "random_state", "prune")
_YAML_HINT = "in model.yaml, declare rules under postprocessing: tanger: deeplift_rules ({class: rule name})"


class DeepLiftShap(Op):
    """DeepLIFT/SHAP attributions of one model output against dinucleotide-shuffled references.

    References follow tangermeme's seed contract (reference k of every region
    is drawn with seed ``random_state + k``), so they depend on the region
    only, never on its batch or shard.
    """

    name = "deeplift-shap"
    help = "DeepLIFT/SHAP attributions (N, A, L)"
    params = (
        Param("output", None, "model output to explain (default: postprocessing: tanger: output, or inferred)",
              kind="any", metavar="NAME|INDEX"),
        Param("target", None, "target (index or column label) of that output (default 0)", kind="any"),
        Param("n_shuffles", 20, "dinucleotide-shuffled references per region", kind="int", minimum=1),
        Param("random_state", None, "seed of the references (default: drawn once and recorded in the file)",
              kind="int", minimum=0),
        Param("hypothetical", False, "write hypothetical attributions", kind="flag"),
        Param("warning_threshold", 0.001, "warn when a convergence delta exceeds this (default 0.001)",
              kind="float", minimum=0),
        Param("pair_batch_size", None, "example-reference pairs per DeepLIFT forward/backward chunk "
              "(default: --batch_size); results do not depend on it", kind="int", minimum=1, record=False),
        Param("return_references", False, "also write the references (N, K, A, L)", kind="flag", top_only=True),
        Param("accept_large_deltas", False, "write the attributions even when the first batch's convergence "
              "deltas exceed --warning_threshold (recorded in the file's parameters)", kind="flag", record=False),
    )
    needs_graph = True
    explains = True

    @property
    def view(self) -> str:
        return "explain"

    def chunk(self) -> int:
        return self.values["pair_batch_size"] or self._ctx.batch_size

    def check(self, target) -> None:
        # the model's output and target first: their errors name the model
        self.resolved["output"] = target.resolve_output(self.values["output"])
        self.resolved["target"] = target.resolve_target(self.values["target"], self.values["output"])
        super().check(target)

    def record(self, into: dict) -> None:
        super().record(into)
        into["output"], into["target"] = self.resolved["output"], self.resolved["target"]
        if self.values["pair_batch_size"] is not None:
            into["pair_batch_size"] = self.values["pair_batch_size"]
        if self.values["accept_large_deltas"]:
            into["accept_large_deltas"] = True

    def function(self):
        from ..deep_lift_shap import deep_lift_shap
        v = self.values
        kwargs = {"target": self.resolved["target"], "n_shuffles": v["n_shuffles"],
                  "hypothetical": v["hypothetical"], "random_state": v["random_state"],
                  "warning_threshold": v["warning_threshold"]}
        rules = self._ctx.target.deeplift_rules if self._ctx is not None else None
        if rules:
            kwargs["additional_nonlinear_ops"] = rules

        @functools.wraps(deep_lift_shap)
        def checked(model, X, *a, **kw):
            if self._ctx is not None and getattr(self, "_checked_ctx", None) is not self._ctx:
                self._first_batch_check(model, X, kw.get("args", a[0] if a else None), kw)
                self._checked_ctx = self._ctx
            return deep_lift_shap(model, X, *a, **kw)

        return checked, kwargs

    def _first_batch_check(self, model, X, args, kw):
        """Refuse (one line, before anything is written) attributions that do not add up on the first batch."""
        from ..deep_lift_shap import explain_check
        try:
            rep = explain_check(model, X, args=args, **{k: kw[k] for k in _CHECK_KEYS if k in kw})
        except ValueError as e:
            msg = " ".join(str(e).split())
            raise AdapterError(f"{msg}; {_YAML_HINT}" if "additional_nonlinear_ops" in msg else msg) from None
        if not rep.ok and not self.values["accept_large_deltas"]:
            raise OpError(f"{rep.message}; nothing written: pass --accept_large_deltas to write them anyway "
                          "(recorded in the file's parameters), or raise --warning_threshold")

    def name_outputs(self, y):
        return {"attributions": to_numpy(y)}

    def compute(self, items):
        ctx = self._ctx
        X, args, keys = ctx.inputs(items, canonical=True)
        w = ctx.wrap("explain", keys, arg_dtypes=[a.dtype for a in args], output=self.resolved["output"])
        func, kwargs = self.function()
        attr, refs = func(w, X, args=args or None, return_references=True, verbose=False, **kwargs,
                          **ctx.common(self.chunk()))[:2]
        out = {"attributions": to_numpy(attr)}
        if self.values["return_references"]:
            out["references"] = to_numpy(refs).astype(np.int8)
        out["convergence_deltas"] = self._deltas(w, X, args, attr, refs)
        return out

    def _deltas(self, w, X, args, attr, refs):
        """Per-region completeness gap: sum(attr) - (f(x) - mean_k f(ref_k)) for the target."""
        import torch
        from ..predict import predict
        B, K = refs.shape[0], refs.shape[1]
        Xall = torch.cat([X.to(refs.dtype), refs.reshape(B * K, *refs.shape[2:])])
        aall = [torch.cat([a, a.repeat_interleave(K, dim=0)]) for a in args]
        y = predict(w, Xall, args=aall or None, **self._ctx.common()).float()
        y = y.reshape(y.shape[0], -1)[:, self.resolved["target"]]
        fx, fr = y[:B], y[B:].reshape(B, K).mean(dim=1)
        obs = attr * X if self.values["hypothetical"] else attr
        return to_numpy(obs.float().sum(dim=(1, 2)) - (fx - fr))
