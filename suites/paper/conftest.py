"""The paper suite's wiring: which matrix runs for which model, and the paper's findings in the report."""
from __future__ import annotations

import pytest

#: Models the paper evaluated; every other model runs the embedded miniature.
PAPER_MODELS = {"resnet50", "vit"}


def paper_scale(settings) -> bool:
    return settings.model in PAPER_MODELS


@pytest.fixture
def paper_matrix(request, hac_settings):
    """Skip the half of the suite that does not fit the model: real codecs for the paper's models only."""
    wanted = request.node.get_closest_marker("paper_scale").args[0]
    if wanted != paper_scale(hac_settings):
        pytest.skip("paper-scale cells run with --hac-model=resnet50 or vit" if wanted
                    else "the embedded miniature runs on models other than resnet50/vit")


def pytest_configure(config):
    config.addinivalue_line("markers", "paper_scale(flag): cells for the paper's models (True) or the miniature")


def pytest_hac_update_report(config, report):
    from findings import paper_findings

    report.notes.extend(paper_findings(report.results))
