"""The journal of an unfinished run: committed batches in ``<first output>.partial/``.

``run.json`` holds the run's identity (its fingerprint, every setting that
affects the results, the seed) and the journal format; each commit is one file
``b<k>_u<units>_r<rows>.npk``: a small JSON header naming the arrays, then each
array in ``.npy`` format. Files are written under a temporary name, flushed to
disk (``fsync`` of the file, then of the directory after the rename), so a kill
or a power loss leaves whole commits only; ``--resume`` still checks that every
committed file is whole and refuses, in one line, one that is not.

A running run holds an exclusive lock on ``run.lock`` in the journal (released
by the kernel when the process ends, even by ``kill -9``): a second run on the
same output is told that another run is writing it, and an unlocked journal is
one an interrupted run left. The journal directory appears fully formed (built
under a temporary name, then renamed), so two runs starting together cannot
both own it.

Journal formats: 1 — written before the format was recorded (kipoi-tanger up to
the op-object restructure); 2 — records ``format``. The commit files are the
same in both, so a format-1 journal resumes when its settings match the
command's; otherwise the run is refused with one line.
"""
import errno
import json
import os
import re
import secrets
import shutil
from typing import Optional

import numpy as np

from ..adapter.errors import RunError
from . import h5io
from .outputs import write_error

try:
    import fcntl
except ImportError:         # not POSIX: runs are not locked
    fcntl = None

__all__ = ["Journal", "JOURNAL_FORMAT", "LOCK_NAME"]

JOURNAL_FORMAT = 2
LOCK_NAME = "run.lock"
_ANOTHER_RUN = "another kipoi-tanger run is writing this output"


def _open_for_write(path):
    """Open a new journal file (a seam for tests that fill the disk)."""
    return open(path, "wb")


class _Stream:
    """A file seen by numpy as a plain stream: it writes through ``write``, whose
    errors carry an errno (a full disk), rather than ``tofile``'s short-write message."""

    def __init__(self, fh):
        self.write = fh.write


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass            # some filesystems cannot sync a directory
    finally:
        os.close(fd)


class Journal:
    """Committed batches of an unfinished run, in ``path`` (``<first output>.partial/``).

    Parameters
    ----------
    path : str
        The journal directory.
    output : str, optional
        The output as the user named it (for messages; default: ``path`` without ``.partial``).
    """

    MAGIC = b"KTJ1"

    def __init__(self, path: str, output: Optional[str] = None):
        self.path = path
        self.output = output or (path[:-len(".partial")] if path.endswith(".partial") else path)
        self.batches = []          # (file, units, rows)
        self.meta = None
        self._specs = None
        self._lock_fd = None

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

    # -- the lock of a running run --------------------------------------------------------------

    def _busy(self) -> RunError:
        return RunError(f"{self.output}: {_ANOTHER_RUN} (its journal {self.path} is in use); wait for it to "
                        "finish, or write to another file")

    def _lock_in(self, directory):
        if fcntl is None or self._lock_fd is not None:
            return
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise self._busy() from None
            raise
        self._lock_fd = fd

    def lock(self) -> None:
        """Take the lock of an existing journal: one line saying another run is writing the
        output when a running process holds it."""
        try:
            self._lock_in(self.path)
        except FileNotFoundError:
            pass        # removed meanwhile: nothing to lock

    def unlock(self) -> None:
        """Release the lock (the kernel also does when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- creating and committing -----------------------------------------------------------------

    def create(self, meta: dict) -> None:
        """Start a journal: build the directory (locked, with ``run.json``) under a temporary
        name and rename it into place; refused in one line if another run made it meanwhile."""
        tmp = f"{self.path}.new-{os.getpid()}-{secrets.token_hex(4)}"
        os.mkdir(tmp)
        try:
            self._lock_in(tmp)
            self.meta = dict(meta, format=JOURNAL_FORMAT)
            self._write_json("run.json", self.meta, directory=tmp)
            try:
                os.rename(tmp, self.path)
            except OSError as e:
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                    raise self._busy() from None
                raise
            _fsync_dir(os.path.dirname(self.path))
        except BaseException as e:
            self.unlock()
            shutil.rmtree(tmp, ignore_errors=True)
            err = write_error(e, self.path, "start the run again") if isinstance(e, OSError) else None
            if err is not None:
                raise err from None
            raise

    def update_meta(self, **items) -> None:
        """Add ``items`` to the journal's ``run.json`` (durably, like a commit)."""
        self.meta = dict(self.meta or {}, **items)
        self._write_json("run.json", self.meta)

    def _write_json(self, name, obj, directory=None):
        directory = directory or self.path
        tmp = os.path.join(directory, f".tmp-{name}")
        with open(tmp, "w") as fh:
            json.dump(obj, fh, sort_keys=True, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(directory, name))
        _fsync_dir(directory)

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
        for _, f, _, rows in files:
            self._check_whole(f, rows)
        self.batches = [(f, u, r) for _, f, u, r in files]
        return self.meta

    def _check_whole(self, fname, rows):
        """Refuse a committed file that is empty or cut short (written before commits were
        synced to disk, or by a disk that lied): its header must describe exactly its bytes."""
        path = os.path.join(self.path, fname)
        bad = RunError(f"--resume: {path} is empty or truncated (a commit cut short by a power loss or a full "
                       "disk); the journal cannot be continued: pass --overwrite to start over")
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as fh:
                if fh.read(4) != self.MAGIC:
                    raise bad
                n = int.from_bytes(fh.read(4), "little")
                keys = json.loads(fh.read(n))
                if not isinstance(keys, list):
                    raise bad
                for _ in keys:
                    fmt = np.lib.format
                    version = fmt.read_magic(fh)
                    read = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
                    if read is None:        # another .npy version: read the array itself
                        shape = fmt.read_array(fh, allow_pickle=False).shape
                        if shape and shape[0] != rows:
                            raise bad
                        continue
                    shape, _fortran, dtype = read(fh)
                    if dtype.hasobject or (shape and shape[0] != rows):
                        raise bad
                    fh.seek(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, os.SEEK_CUR)
                    if fh.tell() > size:
                        raise bad
                if fh.tell() != size:
                    raise bad
        except RunError:
            raise
        except (OSError, ValueError, EOFError):
            raise bad from None

    def commit(self, flat: dict, units: int, rows: int) -> None:
        """Append one commit: ``flat`` (``{dataset: array}``) covering ``units`` units and ``rows`` regions."""
        k = len(self.batches)
        name = f"b{k:08d}_u{units}_r{rows}.npk"
        tmp = os.path.join(self.path, f".tmp-{name}")
        keys = list(flat)
        header = json.dumps(keys).encode()
        try:
            with _open_for_write(tmp) as fh:
                fh.write(self.MAGIC + len(header).to_bytes(4, "little") + header)
                for k_ in keys:
                    np.lib.format.write_array(_Stream(fh), np.ascontiguousarray(flat[k_]), allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())       # the data is on disk before the name commits it
            os.replace(tmp, os.path.join(self.path, name))
            _fsync_dir(self.path)
        except OSError as e:
            try:
                os.remove(tmp)
            except OSError:
                pass
            err = write_error(e, self.path, "continue with --resume" if self.batches else "run it again")
            if err is not None:
                raise err from None
            raise
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
        """Delete the journal (and release its lock)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.unlock()
