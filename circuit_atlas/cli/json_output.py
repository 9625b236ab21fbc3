"""Strict JSON for ``--json`` output.

Python's ``json.dumps`` writes NaN and infinity as bare ``NaN``/``Infinity`` tokens, which are
not JSON: ``jq``, JavaScript and most strict parsers reject the whole document. Scores that are
undefined (a Spearman correlation over fewer than two shared edges, a stability with no valid
resample) are therefore written as ``null``.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (at any depth) replaced by ``None``."""
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    np = sys.modules.get("numpy")  # a numpy value exists only once numpy is imported
    if np is not None and isinstance(value, np.ndarray):
        return finite_or_none(value.tolist())
    if np is not None and isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def strict_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` that never emits NaN/Infinity (they become ``null``)."""
    return json.dumps(finite_or_none(value), allow_nan=False, default=str, **kwargs)
