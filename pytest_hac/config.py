"""One validated settings object, read from the command line, environment and ini file.

Every option exists in three spellings: ``--hac-model`` on the command line,
``HAC_MODEL`` in the environment and ``hac_model`` in the ini file; that is
also the order of precedence. Profiles (``--hac-profile=smoke``) set several
defaults at once, like Hypothesis profiles.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .attacks import ATTACKS, attack_info, make_spec, parse_eps
from .errors import HacError
from .result import GATE_RULES


@dataclass(frozen=True)
class Option:
    """One setting: its type, default and help, shared by the CLI, ini and environment."""

    name: str
    help: str
    default: Any = None
    kind: str = "str"  # str, int, float, bool, path, optional (a flag that may carry a value)
    metavar: str | None = None

    @property
    def flag(self) -> str:
        return "--hac-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "hac_" + self.name

    @property
    def env(self) -> str:
        return "HAC_" + self.name.upper()


OPTIONS: tuple[Option, ...] = (
    Option("model", "model: registry name (see --hac-list), timm:<name>, package.module:factory, or a model file",
           "efficientnet-lite0", metavar="NAME"),
    Option("data", "data: 'embedded', 'digits' or an ImageFolder path (default: the model's embedded data)",
           None, metavar="PATH"),
    Option("device", "device: auto, cpu, cuda or cuda:N", "auto"),
    Option("samples", "number of images (a deterministic subset chosen by --hac-seed; default: all)", None, "int"),
    Option("seed", "seed for the subset and the attacks' randomness", 0, "int"),
    Option("batch_size", "images per batch, or 'auto' (halves on CUDA out-of-memory)", "auto"),
    Option("report_dir", "where reports/<model>.md and .json go", "reports", "path"),
    Option("attack", "default attack for markers that name none", "pgd"),
    Option("eps", "default attack budget for markers that name none (e.g. 4/255)", "4/255"),
    Option("steps", "default number of attack steps (default: the attack's own)", None, "int"),
    Option("queries", "query budget of the gradient-free attack of the 'query' threat (default 5000, as the "
           "reference Square attack)", None, "int"),
    Option("gate", "gate rule: 'point' (the measured accuracy must reach the threshold), 'lenient' (the upper end "
           "of the 95% interval must) or 'confident' (the lower end must)", "point"),
    Option("soundness", "soundness findings: 'fail' the cells they implicate, only 'warn' in the report, or "
           "'thorough' (fail, and rerun attacked cells with twice the steps)", "fail"),
    Option("strict", "turn unreadable images and thresholds files without a table for the model into errors",
           False, "bool"),
    Option("weights_dir", "folder with local checkpoints (ELIC, HiFiC)", None, "path"),
    Option("offline", "forbid every download (also HAC_OFFLINE=1)", False, "bool"),
    Option("trust_model_file", "allow --hac-model to load a TorchScript/pickled file (this runs its code)",
           False, "bool"),
    Option("amp", "evaluate the classifier under bf16 autocast", False, "bool"),
    Option("restrict_classes", "restrict logits to the classes present in the data (the paper's Imagenette "
           "protocol: 10-way argmax and attack loss)", False, "bool"),
    Option("cache_mb", "memory for reusable adversarial examples and codec outputs (MiB)", 2048, "int"),
    Option("cache_dir", "keep adversarial examples, codec outputs and logits on disk here across sessions, keyed "
           "by content (model weights, data, attack, codec, versions); default: memory only", None, "path",
           metavar="DIR"),
    Option("cache_clear", "empty --hac-cache-dir before the run", False, "bool"),
    Option("no_progress", "no live status line (it shows only on a terminal, never under xdist, CI or -q)", False,
           "bool"),
    Option("thresholds", "TOML thresholds file ([model] \"cell-pattern\" = accuracy; default: hac_thresholds.toml "
           "beside the test module)", None, "path"),
    Option("save_baseline", "save this run's results as baseline NAME (default: the model's name)", None, "optional",
           metavar="NAME"),
    Option("compare", "compare with baseline NAME (default: the model's name) and add a delta column", None,
           "optional", metavar="NAME"),
    Option("compare_fail", "fail cells whose drop against the baseline is significant (95%) and larger than this "
           "many percentage points", None, "float", metavar="POINTS"),
    Option("allow_missing_baseline", "with --hac-compare-fail, pass when the baseline does not exist yet (a first "
           "run); otherwise a missing baseline is an error", False, "bool"),
    Option("baseline_dir", "where baselines are kept", ".hac/baselines", "path"),
    Option("threads", "torch CPU threads per process: 'auto' (under xdist: the cores divided among the workers; "
           "else torch's default) or a number", "auto"),
    Option("shard", "run only shard I of N of the cells (I/N, 1-based), for a CI matrix", None, metavar="I/N"),
)
OPTION_BY_NAME = {o.name: o for o in OPTIONS}
TRUE = {"1", "true", "yes", "on"}
#: What soundness findings do: fail the cells they implicate (default), warn only, or fail and probe more.
SOUNDNESS_MODES = ("fail", "warn", "thorough")
FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    """Validated settings of one session; build it with :func:`settings_from`."""

    model: str = "efficientnet-lite0"
    data: str | None = None
    device: str = "cpu"
    samples: int | None = None
    seed: int = 0
    batch_size: int | str = "auto"
    report_dir: Path = Path("reports")
    attack: str = "pgd"
    eps: float = 4 / 255
    steps: int | None = None
    queries: int | None = None
    gate: str = "point"
    soundness: str = "fail"
    strict: bool = False
    weights_dir: Path | None = None
    offline: bool = False
    trust_model_file: bool = False
    amp: bool = False
    restrict_classes: bool = False
    cache_mb: int = 2048
    cache_dir: Path | None = None
    cache_clear: bool = False
    no_progress: bool = False
    thresholds: Path | None = None
    save_baseline: str | None = None
    compare: str | None = None
    compare_fail: float | None = None
    allow_missing_baseline: bool = False
    baseline_dir: Path = Path(".hac/baselines")
    threads: int | str = "auto"
    shard: tuple[int, int] | None = None

    @property
    def marker_defaults(self) -> dict[str, Any]:
        return {"attack": self.attack, "eps": self.eps, "steps": self.steps, "queries": self.queries}


def settings_from(raw: Callable[[Option], Any], *, rootdir: Path | None = None) -> Settings:
    """Validate raw values (``raw(option)`` returns CLI/ini value or None) into :class:`Settings`."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        value = raw(opt)
        if value is None or value == "":
            value = os.environ.get(opt.env) if value is None else value
        values[opt.name] = _convert(opt, opt.default if value is None else value, rootdir)
    values["device"] = resolve_device(values["device"])
    _validate(values)
    return Settings(**values)


def _convert(opt: Option, value: Any, rootdir: Path | None) -> Any:
    if value is None:
        return None
    if opt.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise HacError(f"{opt.flag} / {opt.ini} takes true or false; got {value!r}")
    if opt.kind == "optional":
        text = str(value).strip()
        return "" if text.lower() in TRUE | {""} else text  # "" means "the default name"
    if opt.kind == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise HacError(f"{opt.flag} / {opt.ini} takes a number; got {value!r}") from None
    if opt.kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise HacError(f"{opt.flag} / {opt.ini} takes an integer; got {value!r}") from None
    if opt.kind == "path":
        path = Path(str(value)).expanduser()
        return path if path.is_absolute() or rootdir is None else rootdir / path
    return str(value).strip()


def _validate(v: dict[str, Any]) -> None:
    from .models import validate_model_name

    v["model"] = validate_model_name(v["model"])
    if v["samples"] is not None and v["samples"] < 1:
        raise HacError(f"--hac-samples must be at least 1; got {v['samples']}")
    if not 0 <= v["seed"] < 2**63:  # torch's generators take 64-bit seeds
        raise HacError(f"--hac-seed takes an integer from 0 to 2**63 - 1; got {v['seed']}")
    bs = v["batch_size"]
    if str(bs).lower() != "auto":
        try:
            bs = int(bs)
        except ValueError:
            raise HacError(f"--hac-batch-size takes a positive integer or 'auto'; got {bs!r}") from None
        if bs < 1:
            raise HacError(f"--hac-batch-size must be >= 1; got {bs}")
    v["batch_size"] = "auto" if str(bs).lower() == "auto" else bs
    v["attack"] = ATTACKS.canonical(v["attack"])
    v["eps"] = parse_eps(v["eps"])  # the marker's attacks check it against their norms and budgets
    if v["eps"] > 1 and attack_info(v["attack"]).norm == "Linf":
        make_spec(v["attack"], v["eps"])  # raises with the hint that budgets look like 4/255
    if v["steps"] is not None and v["steps"] < 1:
        raise HacError(f"--hac-steps must be >= 1; got {v['steps']}")
    if v["queries"] is not None and v["queries"] < 1:
        raise HacError(f"--hac-queries must be >= 1; got {v['queries']}")
    if v["gate"] == "ci":
        raise HacError("--hac-gate=ci was renamed: use 'lenient' for its old meaning (pass when the upper end of the "
                       "95% interval reaches the threshold) or 'point' (the default: the measured accuracy must)")
    if v["gate"] not in GATE_RULES:
        raise HacError(f"--hac-gate must be one of {', '.join(GATE_RULES)}; got {v['gate']!r}")
    if v["soundness"] not in SOUNDNESS_MODES:
        raise HacError(f"--hac-soundness must be one of {', '.join(SOUNDNESS_MODES)}; got {v['soundness']!r}")
    if v["weights_dir"] is not None and not v["weights_dir"].is_dir():
        raise HacError(f"--hac-weights-dir={str(v['weights_dir'])!r} is not a folder")
    if v["cache_mb"] < 0:
        raise HacError("--hac-cache-mb must be >= 0")
    if v["compare_fail"] is not None:
        if not v["compare_fail"] >= 0 or v["compare_fail"] == float("inf"):  # also NaN: it would never fail
            raise HacError(f"--hac-compare-fail takes a margin in percentage points >= 0; got {v['compare_fail']}")
        if v["compare"] is None:
            v["compare"] = ""
    for key in ("save_baseline", "compare"):
        if v[key] == "":
            from .files import safe_stem

            v[key] = safe_stem(v["model"])
    if v["thresholds"] is not None and not v["thresholds"].is_file():
        raise HacError(f"--hac-thresholds={str(v['thresholds'])!r}: no such file")
    if v["shard"] is not None:
        v["shard"] = parse_shard(v["shard"])
    threads = str(v["threads"]).strip().lower()
    if threads != "auto":
        if not threads.isdigit() or int(threads) < 1:
            raise HacError(f"--hac-threads takes 'auto' or a positive integer; got {v['threads']!r}")
        threads = int(threads)
    v["threads"] = threads


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


def setting_names() -> list[str]:
    return [f.name for f in fields(Settings)]
