"""The built-in attacks (torchattacks), registered through the same door users take.

Defaults follow the paper: 10 steps with alpha = eps / 4 for the iterative L-inf attacks. Each
registration declares what the engine needs to know (:class:`~pytest_hac.registry.AttackInfo`):
``per_image_seeds`` for the fixed attacks that draw their random start per image, ``best_iterate``
for those returning a best iterate for every image. The fixed classes live in
:mod:`.torchattacks_fixes`, imported by the factories below when an attack is built (it imports
torchattacks, which importing pytest-hac must not).
"""
from __future__ import annotations

from ..registry import NORMS, register_attack
from . import DEFAULT_QUERIES, AttackSpec


def _alpha(spec: AttackSpec) -> float:
    return spec.alpha if spec.alpha is not None else spec.eps / 4


@register_attack("fgsm", steps=1, takes_steps=False, description="fast gradient sign, one step (L-inf)")
def _fgsm(model, spec):
    from .torchattacks_fixes import FGSM

    return FGSM(model, eps=spec.eps)


@register_attack("ifgsm", takes_alpha=True, description="iterative FGSM / BIM, no random start (L-inf)",
                 aliases=("bim",))
def _bim(model, spec):
    from .torchattacks_fixes import BIM

    return BIM(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps)


@register_attack("pgd", random_start=True, per_image_seeds=True, per_image=True, takes_alpha=True, takes_eot=True,
                 description="projected gradient descent with random start (L-inf); EOT with eot > 1",
                 aliases=("pgd-linf",))
def _pgd(model, spec):
    from .torchattacks_fixes import EOTPGD, PGD

    if spec.eot > 1:
        return EOTPGD(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps, eot_iter=spec.eot, random_start=True)
    return PGD(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps, random_start=True)


@register_attack("pgdl2", norm="L2", random_start=True, per_image_seeds=True, per_image=True, takes_alpha=True,
                 description="projected gradient descent with random start (L2)", aliases=("pgd-l2",))
def _pgdl2(model, spec):
    from .torchattacks_fixes import PGDL2

    return PGDL2(model, eps=spec.eps, alpha=_alpha(spec), steps=spec.steps, random_start=True)


@register_attack("apgd", norms=NORMS, random_start=True, per_image_seeds=True, per_image=True, best_iterate=True,
                 takes_eot=True,
                 description="auto-PGD with cross-entropy loss; best-loss iterate", aliases=("apgd-ce",))
def _apgd(model, spec):
    from .torchattacks_fixes import BestLossAPGD

    return BestLossAPGD(model, norm=spec.norm, eps=spec.eps, steps=spec.steps, n_restarts=1, loss="ce",
                        eot_iter=spec.eot)


@register_attack("apgd-dlr", norms=NORMS, random_start=True, per_image_seeds=True, per_image=True, best_iterate=True,
                 takes_eot=True,
                 description="auto-PGD with the DLR loss; best-loss iterate")
def _apgd_dlr(model, spec):
    from .torchattacks_fixes import BestLossAPGD

    return BestLossAPGD(model, norm=spec.norm, eps=spec.eps, steps=spec.steps, n_restarts=1, loss="dlr",
                        eot_iter=spec.eot)


@register_attack("cw", norm="L2", steps=50, min_norm=True,
                 description="Carlini-Wagner L2 (c=1, kappa=0): minimum norm, no eps; reports the median L2")
def _cw(model, spec):
    import torchattacks

    return torchattacks.CW(model, c=1, kappa=0, steps=spec.steps, lr=0.01)


@register_attack("square", norms=NORMS, steps=DEFAULT_QUERIES, gradient_free=True, random_start=True,
                 best_iterate=True,
                 description="Square attack: gradient-free, queries only (steps = queries, default 5000)")
def _square(model, spec):
    from .torchattacks_fixes import BestSquare

    return BestSquare(model, norm=spec.norm, eps=spec.eps, n_queries=spec.steps, n_restarts=1)


@register_attack("autoattack", norms=NORMS, steps=100, random_start=True, best_iterate=True,
                 description="AutoAttack standard (APGD-CE, APGD-T, FAB-T with 9 targets, Square 5000 queries)")
def _autoattack(model, spec):
    from .torchattacks_fixes import AutoAttack

    # torchattacks targets n_classes - 1 classes; the reference AutoAttack uses 9 targets.
    return AutoAttack(model, norm=spec.norm, eps=spec.eps, steps=spec.steps, targets=9)
