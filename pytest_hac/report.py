"""Reports: Markdown (tabulate), JSON (the baseline format), a PNG plot, GitHub's step summary.

Every file is written atomically (temporary file + ``os.replace``), so an
interrupted run, or two sessions sharing a folder, never leave a half-written
report.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .result import Result

SCHEMA = 1
STEP_SUMMARY_LIMIT = 1 << 20  # GitHub rejects step summaries over 1 MiB


@dataclass
class Report:
    """All results of a session plus what is needed to reproduce and compare them."""

    model: str
    dataset: str
    n: int
    device: str
    seed: int
    gate_rule: str
    ids: list[str] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    complete: bool = False
    skipped_images: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "model": self.model, "dataset": self.dataset, "n": self.n, "device": self.device,
            "seed": self.seed, "gate_rule": self.gate_rule, "complete": self.complete, "ids": self.ids,
            "skipped_images": self.skipped_images, "meta": self.meta, "notes": self.notes,
            "results": [r.to_dict() for r in sorted(self.results, key=lambda r: r.case_id)],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        from .errors import HacError

        if not isinstance(data, dict):
            raise HacError(f"a report is a JSON object with 'schema', 'model' and 'results'; got a "
                           f"{type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise HacError(f"report schema {data.get('schema')!r} is not supported (this pytest-hac reads schema "
                           f"{SCHEMA}); regenerate it with this version")
        try:
            fields_ = {k: data[k] for k in ("model", "dataset", "n", "device", "seed", "gate_rule")}
            return cls(**fields_, ids=data.get("ids", []), results=[Result.from_dict(r) for r in data["results"]],
                       complete=data.get("complete", False), skipped_images=data.get("skipped_images", []),
                       meta=data.get("meta", {}), notes=data.get("notes", []))
        except (KeyError, TypeError, AttributeError) as exc:
            raise HacError(f"report is damaged or hand-edited (schema {SCHEMA} but {type(exc).__name__}: {exc}); "
                           f"regenerate it") from None

    @property
    def counts(self) -> dict[str, int]:
        passed = sum(1 for r in self.results if r.passed is True)
        failed = sum(1 for r in self.results if r.passed is False)
        return {"cells": len(self.results), "passed": passed, "failed": failed}


def safe_stem(name: str) -> str:
    """A file name stem from a model name that cannot leave the report folder."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"
    return stem[:100]


def atomic_write(path: Path, content: str | bytes | Callable[[BinaryIO], object]) -> None:
    """Write text, bytes, or what ``content(file)`` writes to a binary file, to ``path`` atomically:
    a temporary file beside it, then ``os.replace``. Readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if isinstance(content, str):
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(content)
        else:
            with os.fdopen(fd, "wb") as fh:
                if callable(content):
                    content(fh)
                else:
                    fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _delta(r: Result) -> str:
    if r.baseline_accuracy is None:
        return ""
    flag = " ⚠" if r.regression else ""
    return f" (Δ {100 * (r.accuracy - r.baseline_accuracy):+.1f}{flag})"


def _acc(r: Result) -> str:
    mark = {True: "", False: " ❌", None: ""}[r.passed]
    return f"{r.accuracy:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]{_delta(r)}{mark}"


def _column(r: Result) -> str:
    if r.threat == "clean":
        return "clean"
    eps = r.attack_params.get("eps", r.eps)
    norm = r.attack_params.get("norm", "Linf")
    label = f"{eps * 255:g}/255" if norm == "Linf" and eps is not None else f"{eps:g}"
    return f"{r.threat} {r.attack} {label}"


def _defense(r: Result) -> tuple:
    return (r.codec, -1 if r.quality is None else r.quality, r.rounds)


def matrix_table(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    """Rows codec/quality/rounds; columns bpp, PSNR and one accuracy column per threat x attack."""
    columns: list[str] = []
    for r in sorted(results, key=lambda r: (r.threat != "clean", r.threat, r.attack or "", r.eps or 0)):
        if _column(r) not in columns:
            columns.append(_column(r))
    rows: dict[tuple, dict[str, Any]] = defaultdict(dict)
    for r in results:
        row = rows[_defense(r)]
        row[_column(r)] = _acc(r)
        if r.threat == "clean" or "bpp" not in row:
            row["bpp"], row["psnr"] = r.bpp, r.psnr
    headers = ["codec", "quality", "rounds", "bpp", "PSNR dB"] + columns
    body = []
    for key in sorted(rows):
        row = rows[key]
        q = "–" if key[1] == -1 else str(key[1])
        body.append([key[0], q, str(key[2]), _fmt(row.get("bpp")), _fmt(row.get("psnr"), 1)]
                    + [row.get(c, "") for c in columns])
    return headers, body


def markdown(report: Report, *, plot_name: str | None = None, extra_sections: list[str] | None = None) -> str:
    from tabulate import tabulate

    c = report.counts
    status = "complete" if report.complete else "**INCOMPLETE** (interrupted or still running: cells below finished)"
    lines = [
        f"# pytest-hac robustness report: {report.model}",
        "",
        f"- **model** `{report.model}` · **data** `{report.dataset}` · **n** {report.n} images · "
        f"**device** {report.device} · **seed** {report.seed}",
        f"- **cells** {c['cells']} · **passed** {c['passed']} · **failed** {c['failed']} · run {status}",
        f"- **gate rule** `{report.gate_rule}`: "
        + ("a cell fails only when its whole 95% Wilson interval lies below the threshold"
           if report.gate_rule == "ci" else "a cell fails when its accuracy is below the threshold"),
    ]
    if report.skipped_images:
        lines.append(f"- **skipped unreadable images** {len(report.skipped_images)}: "
                     + ", ".join(report.skipped_images[:10]))
    failed = sorted((r for r in report.results if r.passed is False), key=lambda r: r.accuracy - (r.threshold or 0))
    if failed:
        lines.append("- **worst cells**: " + ", ".join(
            f"`{r.case_id}` {r.accuracy:.2f}" + (f" < {r.threshold:.2f}" if r.threshold is not None else "")
            for r in failed[:5]))
    drops = sorted((r for r in report.results if r.baseline_accuracy is not None),
                   key=lambda r: r.accuracy - r.baseline_accuracy)
    if drops and drops[0].accuracy < drops[0].baseline_accuracy:
        lines.append("- **worst regressions against the baseline**: " + ", ".join(
            f"`{r.case_id}` {100 * (r.accuracy - r.baseline_accuracy):+.1f} pts" + (" (significant)" if r.regression
                                                                                   else "")
            for r in drops[:5] if r.accuracy < r.baseline_accuracy))
    gains = [r for r in report.results if r.baseline_accuracy is not None and r.p_drop is not None
             and r.accuracy > r.baseline_accuracy]
    if gains:
        lines.append(f"- {len(gains)} cell(s) improved on the baseline: consider updating it (--hac-save-baseline)")
    for note in report.notes:
        lines.append(f"- {note}")
    lines += ["", "Accuracy is top-1 with its 95% Wilson interval in brackets; ❌ marks a failed gate. "
              "bpp and PSNR are measured on the defended images (PSNR against the clean originals).", ""]
    if report.results:
        headers, body = matrix_table(report.results)
        lines += ["## Matrix", "", tabulate(body, headers, tablefmt="github"), ""]
    if plot_name:
        lines += [f"![accuracy against bits per pixel]({plot_name})", ""]
    for section in extra_sections or []:
        lines += [section, ""]
    lines += ["## Cells", ""]
    for threat in sorted({r.threat for r in report.results}):
        rows = []
        for r in sorted((r for r in report.results if r.threat == threat), key=lambda r: r.case_id):
            verdict = {True: "pass", False: "**FAIL**", None: "–"}[r.passed]
            delta = "–" if r.baseline_accuracy is None else f"{100 * (r.accuracy - r.baseline_accuracy):+.1f}"
            rows.append([r.case_id, f"{r.accuracy:.3f}", f"[{r.ci_low:.3f}, {r.ci_high:.3f}]", r.n, delta,
                         _fmt(r.threshold), verdict, _fmt(r.bpp), _fmt(r.psnr, 1), f"{r.seconds:.1f}"])
        lines += [f"### {threat}", "", tabulate(rows, ["cell", "accuracy", "95% CI", "n", "Δ pts", "threshold", "gate",
                                                      "bpp", "PSNR", "seconds"], tablefmt="github"), ""]
    return "\n".join(lines) + "\n"


def write_plot(report: Report, path: Path) -> bool:
    """Accuracy against bpp, one line per codec, one panel per threat. Returns False if nothing to plot."""
    points = [r for r in report.results if r.bpp is not None]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    threats = sorted({r.threat for r in points}, key=lambda t: ("clean", "oblivious", "whitebox", "adaptive",
                                                                 "query").index(t) if t in ("clean", "oblivious",
                     "whitebox", "adaptive", "query") else 9)
    fig, axes = plt.subplots(1, len(threats), figsize=(4 * len(threats), 3.4), squeeze=False, sharey=True)
    for ax, threat in zip(axes[0], threats):
        series: dict[str, list[Result]] = defaultdict(list)
        for r in points:
            if r.threat == threat:
                series[f"{r.codec} r{r.rounds}" + (f" {r.attack}" if r.attack else "")].append(r)
        for label, rs in sorted(series.items()):
            rs.sort(key=lambda r: r.bpp)
            ax.errorbar([r.bpp for r in rs], [r.accuracy for r in rs],
                        yerr=[[r.accuracy - r.ci_low for r in rs], [r.ci_high - r.accuracy for r in rs]],
                        marker="o", capsize=2, label=label)
        ax.set_title(threat)
        ax.set_xlabel("bits per pixel")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("top-1 accuracy")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{report.model} on {report.dataset} (n={report.n})", fontsize=9)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return True


def write_report(report: Report, directory: Path, *, plot: bool = False,
                 extra_sections: list[str] | None = None) -> dict[str, Path]:
    """Write ``<model>.json``, ``<model>.md`` (and ``<model>.png`` when ``plot``); returns the paths."""
    stem = safe_stem(report.model)
    paths = {"json": directory / f"{stem}.json", "md": directory / f"{stem}.md"}
    plot_name = None
    if plot:
        png = directory / f"{stem}.png"
        if write_plot(report, png):
            paths["png"], plot_name = png, png.name
    elif (directory / f"{stem}.png").exists():
        plot_name = f"{stem}.png"
    atomic_write(paths["json"], json.dumps(report.to_dict(), indent=1, sort_keys=False) + "\n")
    atomic_write(paths["md"], markdown(report, plot_name=plot_name, extra_sections=extra_sections))
    return paths


def load_report(path: Path) -> Report:
    from .errors import HacError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HacError(f"report {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HacError(f"report {path} is not valid JSON ({exc}); delete or regenerate it") from exc
    except OSError as exc:
        raise HacError(f"cannot read report {path}: {exc}") from None
    try:
        return Report.from_dict(data)
    except HacError as exc:
        raise HacError(f"{path}: {exc}") from None


def append_step_summary(text: str) -> None:
    """Append to ``$GITHUB_STEP_SUMMARY`` when set; never fails the job (size capped at 1 MiB)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return
    data = text.encode("utf-8")
    if len(data) > STEP_SUMMARY_LIMIT - 1024:
        data = data[: STEP_SUMMARY_LIMIT - 1024].decode("utf-8", "ignore").encode() + b"\n\n(truncated)\n"
    try:
        with open(target, "ab") as fh:
            fh.write(data)
    except OSError:
        pass
