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

from .attacks import attack_info, make_spec
from .core.judge.result import GATE_RULES
from .core.judge.soundness import SOUNDNESS_MODES
from .errors import HacError
from .registry import ATTACKS
from .setting_values import (
    BASELINES,
    FALSE,
    STRICTNESS,
    THRESHOLD_MARGIN,
    TRUE,
    Eps,
    InputSize,
    Steps,
    baseline_file,
    parse_budgets,
    parse_input_size,
    parse_margin,
    parse_progress,
    parse_shard,
    parse_steps,
    resolve_device,
)

KINDS = ("str", "int", "float", "bool", "path", "optional")  # optional: a flag that may carry a value
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
    input_size: InputSize | None = setting(None, "for a model from package.module:factory or a file without "
                                           "input_size and resize_size attributes: SIZE, the side of the square "
                                           "crop it takes, and resize=N, the shorter side photos are resized to "
                                           "before that crop (e.g. 224,resize=256)", metavar="SIZE[,resize=N]",
                                           shown="the model's `input_size` (else 224) and `resize_size` (else input "
                                           "size x 256/224)")
    decode_workers: int | None = setting(None, "threads decoding images (torch's threads: --hac-threads)", "int",
                                         shown="the machine's cores, at most 8")
    seed: int = setting(0, "seed for the subset and for every attack's randomness", "int")
    batch_size: int | str = setting("auto", "images per batch, or 'auto' (CPU: what the model's activations fit, "
                                    "at most 256, 16 for codecs; 256 on CUDA, halving on out-of-memory)")
    report_dir: Path = setting(Path("reports"), "where <model>.md, .json, .html and .png go", "path")
    gallery: int = setting(4, "photos in the HTML page's gallery (clean, decoded by each defense, attacked; chosen "
                           "by --hac-seed); 0: no gallery", "int")
    attack: str = setting("pgd", "the attack of markers that name none")
    eps: Eps = setting("4/255", "the attack budget of markers that name none: the L-inf budget, and l2=R the L2 "
                       "radius (L2 radii depend on the image size: RobustBench uses 0.5 at 32 px, 3.0 at 224 px), "
                       "e.g. 4/255,l2=3.0", metavar="BUDGET[,l2=R]",
                       shown="`4/255`; no L2 radius: an L2 marker without eps is a usage error")
    steps: Steps = setting(None, "the attack effort of markers that name none: N gradient steps, and queries=Q "
                           "the budget of the 'query' threat's and gradient-free attacks (e.g. 20,queries=1000)",
                           metavar="N[,queries=Q]", shown="the attack's own; queries 5000, as the reference Square "
                           "attack")
    gate: str = setting("point", "gate rule: 'point' (the measured accuracy must reach the threshold), 'lenient' "
                        "(the upper end of its 95% interval must) or 'confident' (the lower end must)")
    soundness: str = setting("fail", "soundness findings: 'fail' the cells they implicate, only 'warn' in the "
                             "report, or 'thorough' (fail, and rerun attacked cells at twice the steps)")
    strictness: str = setting("normal", "how strict the run is: 'normal' (unreadable images are skipped and "
                              "named; thresholds-file patterns that match no cell, and a baseline missing under "
                              "--hac-fail-drop, are usage errors), 'strict' (unreadable images and thresholds files "
                              "without a table for the model are errors too) or 'lenient' (unmatched patterns and a "
                              "missing baseline are warnings: a reduced pull-request matrix, a first run)")
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
    cache: Path | None = setting(None, "keep adversarial examples, codec outputs and logits on disk here across "
                                 "sessions, keyed by content (empty it with `pytest-hac clear-cache DIR`)", "path",
                                 metavar="DIR", shown="memory only")
    progress: float | None = setting("auto", "'auto': a live status line on a terminal, and where it does not show "
                                     "(CI, xdist, -q) a progress line in the log (cells done, current cell, "
                                     "images/s, time left) at most every 30 s; SECONDS: the same, with lines at "
                                     "most every SECONDS; 'off': neither", metavar="auto|off|SECONDS")
    thresholds: Path | None = setting(None, "TOML thresholds file ([model] \"cell-pattern\" = accuracy)", "path",
                                      shown="`hac_thresholds.toml` beside the test module")
    update_thresholds: float | None = setting(None, "record thresholds from this run: each cell's measured "
                                              f"accuracy minus MARGIN (alone: {THRESHOLD_MARGIN}), rounded down to "
                                              "two decimals, written under the model's table of the thresholds file "
                                              "(created if missing; other tables, comments and patterns kept); "
                                              "thresholds do not gate this run", "optional", metavar="MARGIN",
                                              shown="off")
    save_baseline: Path | None = setting(None, f"save this run's results as baseline NAME (kept as "
                                         f"{BASELINES}/NAME.json; a value ending in .json is the file itself; "
                                         "default: the model's name)", "optional", metavar="NAME", shown="off")
    compare: Path | None = setting(None, "compare with baseline NAME (as --hac-save-baseline names it; default: the "
                                   "model's name) and add a delta column", "optional", metavar="NAME", shown="off")
    fail_drop: float | None = setting(None, "fail on a significant (95%) drop larger than POINTS percentage points: "
                                      "cells against the baseline of --hac-compare, the run along the history of "
                                      "--hac-history (a step from the previous comparable run, or a drift over the "
                                      "trend window)", "float", metavar="POINTS", shown="off")
    history: Path | None = setting(None, "keep every complete run's report in this folder (one JSON per run, "
                                   "named by time and git commit; never rewritten) and add a trend section to "
                                   "the report", "path", metavar="DIR", shown="off")
    summary: str = setting("auto", "GitHub step summary: 'full' (the whole report), 'short' (failed cells, "
                           "regressions, soundness findings and a link to the run) or 'auto' (short on "
                           "pull-request events, else full)")
    threads: int | str = setting("auto", "torch CPU threads per process: 'auto' (under xdist the cores divided "
                                 "among the workers, else torch's default) or a number (decoding threads: "
                                 "--hac-decode-workers)")
    shard: tuple[int, int] | None = setting(None, "run only shard I of N of the cells (1-based), for a CI matrix",
                                            metavar="I/N", shown="all cells")

    @property
    def fingerprint(self) -> dict[str, str]:
        """The settings of :data:`DECIDING`, as text: shards that differ in any of them are not one run."""
        return {name: str(getattr(self, name)) for name in DECIDING}

    @property
    def marker_defaults(self) -> dict[str, Any]:
        return {"attack": self.attack, "eps": self.eps.linf, "eps_l2": self.eps.l2, "steps": self.steps.gradient,
                "queries": self.steps.queries}


#: Settings that change a cell's number or its verdict (the thresholds a run applies are fingerprinted apart, from
#: the collected cells): ``pytest-hac merge`` refuses shards that differ in any of them, naming it.
DECIDING = ("model", "data", "device", "samples", "labels", "input_size", "seed", "attack", "eps", "steps",
            "gate", "soundness", "strictness", "amp", "restrict_classes", "compare", "fail_drop", "update_thresholds")


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


def _removed(name: str) -> Option:
    return Option(name, "removed", None, "optional")


#: Spellings of earlier versions, each with what replaced it: any of them (command line, ini, environment) is a
#: usage error that names the new spelling (0.1 keeps no aliases).
REMOVED: tuple[tuple[Option, str], ...] = tuple((_removed(name), new) for name, new in (
    ("workers", "--hac-decode-workers=N"),
    ("no_progress", "--hac-progress=off"),
    ("progress_every", "--hac-progress=SECONDS (or off)"),
    ("cache_dir", "--hac-cache=DIR"),
    ("cache_clear", "`pytest-hac clear-cache DIR` before the run"),
    ("strict", "--hac-strictness=strict"),
    ("allow_unused_thresholds", "--hac-strictness=lenient"),
    ("allow_missing_baseline", "--hac-strictness=lenient"),
    ("threshold_margin", "--hac-update-thresholds=MARGIN"),
    ("queries", "--hac-steps=N,queries=Q (or queries=Q alone)"),
    ("eps_l2", "--hac-eps=BUDGET,l2=R (e.g. 4/255,l2=3.0)"),
    ("resize_size", "--hac-input-size=SIZE,resize=N (e.g. 224,resize=256)"),
    ("compare_fail", "--hac-fail-drop=POINTS with --hac-compare[=NAME]"),
    ("trend_fail", "--hac-fail-drop=POINTS with --hac-history=DIR"),
    ("baseline_dir", "a path ending in .json as --hac-save-baseline's and --hac-compare's NAME"),
))


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
    for old, new in REMOVED:
        for spelling, value in ((old.flag, cli(old)), (old.env, env.get(old.env)),
                                (f"ini {old.ini}", None if ini is None else ini(old))):
            if value is not None:
                raise HacError(f"{spelling} was removed in 0.1: use {new}")
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
    v["eps"] = parse_budgets(v["eps"])  # the marker's attacks check them against their norms and budgets
    if v["eps"].linf > 1 and attack_info(v["attack"]).norm == "Linf":
        make_spec(v["attack"], v["eps"].linf)  # raises with the hint that budgets look like 4/255
    v["steps"] = parse_steps(v["steps"])
    if v["gate"] == "ci":
        raise HacError("--hac-gate=ci was renamed: use 'lenient' for its old meaning (pass when the upper end of the "
                       "95% interval reaches the threshold) or 'point' (the default: the measured accuracy must)")
    if v["gate"] not in GATE_RULES:
        raise HacError(f"--hac-gate must be one of {', '.join(GATE_RULES)}; got {v['gate']!r}")
    if v["soundness"] not in SOUNDNESS_MODES:
        raise HacError(f"--hac-soundness must be one of {', '.join(SOUNDNESS_MODES)}; got {v['soundness']!r}")
    if v["weights_dir"] is not None and not v["weights_dir"].is_dir():
        raise HacError(f"--hac-weights-dir={str(v['weights_dir'])!r} is not a folder")
    v["progress"] = parse_progress(v["progress"])
    if v["strictness"] not in STRICTNESS:
        raise HacError(f"--hac-strictness must be one of {', '.join(STRICTNESS)}; got {v['strictness']!r}")
    if v["gallery"] < 0:
        raise HacError(f"--hac-gallery takes a number of photos >= 0 (0: no gallery); got {v['gallery']}")
    if v["cache_mb"] < 0:
        raise HacError("--hac-cache-mb must be >= 0")
    if v["decode_workers"] is not None and v["decode_workers"] < 1:
        raise HacError(f"--hac-decode-workers must be >= 1; got {v['decode_workers']}")
    v["input_size"] = parse_input_size(v["input_size"])
    if v["labels"] is not None and not v["labels"].is_file():
        raise HacError(f"--hac-labels={str(v['labels'])!r}: no such file")
    if v["fail_drop"] is not None:
        if not v["fail_drop"] >= 0 or v["fail_drop"] == float("inf"):  # also NaN: it would never fail
            raise HacError(f"--hac-fail-drop takes a margin in percentage points >= 0; got {v['fail_drop']}")
        if v["compare"] is None and v["history"] is None:
            raise HacError("--hac-fail-drop needs something to find a drop against: add --hac-compare[=NAME] (a "
                           "baseline) or --hac-history=DIR (the trend), or both")
    for key in ("save_baseline", "compare"):
        if v[key] is not None:
            v[key] = baseline_file(v[key] or v["model"])
    if v["summary"] not in SUMMARY_MODES:
        raise HacError(f"--hac-summary must be one of {', '.join(SUMMARY_MODES)}; got {v['summary']!r}")
    v["update_thresholds"] = parse_margin(v["update_thresholds"])
    if v["thresholds"] is not None and not v["thresholds"].is_file() and v["update_thresholds"] is None:
        raise HacError(f"--hac-thresholds={str(v['thresholds'])!r}: no such file")
    if v["shard"] is not None:
        v["shard"] = parse_shard(v["shard"])
    threads = str(v["threads"]).strip().lower()
    if threads != "auto":
        if not threads.isdigit() or int(threads) < 1:
            raise HacError(f"--hac-threads takes 'auto' or a positive integer; got {v['threads']!r}")
        threads = int(threads)
    v["threads"] = threads
