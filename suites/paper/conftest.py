"""The paper suite's wiring: which matrix runs for which model, and the paper's findings in the report."""
from __future__ import annotations

#: Models the paper evaluated; every other model runs the embedded miniature.
PAPER_MODELS = {"resnet50", "vit"}


def paper_scale(settings) -> bool:
    return settings.model in PAPER_MODELS


def pytest_collection_modifyitems(config, items):
    """Deselect the half of the suite that does not fit the model (real codecs for the paper's models only), so
    the run neither plans nor loads its codecs: the miniature needs no ELIC or HiFiC weights."""
    from pytest_hac.plugin import settings_of

    paper = paper_scale(settings_of(config))
    other = [item for item in items if (marker := item.get_closest_marker("paper_scale")) and marker.args[0] != paper]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [item for item in items if item not in other]


def pytest_configure(config):
    config.addinivalue_line("markers", "paper_scale(flag): cells for the paper's models (True) or the miniature")


def pytest_hac_update_report(config, report):
    from findings import paper_findings

    report.notes.extend(paper_findings(report.results))
