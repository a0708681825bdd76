"""Build keras_motif's Keras 2 model from known motifs (no training) and write its files.

    python make_model.py            # model.json, weights.h5, test.expect.h5 next to this script
    python make_model.py --out DIR  # model.json and weights.h5 into DIR (no test.expect.h5)

The weights are constructed, not trained, so they are the same bit for bit on
every machine (float32 values computed in float64 from the constants below):

* ``motif_scan``: Conv1D(3 filters, width 6) + ReLU. Filters are log-odds
  position weight matrices (consensus base probability 0.85, other bases 0.05,
  against a uniform background) of GATA ``GATAAG``, its reverse complement
  ``CTTATC`` and the E-box ``CAGCTG``; the bias ``-THRESHOLD`` makes an exact
  match score ``6 log(0.85/0.25) - 5 = 2.34`` and anything with a mismatch 0.
* ``best_match``: GlobalMaxPooling1D, the best match of each filter.
* ``logits``: Dense(2): ``GAIN * (gata_fwd + gata_rev) + OFFSET`` and
  ``GAIN * ebox + OFFSET``; ``binding_prob``: sigmoid.

So an exact GATA (either strand) gives P(GATA) = sigmoid(3 * 2.34 - 3) = 0.98,
no match gives sigmoid(-3) = 0.047; likewise for the E-box.

Needs the Keras 2 API (``pip install tf-keras``) for writing the files; Kipoi
loads them with ``kipoi_tanger.KerasModel``.
"""
import argparse
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SEQ_LEN = 200
MOTIFS = ("GATAAG", "CTTATC", "CAGCTG")     # filter order: GATA +, GATA -, E-box
P_MATCH, P_OTHER = 0.85, 0.05
THRESHOLD = 5.0
GAIN, OFFSET = 3.0, -3.0


def conv_weights():
    """Conv1D kernel (6, 4, 3) and bias (3,) in Keras' layout, float32."""
    lo_match, lo_other = np.log(P_MATCH / 0.25), np.log(P_OTHER / 0.25)
    kernel = np.full((6, 4, len(MOTIFS)), lo_other)
    for f, motif in enumerate(MOTIFS):
        for i, base in enumerate(motif):
            kernel[i, "ACGT".index(base), f] = lo_match
    return kernel.astype(np.float32), np.full(len(MOTIFS), -THRESHOLD, np.float32)


def dense_weights():
    w = np.array([[GAIN, 0.0], [GAIN, 0.0], [0.0, GAIN]], np.float32)
    return w, np.full(2, OFFSET, np.float32)


def build(keras):
    """The Keras 2 model with its constructed weights."""
    L = keras.layers
    model = keras.Sequential([
        keras.Input((SEQ_LEN, 4), name="seq"),
        L.Conv1D(len(MOTIFS), 6, activation="relu", name="motif_scan"),
        L.GlobalMaxPooling1D(name="best_match"),
        L.Dense(2, name="logits"),
        L.Activation("sigmoid", name="binding_prob")], name="keras_motif")
    model.get_layer("motif_scan").set_weights(list(conv_weights()))
    model.get_layer("logits").set_weights(list(dense_weights()))
    return model


def write_model(out):
    from kipoi_tanger.frameworks.keras import import_keras
    model = build(import_keras())
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.json"), "w") as fh:
        fh.write(model.to_json())
    model.save_weights(os.path.join(out, "weights.h5"))
    return model


def write_expect(model_dir=HERE, batch_size=32):
    """test.expect.h5 through Kipoi's own `kipoi test -o` pipeline (inputs + preds)."""
    import kipoi
    path = os.path.join(model_dir, "test.expect.h5")
    if os.path.exists(path):
        os.remove(path)
    cwd = os.getcwd()
    try:
        kipoi.get_model(model_dir, source="dir").pipeline.predict_example(
            batch_size=batch_size, output_file=path)
    finally:
        os.chdir(cwd)
    return path


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None, help="write model.json + weights.h5 here (default: this dir, "
                                               "with test.expect.h5)")
    a = p.parse_args()
    write_model(a.out or HERE)
    print("wrote", os.path.join(a.out or HERE, "model.json"), "and weights.h5")
    if a.out is None:
        print("wrote", write_expect())
