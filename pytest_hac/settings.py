"""One validated settings object, read from the command line, environment and ini file.

Every setting is declared once, as a field of :class:`Settings`, and exists in three
spellings: ``--hac-model`` on the command line, ``HAC_MODEL`` in the environment and
``hac_model`` in the ini file; that is also the order of precedence.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .attacks import attack_info, make_spec, parse_eps
from .core.result import GATE_RULES
from .core.soundness import SOUNDNESS_MODES
from .errors import HacError
from .registry import ATTACKS

KINDS = ("str", "int", "float", "bool", "path", "optional")  # optional: a flag that may carry a value
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}
#: GitHub step summaries: the whole report, only what needs a look, or short on pull-request events only.
SUMMARY_MODES = ("auto", "short", "full")


def setting(default: Any, help: str, kind: str = "str", *, metavar: str | None = None,
            shown: str | None = None) -> Any:
    """A field of :class:`Settings` that is also an option: ``--hac-<name>``, ini ``hac_<name>``, ``HAC_<NAME>``.

    ``help`` is the one description (``pytest --help``, the README's table); ``shown`` is how
    the README shows the default when the value alone would not say it.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    return field(default=default, metadata={"help": help, "kind": kind, "metavar": metavar, "shown": shown})


@dataclass(frozen=True)
class Settings:
    """Validated settings of one session; build it with :func:`settings_from`.

    Each field is declared once, here, and is at the same time a command-line option, an
    ini key and an environment variable (:data:`OPTIONS`), in that order of precedence.
    """

    model: str = setting("efficientnet-lite0", "model: registry name (see --hac-list), timm:<name>, "
                         "package.module:factory, or a model file", metavar="NAME")
    data: str | None = setting(None, "data: 'embedded', 'digits' or an ImageFolder path", metavar="PATH",
                               shown="`embedded` (`digits` for the tiny models)")
    device: str = setting("auto", "device: auto (CUDA when visible), cpu, cuda or cuda:N")
    samples: int | None = setting(None, "number of images: a deterministic subset chosen by --hac-seed from the "
                                  "file list (only these are decoded)", "int", shown="all images")
    labels: Path | None = setting(None, "file mapping class folder names to the model's class indices (JSON "
                                  "object or two-column text)", "path", metavar="FILE",
                                  shown="by folder name: WordNet ids, indices, else sorted names")
    input_size: int | None = setting(None, "side of the square crop a model from package.module:factory or a "
                                     "file takes, when it has no input_size attribute", "int",
                                     shown="the model's `input_size`, else 224")
    resize_size: int | None = setting(None, "shorter side photos are resized to before that crop, when the model "
                                      "has no resize_size attribute", "int",
                                      shown="the model's `resize_size`, else input size x 256/224")
    workers: int | None = setting(None, "threads decoding images", "int", shown="the machine's cores, at most 8")
    seed: int = setting(0, "seed for the subset and for every attack's randomness", "int")
    batch_size: int | str = setting("auto", "images per batch, or 'auto' (CPU: what the model's activations fit, "
                                    "16 for codecs; 256 on CUDA, halving on out-of-memory)")
    report_dir: Path = setting(Path("reports"), "where <model>.md, .json, .html and .png go", "path")
    gallery: int = setting(4, "photos in the HTML page's gallery (clean, decoded by each defense, attacked; chosen "
                           "by --hac-seed); 0: no gallery", "int")
    attack: str = setting("pgd", "the attack of markers that name none")
    eps: float = setting(4 / 255, "the L-inf attack budget of markers that name none", shown="`4/255`")
    eps_l2: float | None = setting(None, "the L2 attack budget of markers that name none (L2 radii depend on the "
                                   "image size: RobustBench uses 0.5 at 32 px, 3.0 at 224 px)",
                                   shown="none: an L2 marker without eps is a usage error")
    steps: int | None = setting(None, "attack steps of markers that name none", "int", shown="the attack's own")
    queries: int | None = setting(None, "query budget of the 'query' threat's gradient-free attack", "int",
                                  shown="5000, as the reference Square attack")
    gate: str = setting("point", "gate rule: 'point' (the measured accuracy must reach the threshold), 'lenient' "
                        "(the upper end of its 95% interval must) or 'confident' (the lower end must)")
    soundness: str = setting("fail", "soundness findings: 'fail' the cells they implicate, only 'warn' in the "
                             "report, or 'thorough' (fail, and rerun attacked cells at twice the steps)")
    strict: bool = setting(False, "make unreadable images and thresholds files without a table for the model "
                           "errors", "bool")
    weights_dir: Path | None = setting(None, "folder with local checkpoints (ELIC, HiFiC, CompressAI zoo)", "path")
    offline: bool = setting(False, "forbid every download", "bool")
    trust_model_file: bool = setting(False, "allow --hac-model to load a TorchScript or pickled file (this runs "
                                     "its code)", "bool")
    amp: bool = setting(False, "evaluate the classifier under bf16 autocast", "bool")
    restrict_classes: bool = setting(False, "restrict logits to the classes present in the data (the paper's "
                                     "Imagenette protocol: 10-way argmax and attack loss)", "bool")
    cache_mb: int = setting(2048, "memory budget (MiB): chunks of images are sized to half of it, reusable "
                            "adversarial examples and codec outputs kept in the other half (the rest spills to a "
                            "scratch folder on disk; 0 keeps nothing in memory)", "int")
    cache_dir: Path | None = setting(None, "keep adversarial examples, codec outputs and logits on disk here "
                                     "across sessions, keyed by content", "path", metavar="DIR",
                                     shown="memory only")
    cache_clear: bool = setting(False, "empty --hac-cache-dir before the run", "bool")
    no_progress: bool = setting(False, "no live status line (it shows only on a terminal, never under xdist, CI "
                                "or -q)", "bool")
    progress_every: float = setting(30.0, "where the live status line does not show (CI, xdist, -q): a progress line "
                                    "in the log at most every SECONDS (cells done, current cell, images/s, time "
                                    "left); 0: none", "float", metavar="SECONDS")
    thresholds: Path | None = setting(None, "TOML thresholds file ([model] \"cell-pattern\" = accuracy)", "path",
                                      shown="`hac_thresholds.toml` beside the test module")
    allow_unused_thresholds: bool = setting(False, "let thresholds-file patterns match no cell of this run (a "
                                            "reduced pull-request matrix): a warning instead of a usage error",
                                            "bool")
    update_thresholds: bool = setting(False, "record thresholds from this run: each cell's lower end of its 95% "
                                      "interval minus --hac-threshold-margin, rounded down to two decimals, written "
                                      "under the model's table of the thresholds file (created if missing; other "
                                      "tables, comments and patterns kept); thresholds do not gate this run", "bool")
    threshold_margin: float = setting(0.02, "what --hac-update-thresholds takes off each cell's measured accuracy",
                                      "float")
    save_baseline: str | None = setting(None, "save this run's results as baseline NAME (default: the model's "
                                        "name)", "optional", metavar="NAME", shown="off")
    compare: str | None = setting(None, "compare with baseline NAME (default: the model's name) and add a delta "
                                  "column", "optional", metavar="NAME", shown="off")
    compare_fail: float | None = setting(None, "fail cells whose drop against the baseline is significant (95%) "
                                         "and larger than this many percentage points", "float", metavar="POINTS",
                                         shown="off")
    allow_missing_baseline: bool = setting(False, "with --hac-compare-fail, pass when the baseline does not exist "
                                           "yet (a first run); otherwise a missing baseline is an error", "bool")
    baseline_dir: Path = setting(Path(".hac/baselines"), "where baselines are kept", "path")
    history: Path | None = setting(None, "keep every complete run's report in this folder (one JSON per run, "
                                   "named by time and git commit; never rewritten) and add a trend section to "
                                   "the report", "path", metavar="DIR", shown="off")
    trend_fail: float | None = setting(None, "with --hac-history, fail the run on a significant drop larger than "
                                       "this many percentage points: against the previous comparable run (a step), "
                                       "or from the first to the last comparable run of the trend window (a drift)",
                                       "float", metavar="POINTS", shown="off")
    summary: str = setting("auto", "GitHub step summary: 'full' (the whole report), 'short' (failed cells, "
                           "regressions, soundness findings and a link to the run) or 'auto' (short on "
                           "pull-request events, else full)")
    threads: int | str = setting("auto", "torch CPU threads per process: 'auto' (under xdist the cores divided "
                                 "among the workers, else torch's default) or a number")
    shard: tuple[int, int] | None = setting(None, "run only shard I of N of the cells (1-based), for a CI matrix",
                                            metavar="I/N", shown="all cells")

    @property
    def fingerprint(self) -> dict[str, str]:
        """The settings of :data:`DECIDING`, as text: shards that differ in any of them are not one run."""
        return {name: str(getattr(self, name)) for name in DECIDING}

    @property
    def marker_defaults(self) -> dict[str, Any]:
        return {"attack": self.attack, "eps": self.eps, "eps_l2": self.eps_l2, "steps": self.steps,
                "queries": self.queries}


#: Settings that change a cell's number or its verdict (the thresholds a run applies are fingerprinted apart, from
#: the collected cells): ``pytest-hac merge`` refuses shards that differ in any of them, naming it.
DECIDING = ("model", "data", "device", "samples", "labels", "input_size", "resize_size", "seed", "attack", "eps",
            "eps_l2", "steps", "queries", "gate", "soundness", "strict", "amp", "restrict_classes", "compare",
            "compare_fail", "allow_missing_baseline", "update_thresholds")


@dataclass(frozen=True)
class Option:
    """One setting as pytest sees it: derived from a :class:`Settings` field, never written twice."""

    name: str
    help: str
    default: Any
    kind: str
    metavar: str | None = None
    shown: str | None = None

    @property
    def flag(self) -> str:
        return "--hac-" + self.name.replace("_", "-")

    @property
    def ini(self) -> str:
        return "hac_" + self.name

    @property
    def default_shown(self) -> str:
        """The default as people read it (README table, ``--help``)."""
        return self.shown or ("off" if self.default is False else f"`{self.default}`")

    @property
    def env(self) -> str:
        return "HAC_" + self.name.upper()


OPTIONS: tuple[Option, ...] = tuple(Option(f.name, f.metadata["help"], f.default, f.metadata["kind"],
                                           f.metadata["metavar"], f.metadata["shown"]) for f in fields(Settings))


def options_table() -> str:
    """The README's table of every option, generated from :data:`OPTIONS` (a test keeps them equal)."""
    rows = ["| command line | ini key | environment | default | what it does |", "|---|---|---|---|---|"]
    for o in OPTIONS:
        rows.append(f"| `{o.flag}` | `{o.ini}` | `{o.env}` | {o.default_shown} | {o.help} |")
    return "\n".join(rows)


def settings_from(cli: Callable[[Option], Any], ini: Callable[[Option], Any] | None = None, *,
                  env: Mapping[str, str] | None = None, rootdir: Path | None = None) -> Settings:
    """Validate raw values into :class:`Settings`: the command line (``cli(option)``), else the
    environment (``env``, default ``os.environ``), else the ini file (``ini(option)``), else the default."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        value = cli(opt)
        if value is None:
            value = env.get(opt.env)
        if value is None and ini is not None:
            value = ini(opt)
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
    if v["eps_l2"] is not None:
        v["eps_l2"] = parse_eps(v["eps_l2"])
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
    if not v["progress_every"] >= 0:
        raise HacError(f"--hac-progress-every takes seconds >= 0 (0: no progress lines); got {v['progress_every']}")
    if v["gallery"] < 0:
        raise HacError(f"--hac-gallery takes a number of photos >= 0 (0: no gallery); got {v['gallery']}")
    if v["cache_mb"] < 0:
        raise HacError("--hac-cache-mb must be >= 0")
    for key in ("input_size", "resize_size", "workers"):
        if v[key] is not None and v[key] < 1:
            raise HacError(f"--hac-{key.replace('_', '-')} must be >= 1; got {v[key]}")
    if v["input_size"] is not None and v["resize_size"] is not None and v["resize_size"] < v["input_size"]:
        raise HacError(f"--hac-resize-size={v['resize_size']} is smaller than --hac-input-size={v['input_size']}: "
                       f"photos are resized to it and then centre-cropped to the input size")
    if v["labels"] is not None and not v["labels"].is_file():
        raise HacError(f"--hac-labels={str(v['labels'])!r}: no such file")
    if v["compare_fail"] is not None:
        if not v["compare_fail"] >= 0 or v["compare_fail"] == float("inf"):  # also NaN: it would never fail
            raise HacError(f"--hac-compare-fail takes a margin in percentage points >= 0; got {v['compare_fail']}")
        if v["compare"] is None:
            v["compare"] = ""
    for key in ("save_baseline", "compare"):
        if v[key] == "":
            from .io.files import safe_stem

            v[key] = safe_stem(v["model"])
    if v["trend_fail"] is not None:
        if not v["trend_fail"] >= 0 or v["trend_fail"] == float("inf"):
            raise HacError(f"--hac-trend-fail takes a margin in percentage points >= 0; got {v['trend_fail']}")
        if v["history"] is None:
            raise HacError("--hac-trend-fail needs a history to find a trend in: add --hac-history=DIR "
                           "(ini hac_history)")
    if v["summary"] not in SUMMARY_MODES:
        raise HacError(f"--hac-summary must be one of {', '.join(SUMMARY_MODES)}; got {v['summary']!r}")
    if not 0 <= v["threshold_margin"] < 1:
        raise HacError(f"--hac-threshold-margin takes an accuracy margin in [0, 1), e.g. 0.02; got "
                       f"{v['threshold_margin']}")
    if v["thresholds"] is not None and not v["thresholds"].is_file() and not v["update_thresholds"]:
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

