"""The one-line errors of kipoi_tanger, and the helpers that build them.

Every bad input (a yaml field, a missing file, a dataloader argument typo...)
becomes one :class:`AdapterError` line that names the file or field and says
what is expected; the CLI prints it and exits with status 2.
"""
import difflib
from typing import Iterable

__all__ = ["AdapterError", "RunError", "one_line", "suggest"]


class AdapterError(ValueError):
    """A model, its yaml or its dataloader cannot be used as asked (one line)."""


class RunError(ValueError):
    """A run cannot start or continue as asked: an op parameter, an output, a shard, a journal (one line)."""


def suggest(word: object, choices: Iterable) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices``, or ``""``.

    Parameters
    ----------
    word : object
        What was given (compared as a string).
    choices : iterable
        The valid values.

    Returns
    -------
    str
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def one_line(e: BaseException) -> str:
    """The first meaningful line of an exception's message.

    A ``KeyError`` reads ``missing key 'x'``; Kipoi's wrapped yaml errors
    (``Unable to load file X into class Y.`` then the reason on a later line)
    keep both the file and the reason.

    Parameters
    ----------
    e : BaseException

    Returns
    -------
    str
    """
    msg = str(e).strip()
    if isinstance(e, KeyError) and len(e.args) == 1:
        msg = f"missing key {e.args[0]!r}"
    first = msg.splitlines()[0] if msg else type(e).__name__
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    if len(lines) > 1 and first.startswith("Unable to load file"):
        return f"{first.rstrip('.')}: {lines[-1]}"
    return first
