"""Helpers the tests share to run the command line in-process and check one-line errors."""
import os


def main_in(argv, capsys, cwd):
    """``cli.main(argv)`` run in ``cwd``: ``(exit status, stdout, stderr)``."""
    from kipoi_tanger import cli    # imported here: the dataloader tests use only one_line_error
    old = os.getcwd()
    os.chdir(cwd)
    try:
        rc = cli.main(argv)
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(err, prog="kipoi-tanger"):
    """The single ``PROG: error: ...`` line of ``err`` (no traceback, nothing else)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{prog}: error: ") and "Traceback" not in err
    return lines[0]


def one_line_error(excinfo, *parts):
    """The exception of ``pytest.raises`` is one line holding every one of ``parts``."""
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for p in parts:
        assert str(p) in msg, (p, msg)


def interrupt_after_commits(monkeypatch, n=2):
    """Make the next run stop as Ctrl-C would (KeyboardInterrupt) right after its ``n``-th journal
    commit, with the loading thread off; returns a function that restores normal commits."""
    from kipoi_tanger.run.journal import Journal
    real_commit = Journal.commit
    commits = []

    def commit_then_die(self, *a, **k):
        real_commit(self, *a, **k)
        commits.append(1)
        if len(commits) == n:
            raise KeyboardInterrupt

    monkeypatch.setattr(Journal, "commit", commit_then_die)
    monkeypatch.setenv("KIPOI_TANGER_PREFETCH", "0")
    return lambda: monkeypatch.setattr(Journal, "commit", real_commit)
