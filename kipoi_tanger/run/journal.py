"""The journal of an unfinished run: committed batches in ``<first output>.partial/``.

``run.json`` holds the run's identity (its fingerprint, every setting that
affects the results, the seed) and the journal format; each commit is one file
``b<k>_u<units>_r<rows>.npk``: a small JSON header naming the arrays, then each
array in ``.npy`` format. Files are written under a temporary name and renamed,
so a kill leaves whole commits only.

Journal formats: 1 — written before the format was recorded (kipoi-tanger up to
the op-object restructure); 2 — records ``format``. The commit files are the
same in both, so a format-1 journal resumes when its settings match the
command's; otherwise the run is refused with one line.
"""
import json
import os
import re
import shutil

import numpy as np

from ..adapter.errors import RunError
from . import h5io

__all__ = ["Journal", "JOURNAL_FORMAT"]

JOURNAL_FORMAT = 2


class Journal:
    """Committed batches of an unfinished run, in ``path`` (``<first output>.partial/``).

    Parameters
    ----------
    path : str
        The journal directory.
    """

    MAGIC = b"KTJ1"

    def __init__(self, path: str):
        self.path = path
        self.batches = []          # (file, units, rows)
        self.meta = None
        self._specs = None

    @property
    def units(self) -> int:
        """Units (regions or dataloader batches) committed."""
        return sum(b[1] for b in self.batches)

    @property
    def rows(self) -> int:
        """Regions committed."""
        return sum(b[2] for b in self.batches)

    @property
    def format(self) -> int:
        """The journal format of a loaded or created journal (1 when not recorded)."""
        return int((self.meta or {}).get("format", 1))

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def create(self, meta: dict) -> None:
        """Start a journal: make the directory (refused if another run made it) and write ``run.json``."""
        os.makedirs(self.path)
        self.meta = dict(meta, format=JOURNAL_FORMAT)
        self._write_json("run.json", self.meta)

    def _write_json(self, name, obj):
        tmp = os.path.join(self.path, f".tmp-{name}")
        with open(tmp, "w") as fh:
            json.dump(obj, fh, sort_keys=True, indent=1)
        os.replace(tmp, os.path.join(self.path, name))

    def load(self) -> dict:
        """Read ``run.json`` and the list of committed batches; returns the metadata."""
        try:
            with open(os.path.join(self.path, "run.json")) as fh:
                self.meta = json.load(fh)
        except (OSError, ValueError):
            raise RunError(f"--resume: {self.path} is not a kipoi-tanger run journal (no readable run.json); "
                           "remove it or pass --overwrite") from None
        if not isinstance(self.meta, dict):
            raise RunError(f"--resume: {self.path}/run.json is not a kipoi-tanger run journal; remove it or pass "
                           "--overwrite")
        if self.format > JOURNAL_FORMAT:
            raise RunError(f"--resume: {self.path} was journaled by a newer kipoi-tanger (journal format "
                           f"{self.format}, this one reads up to {JOURNAL_FORMAT}); resume it with that version, "
                           "or rerun with --overwrite")
        files = []
        for f in os.listdir(self.path):
            if f.startswith(".tmp-"):
                os.remove(os.path.join(self.path, f))   # a write the kill interrupted
                continue
            m = re.fullmatch(r"b(\d{8})_u(\d+)_r(\d+)\.npk", f)
            if m:
                files.append((int(m.group(1)), f, int(m.group(2)), int(m.group(3))))
        files.sort()
        if [k for k, *_ in files] != list(range(len(files))):
            raise RunError(f"--resume: {self.path} misses committed batches; remove it or pass --overwrite")
        self.batches = [(f, u, r) for _, f, u, r in files]
        return self.meta

    def commit(self, flat: dict, units: int, rows: int) -> None:
        """Append one commit: ``flat`` (``{dataset: array}``) covering ``units`` units and ``rows`` regions."""
        k = len(self.batches)
        name = f"b{k:08d}_u{units}_r{rows}.npk"
        tmp = os.path.join(self.path, f".tmp-{name}")
        keys = list(flat)
        header = json.dumps(keys).encode()
        with open(tmp, "wb") as fh:
            fh.write(self.MAGIC + len(header).to_bytes(4, "little") + header)
            for k_ in keys:
                np.lib.format.write_array(fh, np.ascontiguousarray(flat[k_]), allow_pickle=False)
        os.replace(tmp, os.path.join(self.path, name))
        self.batches.append((name, units, rows))
        if self._specs is None and rows:
            self._specs = {k_: h5io.row_spec(v) for k_, v in flat.items()}

    def _read(self, fname):
        with open(os.path.join(self.path, fname), "rb") as fh:
            if fh.read(4) != self.MAGIC:
                raise RunError(f"--resume: {fname} in {self.path} is not a journal file; pass --overwrite")
            n = int.from_bytes(fh.read(4), "little")
            keys = json.loads(fh.read(n))
            return {k: np.lib.format.read_array(fh, allow_pickle=False) for k in keys}

    def specs(self) -> dict:
        """``{dataset: (dtype, row shape)}`` of the committed rows (empty before the first non-empty commit)."""
        if self._specs is None:
            for f, _, rows in self.batches:
                if rows:
                    self._specs = {k: h5io.row_spec(v) for k, v in self._read(f).items()}
                    break
        return self._specs or {}

    def read_batches(self):
        """Yield every non-empty commit as ``{dataset: array}``, in order."""
        for f, _, rows in self.batches:
            if rows:
                yield self._read(f)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
