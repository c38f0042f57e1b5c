"""Attack registry (torchattacks) and the threat models that place the attacker.

Threats, with the paper's names as aliases:

* ``clean``: no attack.
* ``oblivious`` (paper: "black-box"): attack the bare model, apply the defense afterwards.
* ``whitebox`` (paper: "white-box"): gradients flow through the defense's
  differentiable ``approximate``, all rounds included.
* ``adaptive``: BPDA (real codec forward, ``approximate`` backward) plus EOT.
* ``query``: a gradient-free attack against the real defended pipeline.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from torch import nn

from .errors import HacError
from .registry import Registry

THREATS = ("clean", "oblivious", "whitebox", "adaptive", "query")
THREAT_ALIASES = {"black-box": "oblivious", "blackbox": "oblivious", "white-box": "whitebox", "none": "clean",
                  "bpda": "adaptive", "gradient-free": "query"}
THREAT_HELP = {
    "clean": "no attack; accuracy through the defense",
    "oblivious": "attack the bare model, defend afterwards (paper: black-box)",
    "whitebox": "gradients through the defense's differentiable approximation (paper: white-box)",
    "adaptive": "BPDA: real codec forward, approximation backward, plus EOT",
    "query": "gradient-free attack (square) against the real defended pipeline",
}


def canonical_threat(name: str) -> str:
    """``name`` or its alias as one of :data:`THREATS`; unknown names list the valid ones."""
    key = name.strip().lower()
    key = THREAT_ALIASES.get(key, key)
    if key not in THREATS:
        from .errors import unknown_name

        raise unknown_name("threat", name, list(THREATS) + list(THREAT_ALIASES))
    return key


@dataclass(frozen=True)
class AttackSpec:
    """An attack with all its parameters; ``key`` identifies it in caches and reports."""

    name: str
    eps: float
    norm: str = "Linf"
    steps: int = 10
    alpha: float | None = None
    restarts: int = 1
    eot: int = 1

    @property
    def key(self) -> str:
        parts = [self.name, self.norm, f"eps={self.eps:.6g}", f"steps={self.steps}"]
        if self.alpha is not None:
            parts.append(f"alpha={self.alpha:.6g}")
        if self.restarts != 1:
            parts.append(f"restarts={self.restarts}")
        if self.eot != 1:
            parts.append(f"eot={self.eot}")
        return ",".join(parts)

    @property
    def eps_label(self) -> str:
        """eps as the fraction people write: 4/255 for L-inf, the plain value for L2."""
        if self.norm == "Linf":
            k = self.eps * 255
            return f"{k:g}/255" if abs(k - round(k)) < 1e-6 else f"{self.eps:.4g}"
        return f"{self.eps:g}"

    def as_dict(self) -> dict:
        return asdict(self)


AttackFactory = Callable[[nn.Module, AttackSpec], object]
ATTACKS: Registry[object] = Registry("attack")


def register_attack(name: str, factory: AttackFactory | None = None, *, norm: str = "Linf", steps: int = 10,
                    gradient_free: bool = False, description: str = "", aliases: tuple[str, ...] = (),
                    replace: bool = False):
    """Register ``factory(model, spec) -> attack``; the attack is called as ``attack(images, labels)``."""
    return ATTACKS.register(name, factory, description=description, aliases=aliases, replace=replace,
                            norm=norm, steps=steps, gradient_free=gradient_free)


def parse_eps(value: float | int | str) -> float:
    """Accept 0.0157, 4/255 or '4/255'; eps must lie in [0, 1] for L-inf pixel budgets."""
    if isinstance(value, str):
        m = re.fullmatch(r"\s*([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)\s*(?:/\s*([0-9.]+))?\s*", value)
        if not m:
            raise HacError(f"cannot read eps {value!r}; write it as 0.0157 or 4/255")
        try:
            eps = float(m.group(1)) / (float(m.group(2)) if m.group(2) else 1.0)
        except (ValueError, ZeroDivisionError):
            raise HacError(f"cannot read eps {value!r}; write it as 0.0157 or 4/255") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        eps = float(value)
    else:
        raise HacError(f"eps must be a number or a fraction like '4/255'; got {value!r}")
    if not math.isfinite(eps) or eps < 0:
        raise HacError(f"eps must be >= 0; got {value!r}")
    return eps


def make_spec(name: str, eps: float | str, *, steps: int | None = None, alpha: float | str | None = None,
              restarts: int = 1, eot: int = 1, norm: str | None = None) -> AttackSpec:
    """Validate attack parameters once, with messages that name the fix."""
    entry = ATTACKS.entry(name)
    norm = norm or entry.meta["norm"]
    value = parse_eps(eps)
    if norm == "Linf" and value > 1:
        raise HacError(f"L-inf eps {value:g} exceeds 1 (the whole pixel range); pixel budgets look like 4/255")
    steps = entry.meta["steps"] if steps is None else int(steps)
    if steps < 1 or restarts < 1 or eot < 1:
        raise HacError(f"attack {entry.name!r}: steps, restarts and eot must be >= 1")
    return AttackSpec(entry.name, value, norm, steps, None if alpha is None else parse_eps(alpha), restarts, eot)


def build_attack(model: nn.Module, spec: AttackSpec):
    """The torchattacks object for ``spec`` against ``model`` (which takes [0, 1] inputs)."""
    attack = ATTACKS.entry(spec.name).factory(model, spec)
    return attack


def is_gradient_free(spec: AttackSpec) -> bool:
    return bool(ATTACKS.entry(spec.name).meta["gradient_free"])


def with_eps(spec: AttackSpec, eps: float) -> AttackSpec:
    return replace(spec, eps=eps)


# --- built-in attacks ------------------------------------------------------------------------------
# Defaults follow the paper: 10 steps with alpha = eps / 4 for the iterative L-inf attacks.


def _alpha(spec: AttackSpec) -> float:
    return spec.alpha if spec.alpha is not None else spec.eps / 4


@register_attack("fgsm", steps=1, description="fast gradient sign, one step (L-inf)")
def _fgsm(model, spec):
    import torchattacks

    return torchattacks.FGSM(model, eps=spec.eps)


@register_attack("ifgsm", description="iterative FGSM / BIM, no random start (L-inf)", aliases=("bim",))
def _bim(model, spec):
    import torchattacks

    return torchattacks.BIM(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps)


@register_attack("pgd", description="projected gradient descent with random start (L-inf)", aliases=("pgd-linf",))
def _pgd(model, spec):
    import torchattacks

    if spec.eot > 1:
        return torchattacks.EOTPGD(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps, eot_iter=spec.eot)
    return torchattacks.PGD(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps, random_start=True)


@register_attack("pgdl2", norm="L2", description="projected gradient descent with random start (L2)",
                 aliases=("pgd-l2",))
def _pgdl2(model, spec):
    import torchattacks

    alpha = spec.alpha if spec.alpha is not None else spec.eps / 4
    return torchattacks.PGDL2(model, eps=spec.eps, alpha=alpha, steps=spec.steps, random_start=True)


@register_attack("apgd", description="auto-PGD with cross-entropy loss", aliases=("apgd-ce",))
def _apgd(model, spec):
    import torchattacks

    return torchattacks.APGD(model, norm=spec.norm, eps=spec.eps, steps=spec.steps, n_restarts=spec.restarts,
                             loss="ce", eot_iter=spec.eot, seed=0)


@register_attack("apgd-dlr", description="auto-PGD with the DLR loss")
def _apgd_dlr(model, spec):
    import torchattacks

    return torchattacks.APGD(model, norm=spec.norm, eps=spec.eps, steps=spec.steps, n_restarts=spec.restarts,
                             loss="dlr", eot_iter=spec.eot, seed=0)


@register_attack("cw", norm="L2", steps=50, description="Carlini-Wagner L2 (c=1, kappa=0), clipped to eps")
def _cw(model, spec):
    import torchattacks

    return torchattacks.CW(model, c=1, kappa=0, steps=spec.steps, lr=0.01)


@register_attack("square", steps=100, gradient_free=True, description="Square attack: gradient-free, queries only")
def _square(model, spec):
    import torchattacks

    return torchattacks.Square(model, norm=spec.norm, eps=spec.eps, n_queries=spec.steps, n_restarts=spec.restarts,
                               seed=0)


@register_attack("autoattack", steps=100, description="AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square)")
def _autoattack(model, spec):
    import torchattacks

    # torchattacks targets n_classes - 1 classes; the reference AutoAttack uses 9 targets, so pass 10.
    return torchattacks.AutoAttack(model, norm=spec.norm, eps=spec.eps, version="standard", n_classes=10, seed=0)
