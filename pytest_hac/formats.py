"""How pytest-hac writes its numbers and names: durations, an accuracy with its interval, eps, TOML keys.

One wording each, so the terminal, the plan, the reports and the thresholds files agree. It sits at the
bottom layer (it imports nothing of the package) because every layer writes these: ``attacks`` its eps
labels, ``core`` its cost warnings and thresholds files, ``report`` its tables, ``plugin`` its plan and
progress lines.
"""
from __future__ import annotations

import re

#: The thresholds file a test module's cells read when ``--hac-thresholds`` names none (beside the module).
THRESHOLDS_FILE = "hac_thresholds.toml"
#: Decimals of an accuracy in a matrix cell (a glance) and in a cells table (the record).
MATRIX_DIGITS, TABLE_DIGITS = 2, 3


def duration(seconds: float) -> str:
    """``0.04 s``, ``3.2 s``, ``42 s``, ``7 min``, ``1.5 h``."""
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def interval(low: float, high: float, digits: int = TABLE_DIGITS) -> str:
    """A 95% interval: ``[0.812, 0.894]``."""
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def accuracy(value: float, low: float, high: float, digits: int = MATRIX_DIGITS) -> str:
    """An accuracy with its 95% interval: ``0.85 [0.81, 0.89]``."""
    return f"{value:.{digits}f} {interval(low, high, digits)}"


def eps_label(eps: float | None, norm: str = "Linf") -> str:
    """eps as people write it, the one wording everywhere: 4/255 for L-inf, the plain value for L2,
    ``min-norm`` for a minimum-norm attack (no eps)."""
    if eps is None:
        return "min-norm"
    if norm == "Linf":
        k = eps * 255
        return f"{k:g}/255" if abs(k - round(k)) < 1e-6 else f"{eps:.4g}"
    return f"{eps:g}"


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_key(name: str) -> str:
    """``name`` as a TOML key: bare where TOML allows (ASCII letters, digits, ``-``, ``_``), else a basic
    string with quotes, backslashes and control characters escaped, so ``tomllib`` reads back ``name``."""
    if _BARE_KEY.fullmatch(name):
        return name
    escaped = "".join(_ESCAPES.get(ch, f"\\u{ord(ch):04X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch)
                      for ch in name)
    return f'"{escaped}"'
