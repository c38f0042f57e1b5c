"""The paper suite's wiring: which matrix runs for which model, and the paper's findings in the report."""
from __future__ import annotations

from pathlib import Path

#: Models the paper evaluated; every other model runs the embedded miniature.
PAPER_MODELS = {"resnet50", "vit"}
#: The modules of the two halves.
PAPER_SCALE, MINIATURE = "test_paper.py", "test_miniature.py"


def paper_scale(settings) -> bool:
    return settings.model in PAPER_MODELS


def pytest_ignore_collect(collection_path: Path, config) -> bool | None:
    """Collect only the half of the suite that fits the model (real codecs for the paper's models, the miniature
    for the others): the run neither plans nor loads the other half's codecs (the miniature needs no ELIC or HiFiC
    weights), and what it collects is the whole run (its report is ``<model>.md``, not a selection)."""
    from pytest_hac.plugin import settings_of

    fits = PAPER_SCALE if paper_scale(settings_of(config)) else MINIATURE
    return True if collection_path.name in {PAPER_SCALE, MINIATURE} - {fits} else None


def pytest_hac_update_report(config, report):
    from findings import paper_findings

    report.notes.extend(paper_findings(report.results))
