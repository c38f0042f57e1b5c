"""The cells the cascade is held to: every threat, restarts, apgd, square, cw, fgsm, L2, thorough, a tiny codec; and
the three memory modes they run under (small batches, chunks of a few images spilled to scratch, one chunk).
AutoAttack is not among them: its standard run (Square's 5,000 queries through every path) costs minutes even here,
and like every attack whose result depends on its batch it never cascades (every set on every image, as before).

``tests/unit/fixtures/cascade_main.json`` holds their per-image outcomes as the engine computed them before the
cascade (every set on every image), written by ``python -m tests.unit.cascade_cells default`` on that commit with
the adaptive paths in the cascade's order (the white-box path first). Against the recording in the order before
(white-box path last), every cell's per-image correctness and findings are the same; on the adaptive cells, the
bpp and PSNR of an image several paths broke are now the white-box path's (the first in order that broke it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pytest_hac.attacks import make_spec
from pytest_hac.core.cells.cases import Case

FIXTURE = Path(__file__).parent / "fixtures" / "cascade_main.json"
DIGITS = 16

PGD = make_spec("pgd", "8/255", steps=3)


def case(codec, quality, rounds, threat, attack=PGD, *, id=None, **kw):
    attack = None if threat == "clean" else attack
    q = "" if quality is None else f"-q{quality}"
    name = "" if attack is None else f"-{attack.key}"
    return Case(codec, quality, rounds, threat, attack, id=id or f"{codec}{q}-r{rounds}-{threat}{name}", **kw)


def cells() -> list[Case]:
    return [
        case("identity", None, 1, "clean"), case("identity", None, 1, "oblivious"),
        *[case("jpeg", 30, 1, t) for t in ("clean", "oblivious", "whitebox", "adaptive")],
        case("jpeg", 60, 1, "whitebox", make_spec("pgd", "2/255", steps=2, restarts=3)),
        case("jpeg", 30, 1, "adaptive", make_spec("pgd", "4/255", steps=2, restarts=2)),
        case("jpeg", 30, 1, "adaptive", make_spec("pgd", "3/255", steps=2), thorough=True, id="thorough"),
        case("jpeg", 60, 1, "adaptive", make_spec("apgd", "4/255", steps=2)),
        case("jpeg", 60, 1, "adaptive", make_spec("fgsm", "4/255")),
        case("jpeg", 60, 1, "adaptive", make_spec("pgdl2", "0.5", steps=2)),
        case("jpeg", 60, 1, "adaptive", make_spec("cw", None, steps=2)),
        case("jpeg", 60, 1, "query", make_spec("square", "8/255", steps=10)),
        case("tiny-hific", 2, 1, "adaptive", make_spec("pgd", "4/255", steps=2)),
    ]


#: Engine settings: batch and memory (small memory: chunks of a few images, spilled to scratch) and soundness.
MODES = {"default": {"batch_size": 4}, "small-memory": {"batch_size": 2, "memory_mb": 1},
         "one-chunk": {"batch_size": 16, "memory_mb": 4096}}


def evaluate(mode: str, kept) -> dict:
    """Per cell: per-image correct, bpp and PSNR of the kept set, and the findings' diagnostics."""
    from pytest_hac.core.engine.engine import Engine
    from pytest_hac.data import load_dataset
    from pytest_hac.models import get_model

    engine = Engine(get_model("tiny-cnn"), load_dataset("digits", resize=32, crop=32, samples=DIGITS), **MODES[mode])
    out = {}
    for c in cells():
        result = engine.evaluate(c)
        outcome = kept(engine, c)
        d = result.diagnostics.to_dict()
        for display in ("restarts", "paths"):  # what the cascade redefines (README): not findings
            d.pop(display, None)
        out[c.id] = {"correct": outcome.correct.tolist(),
                     "bpp": None if outcome.bpp is None else outcome.bpp.tolist(),
                     "psnr": None if outcome.psnr is None else outcome.psnr.tolist(),
                     "diagnostics": d}
    return out


def _full_sets(engine, c):
    """Before the cascade: every set on every image, the first the pipeline gets wrong kept per image."""
    from pytest_hac.core.engine.outcome import worst_of

    return worst_of([engine.outcome(k, c.defense) for k in engine.source_keys(c)])


if __name__ == "__main__":
    modes = sys.argv[1:] or list(MODES)
    FIXTURE.write_text(json.dumps({m: evaluate(m, _full_sets) for m in modes}, indent=0))
