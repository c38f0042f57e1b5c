"""How a setting's text becomes its value: the folded settings' small grammars, shards, devices.

:mod:`pytest_hac.settings` declares the settings; this module reads the values that are more than a
number or a name (``--hac-eps=4/255,l2=3.0``, ``--hac-input-size=224,resize=256``, ``--hac-progress``,
``--hac-update-thresholds[=MARGIN]``, a baseline's NAME, ``--hac-shard=I/N``, ``--hac-device``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from .attacks import parse_eps
from .errors import HacError

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
#: How strict a run is, from lenient to strict (--hac-strictness).
STRICTNESS = ("lenient", "normal", "strict")
#: What --hac-update-thresholds alone takes off each cell's measured accuracy.
THRESHOLD_MARGIN = 0.02
#: Where a baseline named NAME is kept (--hac-save-baseline, --hac-compare).
BASELINES = ".hac/baselines"


class Eps(NamedTuple):
    """The attack budgets of markers that name none, by norm (--hac-eps)."""

    linf: float
    l2: float | None = None


class Steps(NamedTuple):
    """The attack effort of markers that name none (--hac-steps): gradient steps, the query budget."""

    gradient: int | None = None
    queries: int | None = None


class InputSize(NamedTuple):
    """Preprocessing of a model that does not declare it (--hac-input-size): crop side, resized shorter side."""

    crop: int | None = None
    resize: int | None = None



def _parts(text: Any, keys: tuple[str, ...], usage: str) -> dict[str, str]:
    """``"VALUE,key=V"`` -> {"": "VALUE", "key": "V"}: a folded setting's main value and its named ones (``keys``),
    each at most once; anything else is a usage error that shows ``usage``."""
    parts: dict[str, str] = {}
    for part in str(text).split(","):
        key, _, value = part.strip().rpartition("=")
        key = key.strip().lower()
        if key not in ("", *keys) or key in parts or not value.strip():
            raise HacError(f"{usage}; got {text!r}")
        parts[key] = value.strip()
    return parts


def parse_budgets(text: Any) -> Eps:
    """``"4/255"`` -> Eps(4/255); ``"4/255,l2=3.0"`` -> Eps(4/255, 3.0)."""
    parts = _parts(text, ("linf", "l2"), "--hac-eps takes BUDGET[,l2=R], e.g. 4/255 or 4/255,l2=3.0")
    linf = parts.get("", parts.get("linf"))
    if linf is None:
        raise HacError(f"--hac-eps names no L-inf budget; give it first, e.g. 4/255,l2=3.0; got {text!r}")
    return Eps(parse_eps(linf), None if "l2" not in parts else parse_eps(parts["l2"]))


def _sizes(text: Any, key: str, usage: str, positive: str) -> tuple[int | None, int | None]:
    """The main and the ``key=`` integers of a folded setting, each >= 1 where given (else ``positive``)."""
    parts = _parts(text, (key,), usage)
    try:
        main, named = (None if k not in parts else int(parts[k]) for k in ("", key))
    except ValueError:
        raise HacError(f"{usage}; got {text!r}") from None
    if any(n is not None and n < 1 for n in (main, named)):
        raise HacError(f"{positive}; got {text!r}")
    return main, named


def parse_input_size(text: Any) -> InputSize:
    """``"224"`` -> InputSize(224, None); ``"224,resize=256"`` -> InputSize(224, 256); ``"resize=256"`` too."""
    if text is None:
        return InputSize()
    crop, resize = _sizes(text, "resize", "--hac-input-size takes SIZE[,resize=N], e.g. 224 or 224,resize=256",
                          "--hac-input-size: SIZE and resize= must be >= 1")
    if crop is not None and resize is not None and resize < crop:
        raise HacError(f"--hac-input-size={text}: resize={resize} is smaller than the crop {crop}: photos are resized "
                       f"to it and then centre-cropped to the input size")
    return InputSize(crop, resize)


def parse_steps(text: Any) -> Steps:
    """``None`` -> Steps(); ``"20"`` -> Steps(20); ``"20,queries=1000"`` -> Steps(20, 1000); ``"queries=1000"``."""
    if text is None:
        return Steps()
    return Steps(*_sizes(text, "queries", "--hac-steps takes N[,queries=Q], e.g. 20 or 20,queries=1000",
                         "--hac-steps: N and queries= must be >= 1"))


def parse_progress(text: Any) -> float | None:
    """``auto`` -> 30 (seconds between log lines), ``off`` -> None, a number of seconds > 0 -> itself."""
    value = str(text).strip().lower()
    if value == "auto":
        return 30.0
    if value == "off":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise HacError(f"--hac-progress takes auto, off or SECONDS > 0 between log lines; got {text!r}")
    return seconds


def parse_margin(text: str | None) -> float | None:
    """--hac-update-thresholds: None (off), "" or true (the default margin), false (off) or a margin in [0, 1)."""
    if text is None or text.lower() in FALSE - {"0", ""}:
        return None
    if text == "" or text.lower() in TRUE - {"1"}:
        return THRESHOLD_MARGIN
    try:
        margin = float(text)
    except ValueError:
        margin = float("nan")
    if not 0 <= margin < 1:
        raise HacError(f"--hac-update-thresholds takes an accuracy margin in [0, 1), e.g. 0.02 (alone: "
                       f"{THRESHOLD_MARGIN}); got {text!r}")
    return margin


def baseline_file(name: str) -> Path:
    """Baseline NAME's file: ``.hac/baselines/NAME.json``, or the value itself when it ends in .json."""
    if name.lower().endswith(".json"):
        return Path(name).expanduser()
    from .io.files import safe_stem

    return Path(BASELINES) / f"{safe_stem(name)}.json"


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4); shards are 1-based."""
    try:
        i, n = (int(p) for p in str(text).split("/"))
    except ValueError:
        raise HacError(f"--hac-shard takes I/N, e.g. 1/4; got {text!r}") from None
    if not 1 <= i <= n:
        raise HacError(f"--hac-shard={text}: need 1 <= I <= N")
    return i, n


def resolve_device(name: str) -> str:
    """``auto`` picks CUDA when present; asking for CUDA without one is a usage error."""
    name = str(name).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise HacError(f"--hac-device={name}: no CUDA GPU is visible here; use --hac-device=cpu or auto")
        if ":" in name:
            idx = name.split(":", 1)[1]
            if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
                raise HacError(f"--hac-device={name}: there are {torch.cuda.device_count()} CUDA devices (0..N-1)")
        return name
    raise HacError(f"--hac-device must be auto, cpu, cuda or cuda:N; got {name!r}")

