"""A report's files: ``<stem>.json``, ``<stem>.md``, ``<stem>.html`` and ``<stem>.png``, each written atomically."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..io.files import atomic_write
from .html import page
from .markdown import markdown
from .plot import png
from .schema import Report


def write_report(report: Report, directory: Path, *, plot: bool = False,
                 gallery: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md``, ``<stem>.html`` (and ``<stem>.png`` when ``plot``); returns the paths.

    The stem is the model's name, plus ``.shard-I-of-N`` or ``.selection`` for partial runs.
    The HTML page inlines the plot and ``gallery`` (:meth:`pytest_hac.core.gallery.Gallery.to_dict`)
    only when ``plot``: the final write of a run; the writes after each cell keep it to the tables.
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
    atomic_write(paths["json"], json.dumps(report.to_dict(), indent=1) + "\n")
    atomic_write(paths["md"], markdown(report, plot_name=plot_name))
    atomic_write(paths["html"], page(report, plot_png=plot_png, gallery=gallery if plot else None))
    return paths
