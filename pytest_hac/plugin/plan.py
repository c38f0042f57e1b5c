"""``--hac-plan``: like ``--collect-only``, list the selected cells with their work and an estimate, then stop.

Per cell: the attack's work (images x steps x restarts, queries for the query threat, "shared" when an
earlier cell computes it), its passes of the model and codecs (:func:`pytest_hac.core.workload.workload`)
and seconds estimated from a warm-up that times one batch of each kind of pass
(:func:`~pytest_hac.core.workload.measure`). The model and data are loaded for the warm-up; nothing is
evaluated and no report is written.
"""
from __future__ import annotations

import time

import pytest

from ..core.workload import measure, seconds, workload
from ..errors import HacError
from ..run import HacRun


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


class PlanPrinter:
    """Replaces the test loop under ``--hac-plan``."""

    def __init__(self, run: HacRun) -> None:
        self.run = run

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        cases = list({c.id: c for c in (getattr(item, "callspec", None) and item.callspec.params.get("hac_case")
                                        for item in session.items) if c is not None}.values())
        if not cases:
            reporter.write_line("pytest-hac plan: no cells selected")
            return True
        try:
            engine = self.run.engine  # loads the model and data
            start = time.perf_counter()
            works = workload(engine, cases)
            timing = measure(engine, works)
        except HacError as exc:
            raise pytest.UsageError(f"pytest-hac: {exc}") from None
        warmup = time.perf_counter() - start
        from tabulate import tabulate

        rows, total = [], 0.0
        for w in works:
            est = seconds(w, timing)
            total += est
            rows.append([w.case_id, w.attack_text, w.attack or "–", w.queries or "–", w.codec or "–", w.model,
                         f"{est:.1f}"])
        headers = ["cell", "attack", "fwd+bwd passes", "query passes", "codec round trips", "classified", "est. s"]
        reporter.section("pytest-hac plan")
        reporter.write_line(f"model {self.run.settings.model} · {len(engine.labels)} images · device {engine.device} "
                            f"· {len(works)} cells")
        reporter.write_line(tabulate(rows, headers, tablefmt="simple", disable_numparse=True))
        grads = ", ".join(f"{'model' if key[0] == 'bare' else '/'.join(str(p) for p in key if p is not None)} "
                          f"{t * 1e3:.1f}"
                          for key, t in timing.gradient.items())
        codecs = ", ".join(f"{ref.name}{'' if ref.quality is None else f' q{ref.quality}'} {t * 1e3:.1f}"
                           for ref, t in timing.codec.items())
        reporter.write_line(f"warm-up ({warmup:.1f} s, batches of {timing.batch}), ms per image: classify "
                            f"{timing.predict * 1e3:.2f}" + (f"; gradient {grads}" if grads else "")
                            + (f"; codec {codecs}" if codecs else ""))
        reporter.write_line(f"estimated: {_duration(total)} for the cells (soundness probes, loading and "
                            f"reports not counted); nothing was evaluated (--hac-plan)")
        return True
