"""``predict`` over a Kipoi model: :func:`kipoi_tanger.predict.predict` on the
model's own inputs, written as ``preds`` (``preds/<name>`` or ``preds/<i>`` for
several outputs), as ``kipoi predict`` writes them."""
from typing import Optional

from .base import Op, name_outputs


class Predict(Op):
    """The model's predictions on every region of its dataloader.

    On its own it calls the model on its own inputs (any dtype, tokens
    included, the sequence input need not be known); nested (e.g. in
    marginalize) it runs on canonical ``(N, A, L)`` sequences.
    """

    name = "predict"
    help = "predictions of the model on the dataloader's regions"
    declare_when_nested = False     # forward passes: what every op runs

    @property
    def view(self) -> str:
        return "raw" if self.top else "canonical"

    @property
    def writes_tables(self) -> bool:
        return True

    @property
    def groupable(self) -> bool:
        return True

    def function(self):
        from ..predict import predict
        return predict, {}

    def result_names(self) -> Optional[list]:
        return self._ctx.target.spec.prediction_names

    def name_outputs(self, y):
        if self.top and not getattr(self, "_outputs_checked", False):
            from ..adapter.schema_check import check_outputs
            check_outputs(self._ctx.target, y)      # the first batch, before it is written
            self._outputs_checked = True
        return name_outputs("preds", y, self.result_names())
