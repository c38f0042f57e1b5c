"""``--hac-plan``: like ``--collect-only``, list the selected cells with their work and an estimate, then stop.

Per cell: the attack's work (images x steps x restarts, queries for the query threat, "shared" when an
earlier cell computes it), its passes of the model and codecs and those of the soundness probes it runs
first (:func:`pytest_hac.core.engine.workload.workload`; a probe several cells read counts once), and seconds
estimated from a warm-up that times one batch of each kind of pass
(:func:`~pytest_hac.core.engine.workload.warm_up`). Then the probes by kind, and where the time goes: the
cells, the probes, and loading the model, data and codecs (measured: the plan loads them at collection
as a run does). Nothing is evaluated and no report is written.
"""
from __future__ import annotations

import time

import pytest

from ..core.cells.defense import Defense
from ..core.engine.workload import Probe, Work, probe_seconds, seconds, warm_up, workload
from ..errors import HacError
from ..formats import duration
from ..run import HacRun


def _through(path: str, defense: Defense) -> str:
    """What a gradient goes through: ``model``, or ``approximate/jpeg/50/1``."""
    return "model" if path == "bare" else "/".join(str(p) for p in (path, *defense) if p is not None)


def _passes(p: Probe | list[Probe]) -> str:
    """``96 fwd+bwd, 16 codec, 24 classified`` (what is not zero)."""
    probes = p if isinstance(p, list) else [p]
    parts = [(sum(x.attack for x in probes), "fwd+bwd"), (sum(x.queries for x in probes), "queries"),
             (sum(x.codec for x in probes), "codec"), (sum(x.model for x in probes), "classified")]
    return ", ".join(f"{n:,} {what}" for n, what in parts if n) or "–"


def probe_lines(works: list[Work]) -> list[list[str]]:
    """The probes by kind: how many distinct ones run, on how many images, their passes."""
    by_kind: dict[str, list[Probe]] = {}
    for w in works:
        for p in w.probes:
            by_kind.setdefault(p.kind, []).append(p)
    rows = []
    for kind in ("zero-gradient", "large-eps", "undefended large-eps", "steps 2x"):
        probes = by_kind.get(kind, [])
        attacks = [p for p in probes if p.attack or p.queries]
        if probes:
            images = sorted({p.images for p in attacks}) or sorted({p.images for p in probes})
            rows.append([kind, str(len(attacks)), "/".join(str(i) for i in images), _passes(probes)])
    return rows


class PlanPrinter:
    """Replaces the test loop under ``--hac-plan``."""

    def __init__(self, run: HacRun) -> None:
        self.run = run
        #: Seconds of the collection's end, where the model, data and codecs load (as in a run).
        self.loading = 0.0

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_finish(self, session: pytest.Session):
        start = time.perf_counter()
        try:
            return (yield)
        finally:
            self.loading = time.perf_counter() - start

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        cases = list({c.id: c for c in (getattr(item, "callspec", None) and item.callspec.params.get("hac_case")
                                        for item in session.items) if c is not None}.values())
        if not cases:
            reporter.write_line("pytest-hac plan: no cells selected")
            return True
        try:
            start = time.perf_counter()
            engine = self.run.engine  # loaded at collection already (else here: counted as loading)
            self.loading += time.perf_counter() - start
            start = time.perf_counter()
            works = workload(engine, cases)
            timing = warm_up(engine, works)
        except HacError as exc:
            raise pytest.UsageError(f"pytest-hac: {exc}") from None
        warmup = time.perf_counter() - start
        from tabulate import tabulate

        rows, cells, probes = [], 0.0, 0.0
        for w in works:
            est, probe_est = seconds(w, timing), probe_seconds(w, timing)
            cells, probes = cells + est, probes + probe_est
            rows.append([w.case_id, w.attack_text, w.attack or "–", w.queries or "–", w.codec or "–", w.model,
                         f"{est:.1f}", f"{w.probe_passes:,}" if w.probes else "–",
                         f"{probe_est:.1f}" if w.probes else "–"])
        headers = ["cell", "attack", "fwd+bwd passes", "query passes", "codec round trips", "classified", "est. s",
                   "probe passes", "probe s"]
        reporter.section("pytest-hac plan")
        reporter.write_line(f"model {self.run.settings.model} · {len(engine.labels)} images · device {engine.device} "
                            f"· {len(works)} cells")
        reporter.write_line(tabulate(rows, headers, tablefmt="simple", disable_numparse=True))
        kinds = probe_lines(works)
        if kinds:
            reporter.write_line("")
            reporter.write_line("soundness probes (each computed once, at the first cell that needs it; "
                                "probe passes above: forward-and-backward and query passes):")
            reporter.write_line(tabulate(kinds, ["probe", "runs", "images", "passes"], tablefmt="simple",
                                         disable_numparse=True))
        grads = ", ".join(f"{_through(path, defense)} {t * 1e3:.1f}" for (path, defense), t in timing.gradient.items())
        codecs = ", ".join(f"{ref.name}{'' if ref.quality is None else f' q{ref.quality}'} {t * 1e3:.1f}"
                           for ref, t in timing.codec.items())
        reporter.write_line("")
        reporter.write_line(f"warm-up ({warmup:.1f} s, batches of {timing.batch}), ms per image: classify "
                            f"{timing.predict * 1e3:.2f}" + (f"; gradient {grads}" if grads else "")
                            + (f"; codec {codecs}" if codecs else ""))
        total = cells + probes + self.loading
        split = [["cells", f"{sum(w.attack + w.queries for w in works):,} attack passes", duration(cells)],
                 ["soundness probes", f"{sum(w.probe_passes for w in works):,} attack passes", duration(probes)],
                 ["loading", "model, data and codecs (measured)", duration(self.loading)],
                 ["total", "", duration(total)]]
        reporter.write_line(tabulate(split, ["estimated", "work", "time"], tablefmt="simple", disable_numparse=True))
        reporter.write_line(f"estimated: {duration(total)} in all (cells {duration(cells)}, soundness probes "
                            f"{duration(probes)}, loading {duration(self.loading)}; reports not counted); nothing "
                            f"was evaluated (--hac-plan)")
        return True
