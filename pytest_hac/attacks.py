"""Attack registry (torchattacks) and the threat models that place the attacker.

Threats, with the paper's names as aliases:

* ``clean``: no attack.
* ``oblivious`` (paper: "black-box"): attack the bare model, apply the defense afterwards.
* ``whitebox`` (paper: "white-box"): gradients flow through the defense's
  differentiable ``approximate``, all rounds included.
* ``adaptive``: BPDA (real codec forward, ``approximate`` backward) plus EOT.
* ``query``: a gradient-free attack (Square) against the real defended pipeline.

Every attack declares what it takes in an :class:`AttackInfo` (its registry entry's
``meta["info"]``), and :func:`make_spec` refuses a parameter the attack would ignore:
no silent weakening. What holds for the built-in attacks:

* ``restarts`` are run by the engine, one seeded run per restart, for attacks with a
  random start (pgd, pgdl2, apgd, apgd-dlr, square, autoattack); the others refuse them.
* ``eot`` (gradients averaged over a random defense) is taken by pgd (torchattacks'
  EOTPGD) and apgd/apgd-dlr.
* square's ``steps`` are its queries (one query per iteration; default 5,000, as the
  reference attack); the query threat takes its budget from the marker's ``queries``.
* apgd, apgd-dlr, square and autoattack return their best iterate for every image
  (torchattacks returns the clean image for points it did not fool, which is wrong
  whenever the attacked model is not the evaluated pipeline).
* cw is a minimum-norm attack: it has no eps; its cells report the median L2 norm.
* every attack draws its randomness from torch's global RNG, which the engine seeds per
  batch from ``--hac-seed`` and restores afterwards.
* nothing clips an attack's output: the engine asserts the eps ball and [0, 1].
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from types import SimpleNamespace
from typing import Any

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
NORMS = ("Linf", "L2")
#: The query budget of Square when nothing sets one: the reference Square attack's
#: (Andriushchenko et al., 2020, and AutoAttack's) 5,000 queries. torchattacks' own default
#: of 100 is too few to mean anything.
DEFAULT_QUERIES = 5000


def canonical_threat(name: str) -> str:
    """``name`` or its alias as one of :data:`THREATS`; unknown names list the valid ones."""
    key = name.strip().lower()
    key = THREAT_ALIASES.get(key, key)
    if key not in THREATS:
        from .errors import unknown_name

        raise unknown_name("threat", name, list(THREATS) + list(THREAT_ALIASES))
    return key


@dataclass(frozen=True)
class AttackInfo:
    """What an attack takes, so that a parameter it would ignore is refused instead.

    Attributes:
        norm: its default norm; ``norms`` lists all it supports.
        steps: its default number of steps (queries, for gradient-free attacks).
        takes_steps: whether ``steps`` changes it (fgsm is one step by definition).
        gradient_free: it only queries the model (its steps are queries).
        random_start: it starts at a random point, so restarts differ (the engine runs them).
        takes_alpha: it has a step size ``alpha`` (apgd adapts its own).
        takes_eot: it can average gradients over a random defense (EOT).
        min_norm: a minimum-norm attack: no eps, it finds the smallest perturbation it can.
    """

    norm: str = "Linf"
    norms: tuple[str, ...] = ()
    steps: int = 10
    takes_steps: bool = True
    gradient_free: bool = False
    random_start: bool = False
    takes_alpha: bool = False
    takes_eot: bool = False
    min_norm: bool = False

    def __post_init__(self) -> None:
        norms = self.norms or (self.norm,)
        if self.norm not in norms or any(n not in NORMS for n in norms):
            raise HacError(f"attack norms must be among {NORMS} and include the default {self.norm!r}; got {norms}")
        object.__setattr__(self, "norms", tuple(norms))


@dataclass(frozen=True)
class AttackSpec:
    """An attack with all its parameters; ``key`` identifies it in caches and reports.

    ``eps`` is None for minimum-norm attacks (cw). For gradient-free attacks ``steps``
    is the query budget (:attr:`queries`).
    """

    name: str
    eps: float | None
    norm: str = "Linf"
    steps: int = 10
    alpha: float | None = None
    restarts: int = 1
    eot: int = 1

    @property
    def info(self) -> AttackInfo:
        return attack_info(self.name)

    @property
    def queries(self) -> int | None:
        """The query budget of a gradient-free attack (None for gradient attacks)."""
        return self.steps if self.info.gradient_free else None

    @property
    def min_norm(self) -> bool:
        return self.eps is None

    @property
    def key(self) -> str:
        parts = [self.name, self.norm]
        if self.eps is not None:
            parts.append(f"eps={self.eps:.6g}")
        parts.append(f"queries={self.steps}" if self.info.gradient_free else f"steps={self.steps}")
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
        if self.eps is None:
            return "min-norm"
        if self.norm == "Linf":
            k = self.eps * 255
            return f"{k:g}/255" if abs(k - round(k)) < 1e-6 else f"{self.eps:.4g}"
        return f"{self.eps:g}"

    def as_dict(self) -> dict[str, Any]:
        """The report's view: name, norm, eps, steps, alpha, restarts, eot, queries, min_norm."""
        return {**asdict(self), "queries": self.queries, "min_norm": self.min_norm}


AttackFactory = Callable[[nn.Module, AttackSpec], object]
ATTACKS: Registry[object] = Registry("attack")


def register_attack(name: str, factory: AttackFactory | None = None, *, norm: str = "Linf", steps: int = 10,
                    gradient_free: bool = False, description: str = "", aliases: tuple[str, ...] = (),
                    replace: bool = False, norms: tuple[str, ...] = (), takes_steps: bool = True,
                    random_start: bool = False, takes_alpha: bool = False, takes_eot: bool = False,
                    min_norm: bool = False):
    """Register ``factory(model, spec) -> attack``; the attack is called as ``attack(images, labels)``.

    The keyword arguments declare what the attack takes (see :class:`AttackInfo`); a
    marker parameter it does not take is refused at collection. The engine runs
    restarts itself (``random_start=True``), so the factory always sees ``restarts=1``;
    the attack should draw its randomness from torch's global RNG, which the engine seeds.
    """
    info = AttackInfo(norm=norm, norms=tuple(norms), steps=steps, takes_steps=takes_steps,
                      gradient_free=gradient_free, random_start=random_start, takes_alpha=takes_alpha,
                      takes_eot=takes_eot, min_norm=min_norm)
    return ATTACKS.register(name, factory, description=description, aliases=aliases, replace=replace, info=info)


def attack_info(name: str) -> AttackInfo:
    """What attack ``name`` (or an alias) takes."""
    return ATTACKS.entry(name).meta["info"]


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


def _positive_int(attack: str, param: str, value: Any) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok and hasattr(value, "__index__") and not isinstance(value, bool):  # numpy integers
        value, ok = int(value), True
    if not ok or value < 1:
        raise HacError(f"attack {attack!r}: {param} must be a whole number >= 1; got {value!r}")
    return value


def make_spec(name: str, eps: float | str | None = None, *, steps: int | None = None,
              alpha: float | str | None = None, restarts: int = 1, eot: int = 1, queries: int | None = None,
              norm: str | None = None) -> AttackSpec:
    """Validate attack parameters once; a parameter the attack would ignore is refused.

    For gradient-free attacks ``queries`` (or else ``steps``) is the query budget. Errors
    name the attack, the parameter and the fix.
    """
    entry = ATTACKS.entry(name)
    info: AttackInfo = entry.meta["info"]
    attack = entry.name
    norm = norm or info.norm
    if norm not in info.norms:
        hint = " (use pgdl2 for L2)" if attack in ("pgd", "fgsm", "ifgsm") else ""
        raise HacError(f"attack {attack!r} supports norm {', '.join(info.norms)}, not {norm!r}{hint}")
    value = _eps(attack, info, norm, eps)
    restarts = _positive_int(attack, "restarts", restarts)
    eot = _positive_int(attack, "eot", eot)
    if restarts > 1 and not info.random_start:
        raise HacError(f"attack {attack!r} has no random start, so restarts={restarts} would run the same attack "
                       f"{restarts} times; drop restarts, or use an attack with a random start (pgd, pgdl2, apgd)")
    if eot > 1 and not info.takes_eot:
        raise HacError(f"attack {attack!r} does not average gradients over a random defense, so eot={eot} would be "
                       f"ignored; drop eot, or use pgd or apgd")
    if alpha is not None and not info.takes_alpha:
        raise HacError(f"attack {attack!r} takes no step size alpha (it chooses its own); drop alpha")
    if info.gradient_free:
        budget = queries if queries is not None else steps
        steps = info.steps if budget is None else _positive_int(attack, "queries", budget)
    else:
        if queries is not None:
            raise HacError(f"attack {attack!r} uses gradients: queries={queries} is the budget of gradient-free "
                           f"attacks (square, the 'query' threat); drop queries or use steps")
        if steps is not None and not info.takes_steps:
            raise HacError(f"attack {attack!r} takes no steps (it is a single step, {info.steps}); drop steps, or "
                           f"use an iterative attack (ifgsm, pgd)")
        steps = info.steps if steps is None else _positive_int(attack, "steps", steps)
    step_size = None
    if alpha is not None:
        step_size = parse_eps(alpha)
        if step_size <= 0:
            raise HacError(f"attack {attack!r}: alpha must be > 0; got {alpha!r}")
    return AttackSpec(attack, value, norm, steps, step_size, restarts, eot)


def _eps(attack: str, info: AttackInfo, norm: str, eps: float | str | None) -> float | None:
    if info.min_norm:
        if eps is not None:
            raise HacError(f"attack {attack!r} is a minimum-norm attack: it has no eps (its cells report the median "
                           f"L2 norm it needed); drop eps, or use an eps-bounded attack (pgd, apgd)")
        return None
    if eps is None:
        raise HacError(f"attack {attack!r} needs an eps budget, e.g. eps='4/255'")
    value = parse_eps(eps)
    if norm == "Linf" and value > 1:
        raise HacError(f"L-inf eps {value:g} exceeds 1 (the whole pixel range); pixel budgets look like 4/255")
    return value


def build_attack(model: nn.Module, spec: AttackSpec):
    """The torchattacks object for ``spec`` against ``model`` (which takes [0, 1] inputs)."""
    return ATTACKS.entry(spec.name).factory(model, spec)


def is_gradient_free(spec: AttackSpec) -> bool:
    return spec.info.gradient_free


def with_eps(spec: AttackSpec, eps: float) -> AttackSpec:
    return replace(spec, eps=eps)


# --- built-in attacks ------------------------------------------------------------------------------
# Defaults follow the paper: 10 steps with alpha = eps / 4 for the iterative L-inf attacks.


def _alpha(spec: AttackSpec) -> float:
    return spec.alpha if spec.alpha is not None else spec.eps / 4


@functools.cache
def _fixed() -> SimpleNamespace:
    """torchattacks subclasses that return a best iterate for every image (see PITFALLS).

    Built on first use: importing pytest-hac must not import torchattacks.
    """
    import torch
    import torchattacks

    def draw_seed() -> int:
        # From the global RNG, which the engine seeds per batch: --hac-seed reaches the attack.
        return int(torch.randint(0, 2**31 - 1, ()).item())

    class BestLossAPGD(torchattacks.APGD):
        """APGD returning its best-loss iterate for every image, fooled or not, wrong or right."""

        def forward(self, images, labels):
            images = images.clone().detach().to(self.device)
            labels = labels.clone().detach().to(self.device)
            # best_loss=True attacks every image and does not reseed torch.
            _, adv = self.perturb(images, labels, best_loss=True)
            return adv.detach()

    class BestSquare(torchattacks.Square):
        """Square returning its best (lowest-margin) iterate for every image."""

        def perturb(self, x, y=None):
            self.init_hyperparam(x)
            y = y.detach().clone().long().to(self.device)
            _, adv = self.attack_single_run(x, y)  # one run, seeded by the caller (no reseeding here)
            return adv

    class AutoAttack(torchattacks.attack.Attack):
        """AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square 5,000 queries) as the reference runs it.

        ``steps`` reach the three gradient components (torchattacks' AutoAttack drops them);
        9 target classes; images no component fools keep APGD-CE's best-loss iterate.
        """

        def __init__(self, model, norm: str, eps: float, steps: int, targets: int = 9) -> None:
            super().__init__("AutoAttack", model)
            self.norm, self.eps, self.steps = norm, eps, steps
            self.attacks = [
                BestLossAPGD(model, norm=norm, eps=eps, steps=steps, n_restarts=1, loss="ce"),
                torchattacks.APGDT(model, norm=norm, eps=eps, steps=steps, n_restarts=1, n_classes=targets + 1),
                torchattacks.FAB(model, norm=norm, eps=eps, steps=steps, n_restarts=1, multi_targeted=True,
                                 n_classes=targets + 1),
                BestSquare(model, norm=norm, eps=eps, n_queries=DEFAULT_QUERIES, n_restarts=1),
            ]
            self.targets = targets

        def forward(self, images, labels):
            images = images.clone().detach().to(self.device)
            labels = labels.clone().detach().to(self.device)
            first, *rest = self.attacks
            out = first(images, labels)
            with torch.no_grad():
                logits = self.get_logits(out)
            classes, robust = logits.shape[1], logits.argmax(1) == labels
            for attack in rest:
                if hasattr(attack, "n_target_classes"):  # at most classes - 1 targets exist
                    attack.n_target_classes = min(self.targets, classes - 1)
                attack.seed = draw_seed()
                idx = robust.nonzero().flatten()
                if idx.numel() == 0:
                    break
                adv = attack(images[idx], labels[idx]).detach()
                with torch.no_grad():
                    fooled = self.get_logits(adv).argmax(1) != labels[idx]
                out[idx[fooled]] = adv[fooled]
                robust[idx[fooled]] = False
            return out.detach()

    return SimpleNamespace(BestLossAPGD=BestLossAPGD, BestSquare=BestSquare, AutoAttack=AutoAttack)


@register_attack("fgsm", steps=1, takes_steps=False, description="fast gradient sign, one step (L-inf)")
def _fgsm(model, spec):
    import torchattacks

    return torchattacks.FGSM(model, eps=spec.eps)


@register_attack("ifgsm", takes_alpha=True, description="iterative FGSM / BIM, no random start (L-inf)",
                 aliases=("bim",))
def _bim(model, spec):
    import torchattacks

    return torchattacks.BIM(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps)


@register_attack("pgd", random_start=True, takes_alpha=True, takes_eot=True,
                 description="projected gradient descent with random start (L-inf); EOT with eot > 1",
                 aliases=("pgd-linf",))
def _pgd(model, spec):
    import torchattacks

    if spec.eot > 1:
        return torchattacks.EOTPGD(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps, eot_iter=spec.eot,
                                   random_start=True)
    return torchattacks.PGD(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps, random_start=True)


@register_attack("pgdl2", norm="L2", random_start=True, takes_alpha=True,
                 description="projected gradient descent with random start (L2)", aliases=("pgd-l2",))
def _pgdl2(model, spec):
    import torchattacks

    return torchattacks.PGDL2(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps, random_start=True)


@register_attack("apgd", norms=NORMS, random_start=True, takes_eot=True,
                 description="auto-PGD with cross-entropy loss; best-loss iterate", aliases=("apgd-ce",))
def _apgd(model, spec):
    return _fixed().BestLossAPGD(model, norm=spec.norm, eps=spec.eps, steps=spec.steps, n_restarts=1, loss="ce",
                                 eot_iter=spec.eot)


@register_attack("apgd-dlr", norms=NORMS, random_start=True, takes_eot=True,
                 description="auto-PGD with the DLR loss; best-loss iterate")
def _apgd_dlr(model, spec):
    return _fixed().BestLossAPGD(model, norm=spec.norm, eps=spec.eps, steps=spec.steps, n_restarts=1, loss="dlr",
                                 eot_iter=spec.eot)


@register_attack("cw", norm="L2", steps=50, min_norm=True,
                 description="Carlini-Wagner L2 (c=1, kappa=0): minimum norm, no eps; reports the median L2")
def _cw(model, spec):
    import torchattacks

    return torchattacks.CW(model, c=1, kappa=0, steps=spec.steps, lr=0.01)


@register_attack("square", norms=NORMS, steps=DEFAULT_QUERIES, gradient_free=True, random_start=True,
                 description="Square attack: gradient-free, queries only (steps = queries, default 5000)")
def _square(model, spec):
    return _fixed().BestSquare(model, norm=spec.norm, eps=spec.eps, n_queries=spec.steps, n_restarts=1)


@register_attack("autoattack", norms=NORMS, steps=100, random_start=True,
                 description="AutoAttack standard (APGD-CE, APGD-T, FAB-T with 9 targets, Square 5000 queries)")
def _autoattack(model, spec):
    # torchattacks targets n_classes - 1 classes; the reference AutoAttack uses 9 targets.
    return _fixed().AutoAttack(model, norm=spec.norm, eps=spec.eps, steps=spec.steps, targets=9)
