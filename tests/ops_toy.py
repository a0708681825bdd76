"""A new op written the way an op author would (one file + one registry line), for tests/test_ops.py:
predictions on the reverse complement of every region, optionally averaged with the forward strand."""
from kipoi_tanger.ops.base import Op, Param, name_outputs


class RcPredict(Op):
    """The model's predictions on the reverse complement of every region."""

    name = "rc-predict"
    help = "predictions on the reverse complement of every region"
    params = (Param("average", False, "average with the forward strand's predictions", kind="flag"),)

    @property
    def view(self):
        return "canonical"          # (N, A, L) one-hot: flip A and L for the reverse complement (ACGT order)

    @property
    def writes_tables(self):
        return True

    def function(self):
        from kipoi_tanger.predict import predict

        def rc_predict(model, X, args=None, average=False, **kwargs):
            y = predict(model, X.flip(1).flip(2), args=args, **kwargs)
            return (y + predict(model, X, args=args, **kwargs)) / 2 if average else y

        return rc_predict, {"average": self.values["average"]}

    def result_names(self):
        return self._ctx.target.spec.prediction_names

    def name_outputs(self, y):
        return name_outputs("preds", y, self.result_names())
