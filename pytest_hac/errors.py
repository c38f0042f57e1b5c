"""Errors that tell the user what to fix."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class HacError(Exception):
    """A configuration or input problem; the plugin turns it into a pytest usage error."""


class BudgetWarning(UserWarning):
    """An attack budget that is allowed but implausible (a typo more often than a plan): it names the scale."""


class WeightsNotFound(HacError):
    """Pretrained weights are missing locally and cannot (or may not) be downloaded."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> HacError:
    """An error for an unknown registry name that lists the valid ones and the closest match."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return HacError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}.")
