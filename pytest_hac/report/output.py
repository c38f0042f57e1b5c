"""A report's files: ``<stem>.json``, ``<stem>.md``, ``<stem>.html``, ``<stem>.png`` and ``<stem>.eps.png`` (accuracy
against eps, when an attack ran at several eps), each written atomically.

A run sets the files of its name aside when it starts (:func:`set_aside`), so a run that fails
before it writes its own report never leaves yesterday's green one in place.
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
    The HTML page inlines the plot and ``gallery`` (:meth:`pytest_hac.core.gallery.Gallery.to_dict`)
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
    if trend is not None:
        sections = (*sections, trend_table(trend, title="##"))
    atomic_write(paths["md"], markdown(report, plot_name=plot_name, sections=sections))
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


def set_aside(directory: Path, stem: str) -> list[Path]:
    """Move ``<stem>.json/.md/.html/.png`` to ``<stem>.previous.*``; returns the moved files' new paths."""
    moved = []
    for suffix in SUFFIXES:
        path = Path(directory) / f"{stem}{suffix}"
        if path.exists():
            target = path.with_name(f"{stem}.previous{suffix}")
            try:
                os.replace(path, target)
            except OSError:  # a read-only folder: the run's own writes will say so
                continue
            moved.append(target)
    return moved


def restore_aside(moved: list[Path], *, keep: bool) -> None:
    """Put files set aside back (``keep``: this run did not replace them, e.g. a selection), else delete them."""
    for path in moved:
        original = path.with_name(path.name.replace(".previous", "", 1))
        try:
            if keep:
                os.replace(path, original)
            else:
                path.unlink(missing_ok=True)
        except OSError:
            pass


def discard(directory: Path, stem: str) -> None:
    """Remove ``<stem>.json/.md/.html/.png`` (the in-progress marker of a run that wrote under another name)."""
    for suffix in SUFFIXES:
        (Path(directory) / f"{stem}{suffix}").unlink(missing_ok=True)
