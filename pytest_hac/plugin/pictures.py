"""The gallery's pictures from each cell's test to the run's report, in-process and from xdist workers alike.

``hac_evaluate`` puts the cell's part of the engine's :class:`~pytest_hac.core.engine.gallery.Gallery` on the
test report (``user_properties``, which xdist carries to the controller); :class:`GalleryCollector`,
on the controller, merges it into ``HacRun.gallery`` and takes it off the report, so JUnit XML and
other reporters never carry thumbnails.
"""
from __future__ import annotations

import json

import pytest

from ..run import HacRun
from .cells import take_properties

GALLERY_PROPERTY = "hac_gallery"


class GalleryCollector:
    """Controller-side plugin: gathers the cells' gallery parts into ``run.gallery``."""

    def __init__(self, run: HacRun) -> None:
        self.run = run

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for _, value in take_properties(report, {GALLERY_PROPERTY}):
            self.run.add_gallery(json.loads(value))
