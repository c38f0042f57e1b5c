"""A report's files: ``<stem>.json``, ``<stem>.md`` and ``<stem>.png``, each written atomically."""
from __future__ import annotations

import json
from pathlib import Path

from ..io.files import atomic_write
from .markdown import markdown
from .plot import write_plot
from .schema import Report


def write_report(report: Report, directory: Path, *, plot: bool = False) -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` (and ``<stem>.png`` when ``plot``); returns the paths.

    The stem is the model's name, plus ``.shard-I-of-N`` or ``.selection`` for partial runs.
    """
    stem = report.stem
    paths = {"json": directory / f"{stem}.json", "md": directory / f"{stem}.md"}
    plot_name = None
    if plot:
        png = directory / f"{stem}.png"
        if write_plot(report, png):
            paths["png"], plot_name = png, png.name
    elif (directory / f"{stem}.png").exists():
        plot_name = f"{stem}.png"
    atomic_write(paths["json"], json.dumps(report.to_dict(), indent=1) + "\n")
    atomic_write(paths["md"], markdown(report, plot_name=plot_name))
    return paths
