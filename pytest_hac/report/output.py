"""A report's files: ``<stem>.json``, ``<stem>.md``, ``<stem>.html``, ``<stem>.png`` and ``<stem>.eps.png`` (accuracy
against eps, when an attack ran at several eps), each written atomically.

A run sets the files of its name aside when it starts (:func:`set_aside`), so a run that fails
before it writes its own report never leaves yesterday's green one in place, and the last complete
report stays as ``<stem>.previous.*`` whatever this run does.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..io.files import atomic_write
from .eps_plot import eps_png
from .html import page
from .markdown import markdown
from .news import news
from .plot import png
from .rate_matched import rate_markdown
from .schema import Report
from .trend import Trend
from .trend_view import trend_table


def write_report(report: Report, directory: Path, *, plot: bool = False,
                 sections: tuple[str, ...] = (), gallery: dict[str, Any] | None = None,
                 trend: Trend | None = None) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md``, ``<stem>.html`` (and ``<stem>.png`` when ``plot``); returns the paths.

    The stem is the model's name, plus ``.shard-I-of-N`` or ``.selection`` for partial runs.
    The HTML page inlines the plot and ``gallery`` (:meth:`pytest_hac.core.engine.gallery.Gallery.to_dict`)
    only when ``plot``: the final write of a run; the writes after each cell keep it to the tables.
    ``trend`` (``--hac-history``, computed once by the caller) adds the trend section to both the
    Markdown (after ``sections``) and the page.
    """
    stem = report.stem
    paths = {"json": directory / f"{stem}.json", "md": directory / f"{stem}.md", "html": directory / f"{stem}.html"}
    plot_name, plot_png = None, None
    if plot:
        plot_png = png(report)
        if plot_png is not None:
            paths["png"], plot_name = directory / f"{stem}.png", f"{stem}.png"
            atomic_write(paths["png"], plot_png)
    elif (directory / f"{stem}.png").exists():
        plot_name = f"{stem}.png"
    eps_name, eps_plot = _eps_plot(report, directory, plot)
    if eps_plot is not None:
        paths["eps_png"] = directory / eps_name
    atomic_write(paths["json"], json.dumps(report.to_dict(), indent=1) + "\n")
    own = ([f"![accuracy against eps]({eps_name})"] if eps_name else []) + [rate_markdown(report)]
    sections = (*(s for s in own if s), *sections)
    heading = ""
    if trend is not None:
        table = trend_table(trend, title="##")
        sections, heading = (*sections, table), table.splitlines()[0].lstrip("# ")
    atomic_write(paths["md"], markdown(report, plot_name=plot_name, sections=sections, news=news(report, trend),
                                       trend_heading=heading))
    atomic_write(paths["html"], page(report, plot_png=plot_png, gallery=gallery if plot else None, trend=trend,
                                     eps_png=eps_plot))
    return paths


def _eps_plot(report: Report, directory: Path, plot: bool) -> tuple[str | None, bytes | None]:
    """The eps plot's file name (when written now or by an earlier write of this run) and its bytes (when
    written now: only with ``plot``, as the bpp plot)."""
    name = f"{report.stem}.eps.png"
    if plot:
        data = eps_png(report)
        if data is not None:
            atomic_write(directory / name, data)
            return name, data
        return None, None
    return (name if (directory / name).exists() else None), None


#: The files of one report, by kind.
SUFFIXES = (".json", ".md", ".html", ".png", ".eps.png")


def _names(directory: Path, stem: str, target: str) -> list[tuple[Path, Path]]:
    """(``<stem><suffix>``, ``<target><suffix>``) for every kind of file."""
    return [(Path(directory) / f"{stem}{suffix}", Path(directory) / f"{target}{suffix}") for suffix in SUFFIXES]


def _held(stem: str) -> str:
    """The hidden name the older ``<stem>.previous.*`` wait under while a run may still put things back."""
    return f".{stem}.previous.held"


def complete_report(path: Path) -> bool:
    """``path`` holds a complete report (not INCOMPLETE, not ERROR): what ``<stem>.previous.*`` keeps."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("complete") is True and not data.get("error")


def _move(pairs: list[tuple[Path, Path]], *, back: bool = False) -> None:
    for a, b in pairs:
        src, dst = (b, a) if back else (a, b)
        if src.exists():
            os.replace(src, dst)
        elif dst.exists():  # the set moved has no such file: none may stay from an older one
            dst.unlink()


def set_aside(directory: Path, stem: str) -> bool:
    """At a run's start: a complete ``<stem>.*`` becomes ``<stem>.previous.*`` (the previous ones are held under
    hidden names until :func:`restore_aside`), so the last complete report survives a run that fails, errs or is
    interrupted; an incomplete or ERROR ``<stem>.*`` is removed (``<stem>.previous.*`` stays as it is). True when
    a report was set aside. Raises ``OSError`` when the folder cannot be written."""
    if not complete_report(Path(directory) / f"{stem}.json"):
        discard(directory, stem)
        return False
    _move(_names(directory, f"{stem}.previous", _held(stem)))
    _move(_names(directory, stem, f"{stem}.previous"))
    return True


def restore_aside(directory: Path, stem: str, *, keep: bool) -> None:
    """At a run's end, after :func:`set_aside` returned True: ``keep`` (this run did not replace ``<stem>.*``: a
    selection, a session without cells) puts both sets back where they were; else the held older previous
    report goes."""
    try:
        if keep:
            _move(_names(directory, stem, f"{stem}.previous"), back=True)
            _move(_names(directory, f"{stem}.previous", _held(stem)), back=True)
        else:
            for _, held in _names(directory, f"{stem}.previous", _held(stem)):
                held.unlink(missing_ok=True)
    except OSError:
        pass


def discard(directory: Path, stem: str) -> None:
    """Remove ``<stem>.json/.md/.html/.png`` (the in-progress marker of a run that wrote under another name)."""
    for suffix in SUFFIXES:
        (Path(directory) / f"{stem}{suffix}").unlink(missing_ok=True)
