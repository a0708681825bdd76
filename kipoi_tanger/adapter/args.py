"""``--dataloader_args`` as ``kipoi predict`` takes them: a JSON string, a JSON file or ``key=value`` pairs."""
import json
import os
from typing import List, Optional

from .errors import AdapterError

__all__ = ["parse_dataloader_args"]


def parse_dataloader_args(values: Optional[List[str]]) -> Optional[dict]:
    """Parse the command-line values of ``--dataloader_args`` with Kipoi's own parser.

    Parameters
    ----------
    values : list of str or None
        ``['{"a": 1}']``, ``['args.json']`` or ``['a=1', 'b=x']``.

    Returns
    -------
    dict or None
        None when no values are given.

    Raises
    ------
    AdapterError
        One line starting with ``--dataloader_args:``.
    """
    if not values:
        return None
    from kipoi_utils.utils import parse_json_file_str_or_arglist
    if len(values) == 1 and not os.path.exists(values[0]):
        try:     # JSON that is not an object: Kipoi's parser would call it a missing file
            parsed = json.loads(values[0])
        except ValueError:
            parsed = {}
        if not isinstance(parsed, dict):
            raise AdapterError(f"--dataloader_args: expected a JSON object or key=value pairs, got {values[0]!r}")
    try:
        parsed = parse_json_file_str_or_arglist(list(values))
    except Exception as e:
        raise AdapterError(f"--dataloader_args: {e}") from None
    if not isinstance(parsed, dict):
        raise AdapterError(f"--dataloader_args: expected a JSON object or key=value pairs, got {parsed!r}")
    return parsed
