"""Attacks: their specs and the torchattacks registry; the threats are :mod:`.threats`.

Every attack declares what it takes in an :class:`~pytest_hac.registry.AttackInfo` (its
registry entry's ``info``; the built-ins are in :mod:`.builtin`), and :func:`make_spec` refuses a
parameter the attack would ignore: no silent weakening. What holds for the built-in attacks:

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

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from ..errors import HacError
from ..formats import eps_label
from ..registry import ATTACKS, AttackInfo
from .params import ALPHA, EOT, EPS, PARAMS, QUERIES, RESTARTS, STEPS, WRITTEN, parse_eps

if TYPE_CHECKING:
    from torch import nn
from .threats import Threat, ThreatInfo

__all__ = ["DEFAULT_QUERIES", "AttackSpec", "Threat", "ThreatInfo", "attack_info", "build_attack", "describe_attack",
           "eps_label", "implausible_eps", "make_spec", "parse_eps"]

#: The query budget of Square when nothing sets one: the reference Square attack's
#: (Andriushchenko et al., 2020, and AutoAttack's) 5,000 queries. torchattacks' own default
#: of 100 is too few to mean anything.
DEFAULT_QUERIES = 5000


@dataclass(frozen=True)
class AttackSpec:
    """An attack with all its parameters: the one identity of an attack (equal specs are the same attack).

    ``eps`` is None for minimum-norm attacks (cw). For gradient-free attacks ``steps``
    is the query budget (:attr:`queries`). ``key`` names it in caches.
    """

    name: str
    eps: float | None
    norm: str = "Linf"
    steps: int = 10
    alpha: float | None = None
    restarts: int = 1
    eot: int = 1
    #: Whether it only queries the model (its steps are queries); None: ask the registry. Set by
    #: :func:`make_spec` and :meth:`from_dict`, so a spec read from a report needs no registration.
    gradient_free: bool | None = field(default=None, compare=False, repr=False)

    @property
    def info(self) -> AttackInfo:
        return attack_info(self.name)

    @property
    def queries(self) -> int | None:
        """The query budget of a gradient-free attack (None for gradient attacks)."""
        free = self.info.gradient_free if self.gradient_free is None else self.gradient_free
        return self.steps if free else None

    @property
    def min_norm(self) -> bool:
        return self.eps is None

    @property
    def key(self) -> str:
        """Every parameter, as caches name it: ``pgd,Linf,eps=0.0156863,steps=10``."""
        return ",".join([self.name] + [part for p in WRITTEN if (part := p.key(self)) is not None])

    @property
    def eps_label(self) -> str:
        """eps as the fraction people write (:func:`eps_label`)."""
        return eps_label(self.eps, self.norm)

    def describe(self) -> str:
        """Every parameter, as reports and messages show it: ``pgd Linf eps=4/255 steps=10 restarts=1 eot=1``."""
        return " ".join([self.name] + [part for p in WRITTEN if (part := p.shown(self)) is not None])

    def without_eps(self) -> AttackSpec:
        """The same attack at eps 0: what an eps series shares."""
        return self if self.eps is None else replace(self, eps=0.0)

    def as_dict(self) -> dict[str, Any]:
        """The report's view: name, every parameter (:data:`.params.PARAMS`) and min_norm."""
        return {"name": self.name, **{p.name: p.value(self) for p in PARAMS}, "min_norm": self.min_norm}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttackSpec | None:
        """The spec :meth:`as_dict` wrote (None for an empty dict: no attack)."""
        if not data:
            return None
        own = {f.name: data[f.name] for f in fields(cls) if f.name in data and f.name != "gradient_free"}
        return cls(**own, gradient_free=data.get("queries") is not None)


def describe_attack(spec: AttackSpec | None) -> str:
    """:meth:`AttackSpec.describe`, or ``no attack``."""
    return "no attack" if spec is None else spec.describe()


AttackFactory = Callable[["nn.Module", AttackSpec], object]


def attack_info(name: str) -> AttackInfo:
    """What attack ``name`` (or an alias) takes."""
    return ATTACKS.info(name)


#: L-inf budgets above this are implausible for a robustness claim (common ones are 1/255..16/255); a marker
#: that means one (a probe of its own) says ``large_eps=True``.
PLAUSIBLE_LINF = 32 / 255


def implausible_eps(value: float | int | str, eps: float, norm: str) -> str | None:
    """Why an L-inf ``eps`` (written ``value``) looks like a typo, in /255 units; None when it looks meant.

    Above :data:`PLAUSIBLE_LINF` (``eps=0.5`` is 127.5/255) or between 0 and one 8-bit level (``"8/2550"``:
    an 8-bit image file cannot even hold that perturbation).
    """
    if norm != "Linf":
        return None
    if eps > PLAUSIBLE_LINF + 1e-9:
        return (f"L-inf eps {value!r} is {eps * 255:.4g}/255, above {PLAUSIBLE_LINF * 255:g}/255: robustness "
                f"budgets are usually 1/255 to 16/255 (write eps='8/255'); if the large budget is meant, set "
                f"large_eps=True in the marker")
    if 0 < eps < 1 / 255 - 1e-9:
        return (f"L-inf eps {value!r} is {eps * 255:.3g}/255, less than one 8-bit level: an image file cannot hold "
                f"that perturbation, so the attack barely changes anything (budgets look like eps='8/255')")
    return None


def make_spec(name: str, eps: float | str | None = None, *, steps: int | None = None,
              alpha: float | str | None = None, restarts: int = 1, eot: int = 1, queries: int | None = None,
              norm: str | None = None) -> AttackSpec:
    """Validate attack parameters once (each read by its :data:`.params.PARAMS` entry, whose names are these
    keywords); a parameter the attack would ignore is refused.

    For gradient-free attacks ``queries`` (or else ``steps``) is the query budget. Errors
    name the attack, the parameter and the fix.
    """
    entry = ATTACKS.entry(name)
    info: AttackInfo = entry.info
    attack = entry.name
    norm = norm or info.norm
    if norm not in info.norms:
        hint = " (use pgdl2 for L2)" if attack in ("pgd", "fgsm", "ifgsm") else ""
        raise HacError(f"attack {attack!r} supports norm {', '.join(info.norms)}, not {norm!r}{hint}")
    value = _eps(attack, info, norm, eps)
    restarts = RESTARTS.parse(attack, restarts)
    eot = EOT.parse(attack, eot)
    if restarts > 1 and not RESTARTS.taken(info):
        raise HacError(f"attack {attack!r} has no random start, so restarts={restarts} would run the same attack "
                       f"{restarts} times; drop restarts, or use an attack with a random start (pgd, pgdl2, apgd)")
    if eot > 1 and not EOT.taken(info):
        raise HacError(f"attack {attack!r} does not average gradients over a random defense, so eot={eot} would be "
                       f"ignored; drop eot, or use pgd or apgd")
    if alpha is not None and not ALPHA.taken(info):
        raise HacError(f"attack {attack!r} takes no step size alpha (it chooses its own); drop alpha")
    if QUERIES.taken(info):
        budget = queries if queries is not None else steps
        steps = info.steps if budget is None else QUERIES.parse(attack, budget)
    else:
        if queries is not None:
            raise HacError(f"attack {attack!r} uses gradients: queries={queries} is the budget of gradient-free "
                           f"attacks (square, the 'query' threat); drop queries or use steps")
        if steps is not None and not STEPS.taken(info):
            raise HacError(f"attack {attack!r} takes no steps (it is a single step, {info.steps}); drop steps, or "
                           f"use an iterative attack (ifgsm, pgd)")
        steps = info.steps if steps is None else STEPS.parse(attack, steps)
    step_size = None if alpha is None else ALPHA.parse(attack, alpha)
    return AttackSpec(attack, value, norm, steps, step_size, restarts, eot, gradient_free=info.gradient_free)


def _eps(attack: str, info: AttackInfo, norm: str, eps: float | str | None) -> float | None:
    if info.min_norm:
        if eps is not None:
            raise HacError(f"attack {attack!r} is a minimum-norm attack: it has no eps (its cells report the median "
                           f"L2 norm it needed); drop eps, or use an eps-bounded attack (pgd, apgd)")
        return None
    if eps is None:
        raise HacError(f"attack {attack!r} needs an eps budget, e.g. eps='4/255'")
    value = EPS.parse(attack, eps)
    if norm == "Linf" and value > 1:
        raise HacError(f"L-inf eps {value:g} exceeds 1 (the whole pixel range); pixel budgets look like 4/255")
    return value


def build_attack(model: nn.Module, spec: AttackSpec):
    """The torchattacks object for ``spec`` against ``model`` (which takes [0, 1] inputs)."""
    return ATTACKS.entry(spec.name).factory(model, spec)
