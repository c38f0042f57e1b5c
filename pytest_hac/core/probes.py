"""Soundness probes: measurements the engine makes while a cell runs, for :mod:`.soundness`.

``Result.diagnostics`` of an attacked cell:

* ``restarts``: correct count per restart, ``[k_0, ..., k_R-1]`` (each the worst case over the
  cell's gradient paths);
* ``paths``: ``{path: k}``, correct count per gradient path (the worst case over restarts), for
  cells that follow more than one (adaptive: ``bpda``, ``bpda-identity``, ``bpda-first``, ``approximate``);
* ``zero_gradient``: ``{"images": k, "of": n}``, images whose input gradient of the
  cross-entropy of the attacked module is all zero or not finite on every gradient path of
  the cell (gradient attacks): an image one path can follow is attacked;
* ``large_eps``: ``{"eps": e, "correct": k, "n": m}``, the cell's attack at eps 64/255
  (L2: 64/255 * sqrt(C*H*W)) through the same gradient paths, judged by the real pipeline
  on the first 32 images, the worst case over paths per image as in the cell (white-box and
  adaptive cells, eps-bounded gradient attacks); adaptive cells add ``"paths": {path: k}``;
* ``undefended_large_eps``: the same for the cell's attack against the bare model on the
  first 64 images (eps-bounded gradient attacks);
* ``steps_2x``: ``{"steps": 2s, "correct": [bool, ...]}``, the cell at twice the steps
  (queries for Square), with ``soundness="thorough"`` only.

Every probe is computed once and reused (stored like any attack); probes count in the
engine's ``counters["probe_batches"]`` and ``seconds["probe"]``, apart from the cells' work.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from ..attacks import AttackSpec, make_spec
from .cases import Case
from .defended import gradient_paths
from .judged import Outcome, worst_of
from .keys import AdvKey, CodecRef, GradientKey

if TYPE_CHECKING:
    from .engine import Engine

#: An L-inf budget that breaks every classifier whose gradients carry information (Carlini et al., 2019,
#: "On evaluating adversarial robustness"), on a subset: a probe, not a cell. Also the undefended
#: model's sanity check, whatever its data (small images of simple digits resist 16/255; their usual
#: budget is 0.3 = 77/255).
LARGE_EPS = 64 / 255
LARGE_EPS_IMAGES = 32
UNDEFENDED_IMAGES = 64


def measure(engine: Engine, case: Case, outcomes: list[Outcome]) -> dict:
    """The diagnostics of an attacked cell (schema in the module docstring)."""
    spec = case.attack
    keys = engine.source_keys(case)
    out: dict = {"restarts": [_count(keys, outcomes, lambda k, i=i: k.restart == i) for i in range(spec.restarts)]}
    paths = gradient_paths(case.threat, case.codec, case.rounds)
    if len(paths) > 1:
        out["paths"] = {p: _count(keys, outcomes, lambda k, p=p: k.path == p) for p in paths}
    with engine.probing():
        if not spec.info.gradient_free:
            bad = zero_gradients(engine, case)
            out["zero_gradient"] = {"images": int(bad.sum()), "of": len(bad)}
            if not spec.min_norm:
                if case.threat in ("whitebox", "adaptive"):
                    out["large_eps"] = large_eps(engine, case)
                out["undefended_large_eps"] = undefended_large_eps(engine, spec)
        if (engine.soundness == "thorough" or case.thorough) and spec.info.takes_steps:
            out["steps_2x"] = steps_2x(engine, case)
    return out


def _count(keys: list[AdvKey], outcomes: list[Outcome], which: Callable[[AdvKey], bool]) -> int:
    """Images the pipeline gets right on every source ``which(key)`` selects (per-image worst case)."""
    return int(worst_of([o for k, o in zip(keys, outcomes) if which(k)]).correct.sum())


def zero_gradients(engine: Engine, case: Case) -> Tensor:
    """Per image: is the input gradient of the attack loss at the clean image all zero or not finite,
    on every gradient path of the cell?"""
    bad = None
    for path in gradient_paths(case.threat, case.codec, case.rounds):
        mine = _zero_gradients(engine, case, path)
        bad = mine if bad is None else bad & mine
    return bad


def _zero_gradients(engine: Engine, case: Case, path: str) -> Tensor:
    ref = None if path == "bare" else CodecRef(case.codec, case.quality)
    key = GradientKey(path, ref, 1 if path == "bare" else case.rounds)
    hit = engine.store.get(key, engine.address(key))
    if hit is not None:
        return hit[0]
    target = engine.target(path, case.codec, case.quality, case.rounds)

    def run(start: int, stop: int) -> Tensor:
        xb = engine.dataset.pixels(start, stop).to(engine.device).requires_grad_(True)
        yb = engine.labels[start:stop].to(engine.device)
        with engine.seeded(key, start, stop), torch.enable_grad():
            loss = F.cross_entropy(target(xb), yb, reduction="sum")  # sum: each image's gradient is its own
            (grad,) = torch.autograd.grad(loss, xb)
        flat = grad.detach().flatten(1)
        engine.count("attack")
        return (~torch.isfinite(flat).all(1) | (flat == 0).all(1)).cpu()

    bad = torch.cat(engine.batched("attack", len(engine.labels), run))
    engine.store.put(key, (bad,), engine.address(key))
    return bad


def probe_spec(engine: Engine, spec: AttackSpec, linf_eps: float, *, eot: int = 1) -> AttackSpec:
    """``spec``'s attack (name, norm, steps; default alpha) at max(its eps, ``linf_eps``).

    For L2 the budget is ``linf_eps * sqrt(C*H*W)``: the smallest L2 ball that holds the L-inf ball.
    """
    eps = linf_eps if spec.norm == "Linf" else linf_eps * math.sqrt(engine.dataset.images[0].numel())
    return make_spec(spec.name, max(spec.eps, eps), steps=spec.steps if spec.info.takes_steps else None,
                     norm=spec.norm, eot=eot)


def large_eps(engine: Engine, case: Case) -> dict:
    """The cell's attack at a huge eps through the same gradient paths, judged by the real pipeline
    (per image, the worst case over the paths, as in the cell)."""
    m = min(len(engine.labels), LARGE_EPS_IMAGES)
    probe = probe_spec(engine, case.attack, LARGE_EPS, eot=case.attack.eot)
    paths = gradient_paths(case.threat, case.codec, case.rounds)
    outcomes = [engine.outcome(engine.adversarial_key(path, case.codec, case.quality, case.rounds, probe, n=m),
                               case.codec, case.quality, case.rounds) for path in paths]
    out = {"eps": probe.eps, "correct": int(worst_of(outcomes).correct.sum()), "n": m}
    if len(paths) > 1:
        out["paths"] = {path: int(o.correct.sum()) for path, o in zip(paths, outcomes)}
    return out


def undefended_large_eps(engine: Engine, spec: AttackSpec) -> dict:
    """The cell's attack at a large eps against the bare model: it must break it."""
    m = min(len(engine.labels), UNDEFENDED_IMAGES)
    probe = probe_spec(engine, spec, LARGE_EPS)
    key = engine.adversarial_key("bare", "identity", None, 1, probe, n=m)
    outcome = engine.outcome(key, "identity", None, 1)
    return {"eps": probe.eps, "correct": int(outcome.correct.sum()), "n": m}


def steps_2x(engine: Engine, case: Case) -> dict:
    """The cell again with twice the steps (all restarts, all images)."""
    steps = 2 * case.attack.steps
    outcomes = [engine.outcome(key, case.codec, case.quality, case.rounds)
                for key in engine.source_keys(case, steps=steps)]
    return {"steps": steps, "correct": worst_of(outcomes).correct.tolist()}
