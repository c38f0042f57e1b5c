"""pytest-hac's pytest plugin (the ``pytest11`` entry point): options, the marker, the session object.

Everything that measures or decides lives in the library (:mod:`pytest_hac.core`), so it
also works from plain Python. This module wires pytest to it: options from the one
declaration in :mod:`pytest_hac.settings`, the ``hac`` marker, and :class:`.session.HacPlugin`,
registered in ``pytest_configure``; the fixtures are in :mod:`.fixtures`.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import replace

import pytest

from ..errors import HacError
from ..run import HacRun
from ..settings import OPTIONS, REMOVED, Settings, settings_from
from . import fixtures
from .fixtures import hac_case, hac_dataset, hac_engine, hac_evaluate, hac_model, hac_run, hac_settings
from .pictures import GalleryCollector
from .plan import PlanPrinter
from .progress_log import CellStarts, XdistProgress
from .session import PLUGIN_NAME, HacPlugin
from .update import ThresholdsWriter

__all__ = ["hac_case", "hac_dataset", "hac_engine", "hac_evaluate", "hac_model", "hac_run", "hac_settings",
           "settings_of"]

MARKER_HELP = (
    "hac(codecs={'jpeg': [25, 50]}, rounds=[1, 2], threats=['clean', 'oblivious', 'whitebox'], attack='pgd', "
    "eps=4/255, min_accuracy=0.5): expand a test taking the hac_case fixture into one test per robustness cell"
)


def settings_of(config: pytest.Config) -> Settings:
    """This run's validated settings, for a conftest's collection hooks (tests use the ``hac_settings`` fixture)."""
    return config.pluginmanager.get_plugin(PLUGIN_NAME).run.settings


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspec

    pluginmanager.add_hookspecs(hookspec)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hac", "pytest-hac: robustness behind compression defenses")
    for opt in OPTIONS:
        text = f"{opt.help} (default: {opt.default_shown})".replace("%", "%%")  # argparse formats help with %
        if opt.kind == "bool":
            group.addoption(opt.flag, action="store_const", const=True, default=None, dest=opt.ini, help=text)
        elif opt.kind == "optional":
            group.addoption(opt.flag, nargs="?", const="", default=None, dest=opt.ini, metavar=opt.metavar,
                            help=text)
        else:
            group.addoption(opt.flag, default=None, dest=opt.ini, metavar=opt.metavar, help=text)
        parser.addini(opt.ini, opt.help, default=None)
    for old, new in REMOVED:  # registered only to say what replaced them (a usage error)
        group.addoption(old.flag, nargs="?", const="", default=None, dest=old.ini, help=argparse.SUPPRESS)
        parser.addini(old.ini, f"removed in 0.1: use {new}", default=None)
    group.addoption("--hac-list", action="store_true", default=False,
                    help="list models, data sets, codecs, attacks and threats (hook-registered ones too), then exit")
    group.addoption("--hac-plan", action="store_true", default=False,
                    help="like --collect-only: list the selected cells with their attack, codec and model passes "
                         "and their soundness probes', and a time estimate (cells, probes, loading) from a short "
                         "measured warm-up, then exit without evaluating")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    from .. import registry

    config.add_cleanup(registry.snapshot())
    config.hook.pytest_hac_register(registry=registry, config=config)
    if config.getoption("hac_list"):
        return
    worker = getattr(config, "workerinput", None)
    try:
        settings = settings_from(lambda opt: config.getoption(opt.ini), lambda opt: config.getini(opt.ini))
        if worker is not None and settings.device == "cuda":
            settings = _spread_over_gpus(settings, worker["workerid"])
        run = HacRun(settings, write_files=worker is None)
    except HacError as exc:
        raise pytest.UsageError(f"pytest-hac: {exc}") from None
    _set_threads(settings.threads, worker)
    config.pluginmanager.register(HacPlugin(config, run), PLUGIN_NAME)
    if worker is None:
        config.pluginmanager.register(GalleryCollector(run), "hac-gallery")
    xdist = config.getoption("dist", "no") != "no" or bool(config.getoption("numprocesses", None))
    if xdist and worker is None and settings.progress is not None:
        config.pluginmanager.register(XdistProgress(config, settings.progress), "hac-progress-log")
    if worker is not None and settings.progress is not None:  # only xdist's workers have workerinput
        plugin = config.pluginmanager.get_plugin(PLUGIN_NAME)
        config.pluginmanager.register(CellStarts(lambda: plugin.scope.selected, lambda session: fixtures.cell_weights(
            session, run.engine) if run.loaded.done else None), "hac-cell-starts")
    if worker is None and config.getoption("hac_plan"):
        config.pluginmanager.register(PlanPrinter(run), "hac-plan")
    if worker is None and settings.update_thresholds is not None:
        config.pluginmanager.register(ThresholdsWriter(config, run), "hac-update-thresholds")


def _set_threads(threads: int | str, worker: dict | None) -> None:
    """Give each xdist worker its share of the cores (N workers each on all N cores run 2.5x slower)."""
    import torch

    if threads != "auto":
        torch.set_num_threads(int(threads))
    elif worker is not None and not any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
        from ..data.decode import available_cores

        cores = available_cores()
        torch.set_num_threads(max(1, cores // max(1, int(worker.get("workercount", 1)))))


def _spread_over_gpus(settings, worker_id: str):
    """One xdist worker per GPU: gw0 -> cuda:0, gw1 -> cuda:1, ..."""
    import torch

    index = int(worker_id.lstrip("gw") or 0) % max(1, torch.cuda.device_count())
    return replace(settings, device=f"cuda:{index}")


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if config.getoption("hac_list"):
        from .listing import listing

        # As pytest's own --markers does: configure first, so pytest_hac_register hooks have run.
        config._do_configure()
        try:
            print(listing())
        finally:
            config._ensure_unconfigure()
        return 0
    return None
