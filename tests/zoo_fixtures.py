"""Kipoi model dirs in the real zoo's own formats (non-PyTorch), written into a test's tmp dir.

Facts from the kipoi/models repository (see /work/shared/notes/kipoi-zoo-formats.md); weights are
our own, drawn from seeded numpy generators so every dir is the same on every machine:

* ``make_deepbind_dir``: DeepBind-shaped ``type: keras`` model: ``args: {arch: model.json,
  weights: weights.h5, custom_objects: custom_keras_objects.py (OBJECTS = {"tf": tf}), backend:
  tensorflow, image_dim_ordering: tf}``, ``default_dataloader: kipoiseq SeqIntervalDl`` with
  ``auto_resize_len: 101``, schema ``(101, 4)`` -> ``binding_prob (1,)``. The architecture JSON is
  written in the Keras 2.0 layout of the zoo's files (``config`` is a list of layers, no
  ``module``/``build_config`` keys). ``lambda_layer=True`` adds a reverse-complement Lambda
  (using ``tf`` from the custom objects) whose two strands share the convolution.
* ``make_pwm_dir``: pwm_HOCOMOCO-shaped: only ``weights: model.h5`` (a whole-model HDF5 whose
  ``model_config`` is in the Keras 2.0 layout too), schema ``(None, 4)`` (any length) ->
  ``pwm_match (1,)``: best log-odds match of a PWM on either strand.
* ``make_sklearn_dir``: ``type: sklearn``, ``args: {pkl_file, predict_method: predict_proba}``,
  a logistic regression on normalised 3-mer counts, fitted on simulated GATA / no-GATA sequences;
  a model-local dataloader computes the k-mers from BED + FASTA.
* ``make_custom_dir``: ``defined_as: model.MyModel`` (``args: {}``), a numpy PWM scorer, over
  SeqIntervalDl (``auto_resize_len: 50``).

Each dir has ``example_files/genome.fa`` and ``example_files/intervals.bed``;
:func:`example_dl_args` gives the dataloader arguments for them.
"""
import json
import os
import textwrap

import numpy as np
import yaml

from kipoi_model_dirs import write_bed, write_genome

INFO = {"authors": [{"name": "kipoi_tanger tests"}], "doc": "zoo-format test fixture", "version": "0.1"}
GATA_PWM = np.array([  # GATAAG with a little of everything else; rows A, C, G, T
    [0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05], [0.05, 0.05, 0.05, 0.85],
    [0.85, 0.05, 0.05, 0.05], [0.80, 0.05, 0.10, 0.05], [0.10, 0.05, 0.80, 0.05],
    [0.25, 0.25, 0.25, 0.25], [0.30, 0.20, 0.20, 0.30]])


def log_odds(pwm=GATA_PWM):
    """(k, 4) log-odds against a uniform background, and its reverse complement."""
    lo = np.log(pwm / 0.25)
    return lo, lo[::-1, ::-1].copy()


def _example_files(d, L, n=24, seed=1):
    os.makedirs(os.path.join(d, "example_files"), exist_ok=True)
    write_genome(os.path.join(d, "example_files", "genome.fa"), n_chrom=2, length=3000, seed=seed)
    write_bed(os.path.join(d, "example_files", "intervals.bed"), n, L, n_chrom=2, length=3000, seed=seed + 1)


def example_dl_args(d):
    return {"intervals_file": os.path.join(d, "example_files", "intervals.bed"),
            "fasta_file": os.path.join(d, "example_files", "genome.fa")}


def _write_yaml(path, obj):
    with open(path, "w") as fh:
        yaml.safe_dump(obj, fh, sort_keys=False)


def _seed_weights(model, seed, scale=0.3):
    rs = np.random.RandomState(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rs.normal(0, scale, w.shape).astype(np.float32) for w in ws])


def legacy_json(model):
    """A Sequential's JSON in the Keras 2.0 layout of the zoo's files."""
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items()
                    if k not in ("module", "registered_name", "build_config", "groups")}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o
    cfg = strip(json.loads(model.to_json()))
    layers = cfg["config"]["layers"]
    if layers[0]["class_name"] == "InputLayer":       # Keras 2.0 kept the input shape on the first layer
        layers[1]["config"]["batch_input_shape"] = layers[0]["config"]["batch_input_shape"]
        layers = layers[1:]
    for layer in layers:
        if "kernel_initializer" in layer["config"]:
            layer["config"]["kernel_initializer"] = {
                "class_name": "VarianceScaling",
                "config": {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}}
    return json.dumps({"class_name": "Sequential", "config": layers, "keras_version": "2.0.8",
                       "backend": "tensorflow"})


def deepbind_keras(keras, lambda_layer=False, seed=0):
    """The DeepBind-shaped Keras model (weights seeded)."""
    L = keras.layers
    if not lambda_layer:
        model = keras.Sequential([
            L.Conv1D(16, 24, activation="relu", input_shape=(101, 4), name="motif_scan"),
            L.GlobalMaxPooling1D(name="max_pool"),
            L.Dense(32, activation="relu", name="hidden"),
            L.Dropout(0.5, name="dropout"),
            L.Dense(1, name="logit"),
            L.Activation("sigmoid", name="binding_prob")], name="deepbind_like")
    else:
        import tensorflow as tf
        # `tf` a global of the lambda (not a closure), as in the zoo's files: it is
        # resolved from custom_objects' OBJECTS = {"tf": tf} when the JSON is loaded.
        revcomp = eval("lambda x: tf.reverse(x, axis=[1, 2])", {"tf": tf})
        inp = keras.Input((101, 4), name="seq")
        rc = L.Lambda(revcomp, name="revcomp")(inp)
        conv = L.Conv1D(16, 24, activation="relu", name="motif_scan")
        x = L.Concatenate(axis=1, name="both_strands")([conv(inp), conv(rc)])
        x = L.GlobalMaxPooling1D(name="max_pool")(x)
        x = L.Dense(1, activation="sigmoid", name="binding_prob")(x)
        model = keras.Model(inp, x, name="deepbind_rc")
    _seed_weights(model, seed)
    return model


def make_deepbind_dir(root, keras, name="deepbind_like", lambda_layer=False, seed=0):
    """Write the DeepBind-shaped Keras model dir; return its path."""
    d = os.path.join(str(root), name)
    os.makedirs(d, exist_ok=True)
    model = deepbind_keras(keras, lambda_layer, seed)
    with open(os.path.join(d, "model.json"), "w") as fh:
        fh.write(model.to_json() if lambda_layer else legacy_json(model))
    model.save_weights(os.path.join(d, "weights.h5"))
    with open(os.path.join(d, "custom_keras_objects.py"), "w") as fh:
        fh.write("import tensorflow as tf\n\nOBJECTS = {\"tf\": tf}\n")
    _example_files(d, 101)
    _write_yaml(os.path.join(d, "model.yaml"), {
        "type": "keras",
        "args": {"arch": "model.json", "weights": "weights.h5", "custom_objects": "custom_keras_objects.py",
                 "backend": "tensorflow", "image_dim_ordering": "tf"},
        "info": INFO,
        "default_dataloader": {"defined_as": "kipoiseq.dataloaders.SeqIntervalDl",
                               "default_args": {"auto_resize_len": 101}},
        "dependencies": {"conda": ["h5py", "tensorflow>=1.4", "keras>=2.0.6"]},
        "schema": {"inputs": {"name": "seq", "special_type": "DNASeq", "shape": "(101, 4)",
                              "doc": "DNA sequence", "associated_metadata": "ranges"},
                   "targets": {"name": "binding_prob", "shape": "(1, )", "doc": "binding probability"}},
    })
    return d


def pwm_keras(keras, pwm=GATA_PWM):
    """pwm_HOCOMOCO-shaped: best log-odds PWM match on either strand, any length."""
    L = keras.layers
    model = keras.Sequential([
        keras.Input((None, 4), name="seq"),
        L.Conv1D(2, len(pwm), name="pwm_scan"),                 # filter 0: PWM, filter 1: its reverse complement
        L.Reshape((-1, 1), name="strands_as_positions"),
        L.GlobalMaxPooling1D(name="best_match")], name="pwm_like")
    fwd, rev = log_odds(pwm)
    model.get_layer("pwm_scan").set_weights([np.stack([fwd, rev], -1).astype(np.float32),
                                             np.zeros(2, np.float32)])
    return model


def make_pwm_dir(root, keras, name="pwm_like", L=60):
    """Write the pwm_HOCOMOCO-shaped dir (whole-model HDF5, schema (None, 4)); return its path."""
    import warnings
    d = os.path.join(str(root), name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.h5")
    model = pwm_keras(keras)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)       # "HDF5 is legacy": it is the zoo's format
        model.save(path)
    import h5py
    with h5py.File(path, "r+") as f:                       # as Keras 2.1 wrote it (the zoo's pwm files)
        f.attrs["model_config"] = legacy_json(model).encode("utf8")
        f.attrs["keras_version"] = b"2.1.2"
    _example_files(d, L)
    _write_yaml(os.path.join(d, "model.yaml"), {
        "type": "keras",
        "args": {"weights": "model.h5", "backend": "tensorflow", "image_dim_ordering": "tf"},
        "info": INFO,
        "default_dataloader": {"defined_as": "kipoiseq.dataloaders.SeqIntervalDl"},
        "dependencies": {"conda": ["python=3.7", "h5py", "pip"], "pip": ["tensorflow", "keras"]},
        "schema": {"inputs": {"name": "seq", "special_type": "DNASeq", "shape": "(None, 4)",
                              "doc": "DNA sequence", "associated_metadata": "ranges"},
                   "targets": {"name": "pwm_match", "shape": "(1, )", "doc": "Best PWM match log-odds score"}},
    })
    return d


KMER_FEATURES = textwrap.dedent('''
    import itertools

    import numpy as np

    K = 3
    INDEX = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=K))}


    def kmer_features(seq, k=K):
        """Normalised k-mer counts (4**k,) of a DNA string; k-mers with N are skipped."""
        x = np.zeros(len(INDEX), dtype=np.float32)
        for i in range(len(seq) - k + 1):
            j = INDEX.get(seq[i:i + k].upper())
            if j is not None:
                x[j] += 1
        return x / max(x.sum(), 1)
''')

KMER_DL = '"""BED + FASTA -> normalised k-mer counts (4**k features)."""' + KMER_FEATURES + textwrap.dedent('''

    from kipoi.data import Dataset
    from kipoi.metadata import GenomicRanges
    from kipoiseq.extractors import FastaStringExtractor
    from pybedtools import Interval


    class KmerDl(Dataset):
        def __init__(self, intervals_file, fasta_file):
            self.fasta = FastaStringExtractor(fasta_file)
            self.intervals = []
            with open(intervals_file) as fh:
                for line in fh:
                    if line.strip():
                        c, s, e = line.split()[:3]
                        self.intervals.append(Interval(c, int(s), int(e)))

        def __len__(self):
            return len(self.intervals)

        def __getitem__(self, i):
            iv = self.intervals[i]
            return {"inputs": kmer_features(self.fasta.extract(iv)),
                    "metadata": {"ranges": GenomicRanges(iv.chrom, iv.start, iv.stop, str(i))}}
''')
_NS = {}
exec(compile(KMER_FEATURES, "kmer_features", "exec"), _NS)
kmer_features = _NS["kmer_features"]


def simulated_kmer_data(n=300, L=101, seed=3):
    """3-mer features of random sequences, every second one with GATAAG planted (label 1)."""
    rs = np.random.RandomState(seed)
    X, y = [], []
    for i in range(n):
        s = list(rs.choice(list("ACGT"), L))
        if i % 2:
            p = rs.randint(0, L - 6)
            s[p:p + 6] = "GATAAG"
        X.append(kmer_features("".join(s)))
        y.append(i % 2)
    return np.stack(X), np.array(y)


def make_sklearn_dir(root, name="sklearn_kmer"):
    """Write the ``type: sklearn`` k-mer model dir; return its path."""
    import joblib
    from sklearn.linear_model import LogisticRegression
    d = os.path.join(str(root), name)
    os.makedirs(d, exist_ok=True)
    X, y = simulated_kmer_data()
    joblib.dump(LogisticRegression(C=10.0, max_iter=2000).fit(X, y), os.path.join(d, "model.pkl"))
    with open(os.path.join(d, "kmer_dl.py"), "w") as fh:
        fh.write(KMER_DL)
    _example_files(d, 101)
    _write_yaml(os.path.join(d, "model.yaml"), {
        "type": "sklearn",
        "args": {"pkl_file": "model.pkl", "predict_method": "predict_proba"},
        "info": INFO,
        "default_dataloader": ".",
        "dependencies": {"conda": ["scikit-learn", "joblib"]},
        "schema": {"inputs": {"name": "kmers", "shape": "(64,)", "doc": "normalised 3-mer counts"},
                   "targets": {"name": "proba", "shape": "(2,)", "doc": "P(no GATA), P(GATA)"}},
    })
    _write_yaml(os.path.join(d, "dataloader.yaml"), {
        "type": "Dataset",
        "defined_as": "kmer_dl.py::KmerDl",
        "args": {"intervals_file": {"doc": "BED3", "example": "example_files/intervals.bed"},
                 "fasta_file": {"doc": "FASTA", "example": "example_files/genome.fa"}},
        "info": INFO,
        "dependencies": {"conda": ["numpy"], "pip": ["kipoiseq"]},
        "output_schema": {"inputs": {"name": "kmers", "shape": "(64,)", "doc": "normalised 3-mer counts"},
                          "metadata": {"ranges": {"type": "GenomicRanges", "doc": "ranges"}}},
    })
    return d


CUSTOM_MODEL = textwrap.dedent('''
    """A custom Kipoi model: best log-odds match of a PWM on either strand, in numpy."""
    import numpy as np
    from kipoi.model import BaseModel

    LOG_ODDS = np.array({lo})


    def score(x):
        """(N, L, 4) one-hot -> (N, 1) best match over positions and strands."""
        k = len(LOG_ODDS)
        windows = np.lib.stride_tricks.sliding_window_view(x, (k, 4), axis=(1, 2))[:, :, 0]
        fwd = np.einsum("nlka,ka->nl", windows, LOG_ODDS)
        rev = np.einsum("nlka,ka->nl", windows, LOG_ODDS[::-1, ::-1])
        return np.maximum(fwd.max(1), rev.max(1))[:, None].astype(np.float32)


    class MyModel(BaseModel):
        def predict_on_batch(self, x):
            return score(np.asarray(x, dtype=np.float64))
''')


def make_custom_dir(root, name="custom_pwm"):
    """Write the ``defined_as: model.MyModel`` dir; return its path."""
    d = os.path.join(str(root), name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.py"), "w") as fh:
        fh.write(CUSTOM_MODEL.format(lo=np.round(log_odds()[0], 6).tolist()))
    _example_files(d, 50)
    _write_yaml(os.path.join(d, "model.yaml"), {
        "defined_as": "model.MyModel",
        "args": {},
        "info": INFO,
        "default_dataloader": {"defined_as": "kipoiseq.dataloaders.SeqIntervalDl",
                               "default_args": {"auto_resize_len": 50}},
        "dependencies": {"conda": ["numpy"]},
        "schema": {"inputs": {"name": "seq", "special_type": "DNASeq", "shape": "(50, 4)",
                              "doc": "DNA sequence", "associated_metadata": "ranges"},
                   "targets": {"name": "pwm_match", "shape": "(1, )", "doc": "best GATA match"}},
    })
    return d


def keras_or_skip():
    """The Keras 2 API module, or skip the test when the frameworks extra is not installed."""
    import pytest
    from kipoi_tanger.frameworks import FrameworkNotInstalled
    from kipoi_tanger.frameworks.keras import import_keras
    try:
        return import_keras()
    except FrameworkNotInstalled as e:
        pytest.skip(str(e))


# -- more frameworks and input structures ---------------------------------------------------------

SEQ_CELL_DL = textwrap.dedent('''
    """BED + FASTA -> {"seq": one-hot (L, 4), "cell": 3 features}: a dict-input dataloader."""
    import numpy as np
    from kipoi.data import Dataset
    from kipoi.metadata import GenomicRanges
    from kipoiseq.extractors import FastaStringExtractor
    from pybedtools import Interval

    LUT = np.zeros((256, 4), np.float32)
    for _i, _c in enumerate("ACGT"):
        LUT[ord(_c), _i] = 1


    class SeqCellDl(Dataset):
        def __init__(self, intervals_file, fasta_file):
            self.fasta = FastaStringExtractor(fasta_file)
            with open(intervals_file) as fh:
                self.intervals = [Interval(*(f if j == 0 else int(f) for j, f in enumerate(line.split()[:3])))
                                  for line in fh if line.strip()]

        def __len__(self):
            return len(self.intervals)

        def __getitem__(self, i):
            iv = self.intervals[i]
            seq = self.fasta.extract(iv).upper()
            x = LUT[np.frombuffer(seq.encode(), np.uint8)]
            gc = (seq.count("G") + seq.count("C")) / len(seq)
            cell = np.array([gc, i % 2, 1.0], dtype=np.float32)
            return {"inputs": {"seq": x, "cell": cell},
                    "metadata": {"ranges": GenomicRanges(iv.chrom, iv.start, iv.stop, str(i))}}
''')


def cell_features(seqs):
    """The dict dataloader's ``cell`` input for sequences in BED order."""
    return np.array([[(s.count("G") + s.count("C")) / len(s), i % 2, 1.0] for i, s in enumerate(seqs)],
                    dtype=np.float32)


def seq_cell_keras(keras, L=50, seed=5):
    """A functional Keras model with two named inputs (seq, cell) -> two probabilities."""
    La = keras.layers
    seq = keras.Input((L, 4), name="seq")
    cell = keras.Input((3,), name="cell")
    x = La.Conv1D(6, 8, activation="relu", name="scan")(seq)
    x = La.GlobalMaxPooling1D(name="best")(x)
    h = La.Concatenate(name="join")([x, La.Dense(4, name="cell_embed")(cell)])
    y = La.Dense(2, activation="sigmoid", name="probs")(h)
    model = keras.Model([seq, cell], y, name="seq_cell")
    _seed_weights(model, seed)
    return model


def make_seq_cell_dir(root, keras, name="seq_cell", L=50):
    """Write a ``type: keras`` dir with a dict schema (seq + cell) and its dataloader; return its path."""
    d = os.path.join(str(root), name)
    os.makedirs(d, exist_ok=True)
    model = seq_cell_keras(keras, L)
    with open(os.path.join(d, "model.json"), "w") as fh:
        fh.write(model.to_json())
    model.save_weights(os.path.join(d, "weights.h5"))
    with open(os.path.join(d, "seq_cell_dl.py"), "w") as fh:
        fh.write(SEQ_CELL_DL)
    _example_files(d, L, n=12, seed=4)
    inputs = {"seq": {"special_type": "DNASeq", "shape": f"({L}, 4)", "doc": "DNA", "associated_metadata": "ranges"},
              "cell": {"shape": "(3,)", "doc": "cell-type features"}}
    _write_yaml(os.path.join(d, "model.yaml"), {
        "type": "keras",
        "args": {"arch": "model.json", "weights": "weights.h5", "backend": "tensorflow"},
        "info": INFO,
        "default_dataloader": ".",
        "dependencies": {"pip": ["tensorflow-cpu", "tf-keras"]},
        "schema": {"inputs": inputs, "targets": {"name": "probs", "shape": "(2,)", "doc": "two probabilities"}},
    })
    _write_yaml(os.path.join(d, "dataloader.yaml"), {
        "type": "Dataset",
        "defined_as": "seq_cell_dl.py::SeqCellDl",
        "args": {"intervals_file": {"doc": "BED3", "example": "example_files/intervals.bed"},
                 "fasta_file": {"doc": "FASTA", "example": "example_files/genome.fa"}},
        "info": INFO,
        "dependencies": {"pip": ["kipoiseq"]},
        "output_schema": {"inputs": inputs, "metadata": {"ranges": {"type": "GenomicRanges", "doc": "ranges"}}},
    })
    return d


def tf2_module(L=50, seed=6):
    """A TensorFlow 2 ``tf.Module`` (no Keras): ReLU PWM scan, max over positions, logistic read-out.

    Its only signature takes float64 ``(None, L, 4)``, what kipoiseq's SeqIntervalDl gives by default,
    so the model fails on any other dtype.
    """
    import tensorflow as tf
    rs = np.random.RandomState(seed)
    kernel = np.concatenate([np.stack([log_odds()[0], log_odds()[1]], -1),
                             rs.normal(0, 0.5, (8, 4, 2))], -1).astype(np.float32)     # (8, 4, 4)
    w_out = rs.normal(0, 1, (4, 1)).astype(np.float32)

    class PWMScan(tf.Module):
        def __init__(self):
            super().__init__(name="pwm_scan_tf2")
            self.kernel = tf.Variable(kernel)
            self.w_out = tf.Variable(w_out)

        @tf.function(input_signature=[tf.TensorSpec([None, L, 4], tf.float64)])
        def __call__(self, x):
            h = tf.nn.relu(tf.nn.conv1d(tf.cast(x, tf.float32), self.kernel, stride=1, padding="VALID") - 1.0)
            return tf.sigmoid(tf.matmul(tf.reduce_max(h, axis=1), self.w_out))

    return PWMScan()


def make_tf2_dir(root, name="tf2_pwm", L=50):
    """Write a ``defined_as: kipoi.model.TensorFlow2Model`` dir (a SavedModel); return its path."""
    import tensorflow as tf
    d = os.path.join(str(root), name)
    os.makedirs(d, exist_ok=True)
    tf.saved_model.save(tf2_module(L), os.path.join(d, "sdm"))
    _example_files(d, L, n=10, seed=8)
    _write_yaml(os.path.join(d, "model.yaml"), {
        "defined_as": "kipoi.model.TensorFlow2Model",
        "args": {"savedmodel_path": "sdm"},
        "info": INFO,
        "default_dataloader": {"defined_as": "kipoiseq.dataloaders.SeqIntervalDl",
                               "default_args": {"auto_resize_len": L}},
        "dependencies": {"pip": ["tensorflow-cpu"]},
        "schema": {"inputs": {"name": "seq", "special_type": "DNASeq", "shape": f"({L}, 4)", "doc": "DNA",
                              "associated_metadata": "ranges"},
                   "targets": {"name": "score", "shape": "(1,)", "doc": "score"}},
    })
    return d


def dump_pickle_as_version(estimator, path, version):
    """joblib-dump ``estimator`` as if scikit-learn ``version`` had written it (its ``_sklearn_version``)."""
    import joblib
    import sklearn.base
    real = sklearn.base.__version__
    sklearn.base.__version__ = version
    try:
        joblib.dump(estimator, path)
    finally:
        sklearn.base.__version__ = real


# -- the same networks written by hand in torch (oracles of the Keras -> torch conversion) --------

def _t(a):
    import torch
    return torch.from_numpy(np.asarray(a, np.float32).copy())


def _hand_classes():
    from torch import nn

    class HandDeepBind(nn.Module):
        """DeepBind-shaped net on (N, 4, L), written directly from the Keras weights."""

        def __init__(self, model, L=101):
            super().__init__()
            k, b = model.get_layer("motif_scan").get_weights()
            self.conv = nn.Conv1d(4, 16, 24)
            self.conv.weight.data, self.conv.bias.data = _t(k.transpose(2, 1, 0)), _t(b)
            self.relu1, self.pool = nn.ReLU(), nn.MaxPool1d(L - 23)
            self.fc1, self.relu2, self.fc2 = nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1)
            for fc, name in ((self.fc1, "hidden"), (self.fc2, "logit")):
                w, b = model.get_layer(name).get_weights()
                fc.weight.data, fc.bias.data = _t(w.T), _t(b)
            self.sigmoid = nn.Sigmoid()

        def forward(self, x):
            h = self.pool(self.relu1(self.conv(x))).squeeze(-1)
            return self.sigmoid(self.fc2(self.relu2(self.fc1(h))))

    class HandPWM(nn.Module):
        """pwm_HOCOMOCO-shaped net on (N, 4, L): both strands' scores as positions, max over them."""

        def __init__(self, model, L):
            super().__init__()
            k, b = model.get_layer("pwm_scan").get_weights()
            self.conv = nn.Conv1d(4, 2, k.shape[0])
            self.conv.weight.data, self.conv.bias.data = _t(k.transpose(2, 1, 0)), _t(b)
            self.pool = nn.MaxPool1d(2 * (L - k.shape[0] + 1))

        def forward(self, x):
            h = self.conv(x)                                     # (N, 2, L')
            return self.pool(h.transpose(1, 2).reshape(len(x), 1, -1)).squeeze(-1)

    return HandDeepBind, HandPWM


HandDeepBind, HandPWM = _hand_classes()


def read_regions(d, resize=None):
    """The example regions' sequences, read with pyfaidx (not through the model's dataloader)."""
    import pyfaidx
    fa = pyfaidx.Fasta(os.path.join(d, "example_files", "genome.fa"))
    seqs = []
    with open(os.path.join(d, "example_files", "intervals.bed")) as fh:
        for line in fh:
            c, s, e = line.split()[:3]
            s, e = int(s), int(e)
            if resize is not None:           # kipoiseq's centre resize
                mid = (s + e) // 2
                s, e = mid - resize // 2, mid - resize // 2 + resize
            seqs.append(str(fa[c][s:e]).upper())
    return seqs


def one_hot(seqs):
    """ACGT strings → (N, L, 4) float32 one-hot (the oracle side of the framework tests)."""
    lut = np.zeros((256, 4), np.float32)
    for i, c in enumerate("ACGT"):
        lut[ord(c), i] = 1
    return np.stack([lut[np.frombuffer(s.encode(), np.uint8)] for s in seqs])


# -- a TensorFlow 1 graph (type: tensorflow) ------------------------------------------------------

TF1_WRITER = textwrap.dedent('''
    """Build the DeepBind-like TF1 graph in tf.compat.v1 graph mode (as the zoo's checkpoints were
    written: reference variables, placeholders, a Saver), save it, and run the graph on the probe."""
    import os
    import sys

    import numpy as np
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    prefix, L, seed, probe, probe_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    rs = np.random.RandomState(seed)
    w = lambda *shape: rs.normal(0, 0.3, shape).astype(np.float32)        # noqa: E731
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, L, 4], name="inputs")
        rate = tf.placeholder(tf.float32, [], name="dropout_rate")        # fed by const_feed_dict_pkl
        conv_w, conv_b = tf.Variable(w(24, 4, 16), name="conv/kernel"), tf.Variable(w(16), name="conv/bias")
        h = tf.nn.relu(tf.nn.conv1d(x, conv_w, 1, "VALID") + conv_b)
        h = tf.reduce_max(h, axis=1, name="max_pool")
        hidden_w, hidden_b = tf.Variable(w(16, 32), name="hidden/kernel"), tf.Variable(w(32), name="hidden/bias")
        h = tf.nn.relu(tf.matmul(h, hidden_w) + hidden_b)
        h = tf.nn.dropout(h, rate=rate)
        logit = tf.matmul(h, tf.Variable(w(32, 1), name="logit/kernel")) + tf.Variable(w(1), name="logit/bias")
        preds = tf.sigmoid(logit, name="preds")
        sess = tf.Session(graph=graph)
        sess.run(tf.global_variables_initializer())
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
        tf.train.Saver().save(sess, prefix)
        if probe != "-":
            np.save(probe_out, sess.run(preds, {x: np.load(probe), rate: 0.0}))
''')


def make_tf1_dir(root, name="tf1_deepbind", L=101, seed=7, probe=None, probe_out=None):
    """Write a ``type: tensorflow`` dir (Kipoi's TensorFlowModel: a tf.compat.v1 checkpoint); return its path.

    Shaped like the zoo's TensorFlow models (Basenji's yaml): ``args: {input_nodes: inputs,
    target_nodes: preds, checkpoint_path: {meta, index, data}, const_feed_dict_pkl}``; the constant
    feed sets the graph's ``dropout_rate`` placeholder to 0 (the graph cannot run without it). The
    network is DeepBind-like on ``(N, L, 4)``: conv 24x16 + ReLU, max over positions, dense 32 + ReLU,
    dropout, dense 1, sigmoid. The checkpoint is written by :data:`TF1_WRITER` in a subprocess (its
    ``disable_v2_behavior`` stays there). ``probe``: a function of the dir (its example files are
    written first) giving an ``(N, L, 4)`` array that the graph is also run on in that process (the
    TF graph's own output), saved to ``probe_out`` (.npy).
    """
    import pickle
    import subprocess
    import sys
    d = os.path.join(str(root), name)
    os.makedirs(d, exist_ok=True)
    prefix = os.path.join(d, "model_files", "model.tf")
    _example_files(d, L, n=20, seed=9)
    probe_in = "-"
    if probe is not None:
        probe_in = os.path.join(str(root), f"{name}.probe_in.npy")
        np.save(probe_in, np.asarray(probe(d), np.float32))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run([sys.executable, "-c", TF1_WRITER, prefix, str(L), str(seed), probe_in, str(probe_out or "-")],
                       capture_output=True, text=True, env=env, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"writing the TF1 checkpoint failed: {p.stderr[-3000:]}")
    with open(os.path.join(d, "model_files", "const_feed_dict.pkl"), "wb") as fh:
        pickle.dump({"dropout_rate": 0.0}, fh)
    _write_yaml(os.path.join(d, "model.yaml"), {
        "type": "tensorflow",
        "args": {"input_nodes": "inputs", "target_nodes": "preds",
                 "checkpoint_path": {"meta": "model_files/model.tf.meta", "index": "model_files/model.tf.index",
                                     "data": "model_files/model.tf.data-00000-of-00001"},
                 "const_feed_dict_pkl": "model_files/const_feed_dict.pkl"},
        "info": INFO,
        "default_dataloader": {"defined_as": "kipoiseq.dataloaders.SeqIntervalDl",
                               "default_args": {"auto_resize_len": L}},
        "dependencies": {"conda": ["python=3.7", "tensorflow=1.15"]},
        "schema": {"inputs": {"name": "seq", "special_type": "DNASeq", "shape": f"({L}, 4)", "doc": "DNA sequence",
                              "associated_metadata": "ranges"},
                   "targets": {"name": "preds", "shape": "(1,)", "doc": "binding probability"}},
    })
    return d
