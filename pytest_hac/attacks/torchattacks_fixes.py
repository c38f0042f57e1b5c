"""torchattacks subclasses: a best iterate for every image, and random starts drawn per image.

* torchattacks' APGD, Square and AutoAttack return the clean image for every point they
  did not fool, judged on the attacked model; when that model is not the evaluated pipeline
  (oblivious, white-box) the pipeline would see no attack at all. These return a best iterate
  (registered with ``best_iterate=True``, :class:`~pytest_hac.registry.AttackInfo`).
* PGD, PGD-L2, EOT-PGD and APGD draw their random start per image, from a generator seeded
  with the image's own seed (``image_seeds``, set by the engine for each batch because their
  registrations say ``per_image_seeds=True``), so an image's adversarial example does not depend
  on which other images share its batch or chunk. Their steps are torchattacks' own; PGD's loss is
  summed rather than averaged over the batch, so each image's gradient is its own whatever the batch size.
* PGD, PGD-L2 and EOT-PGD stop attacking an image once ``stop`` (set by the engine for a soundness probe,
  ``AdvKey.until_broken``) says the image is broken at the current iterate: it keeps that iterate and the
  later steps run on the others only. Without ``stop`` their arithmetic is unchanged.
* Square and AutoAttack's later components draw from torch's global RNG, which the engine seeds
  per batch: their numbers depend on batch boundaries.

This module imports torchattacks: only the attack factories of :mod:`.builtin` import it, when an
attack is built, so importing pytest-hac does not import torchattacks.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
import torchattacks
from torch import Tensor
from torchattacks.attacks import apgd as apgd_module

from . import DEFAULT_QUERIES
from .gradients import masked


def per_image(draw: str, shape: Sequence[int], seeds: Sequence[int], device: torch.device | str = "cpu",
              **kwargs) -> Tensor:
    """``torch.<draw>`` (rand, randn, ...) of ``shape``, image ``i``'s values from its own seed ``seeds[i]``."""
    rows = [getattr(torch, draw)(tuple(shape[1:]), generator=torch.Generator().manual_seed(int(s)), **kwargs)
            for s in seeds]
    return torch.stack(rows).to(device)


@contextlib.contextmanager
def _per_image_draws(module: object, seeds: Sequence[int] | None) -> Iterator[None]:
    """Within ``module``, make ``torch.rand``/``torch.randn`` of a whole batch draw per image.

    Why a patch: torchattacks' APGD draws its random start with ``torch.rand(x.shape)`` (L2:
    ``torch.randn``) in the middle of ``attack_single_run``, from the global RNG, with no hook to
    pass a generator. Redirecting that one module's global ``torch`` for the duration of the call
    keeps APGD's code untouched (copying its 200-line step loop would fork it). This is the only
    place pytest-hac patches a dependency; ``tests/unit/test_torchattacks_fixes.py`` fails if
    torchattacks stops drawing the start this way. Draws of any other shape pass through unchanged.
    """
    if seeds is None:
        yield
        return
    real = module.torch

    class Draws:
        def __getattr__(self, name: str):
            return getattr(real, name)

        @staticmethod
        def rand(shape, *args, **kwargs):
            return per_image("rand", shape, seeds) if len(shape) and shape[0] == len(seeds) \
                else real.rand(shape, *args, **kwargs)

        @staticmethod
        def randn(shape, *args, **kwargs):
            return per_image("randn", shape, seeds) if len(shape) and shape[0] == len(seeds) \
                else real.randn(shape, *args, **kwargs)

    module.torch = Draws()
    try:
        yield
    finally:
        module.torch = real


def _draw_seed() -> int:
    # From the global RNG, which the engine seeds per batch: --hac-seed reaches the attack.
    return int(torch.randint(0, 2**31 - 1, ()).item())


class _CleanGradient:
    """Mixed into an attack whose first gradient is taken at the clean images (FGSM, BIM): after each call,
    ``clean_gradient_bad`` says per image whether that gradient was all zero or not finite, the zero-gradient
    probe's question, so the probe need not take it again. Read through a hook: the attack's arithmetic is
    torchattacks' own."""

    clean_gradient_bad: Tensor | None = None
    _first = False

    def forward(self, images, labels):
        self._first, self.clean_gradient_bad = True, None
        return super().forward(images, labels)

    def get_logits(self, inputs, *args, **kwargs):
        if self._first and inputs.requires_grad:
            self._first = False
            inputs.register_hook(self._record)
        return super().get_logits(inputs, *args, **kwargs)

    def _record(self, grad: Tensor) -> None:
        self.clean_gradient_bad = masked(grad).cpu()


class FGSM(_CleanGradient, torchattacks.FGSM):
    """torchattacks' FGSM, telling which images had a zero or non-finite gradient."""


class BIM(_CleanGradient, torchattacks.BIM):
    """torchattacks' BIM (iterative FGSM, no random start), telling which images had a zero or non-finite gradient
    at the clean image."""


#: Per image of a batch (iterates, labels, the attacked model's logits at them): is the image broken?
Stop = Callable[[Tensor, Tensor, Tensor], Tensor]


class PGD(torchattacks.PGD):
    """PGD (L-inf) with a per-image random start and a summed loss."""

    image_seeds: list[int] | None = None
    stop: Stop | None = None

    def forward(self, images, labels):
        return _pgd_linf(self, images, labels, eot_iter=1)


class EOTPGD(torchattacks.EOTPGD):
    """EOT-PGD (gradients averaged over ``eot_iter`` passes of a random defense), per-image start."""

    image_seeds: list[int] | None = None
    stop: Stop | None = None

    def forward(self, images, labels):
        return _pgd_linf(self, images, labels, eot_iter=self.eot_iter)


class PGDL2(torchattacks.PGDL2):
    """PGD (L2) with a per-image random start (a random direction at a uniform radius) and a summed loss."""

    image_seeds: list[int] | None = None
    stop: Stop | None = None

    def forward(self, images, labels):
        images, labels = _on_device(self, images, labels)
        n = len(images)
        adv = images.clone().detach()
        if self.random_start:
            seeds = self.image_seeds or [0] * n
            direction = per_image("randn", images.shape, seeds, self.device)
            radius = per_image("rand", (n, 1), [s + 1 for s in seeds], self.device).view(n, 1, 1, 1)
            norms = direction.flatten(1).norm(dim=1).view(n, 1, 1, 1)
            adv = (adv + direction * radius / norms * self.eps).clamp(0, 1).detach()
        if self.stop is not None:
            return _until_broken(self, images, labels, adv, self._step)
        for _ in range(self.steps):
            adv = self._step(images, labels, adv, _gradient(self, adv, labels)[0])
        return adv

    def _step(self, images: Tensor, labels: Tensor, adv: Tensor, grad: Tensor) -> Tensor:
        n = len(images)
        grad = grad / (grad.flatten(1).norm(dim=1) + self.eps_for_division).view(n, 1, 1, 1)
        delta = adv + self.alpha * grad - images
        factor = (self.eps / delta.flatten(1).norm(dim=1)).clamp(max=1.0).view(n, 1, 1, 1)
        return (images + delta * factor).clamp(0, 1).detach()


class BestLossAPGD(torchattacks.APGD):
    """APGD returning its best-loss iterate for every image, fooled or not, wrong or right."""

    image_seeds: list[int] | None = None

    def forward(self, images, labels):
        images, labels = _on_device(self, images, labels)
        # best_loss=True attacks every image and does not reseed torch.
        with _per_image_draws(apgd_module, self.image_seeds):
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
        images, labels = _on_device(self, images, labels)
        first, *rest = self.attacks
        out = first(images, labels)
        with torch.no_grad():
            logits = self.get_logits(out)
        classes, robust = logits.shape[1], logits.argmax(1) == labels
        for attack in rest:
            if hasattr(attack, "n_target_classes"):  # at most classes - 1 targets exist
                attack.n_target_classes = min(self.targets, classes - 1)
            attack.seed = _draw_seed()
            idx = robust.nonzero().flatten()
            if idx.numel() == 0:
                break
            adv = attack(images[idx], labels[idx]).detach()
            with torch.no_grad():
                fooled = self.get_logits(adv).argmax(1) != labels[idx]
            out[idx[fooled]] = adv[fooled]
            robust[idx[fooled]] = False
        return out.detach()


def _on_device(attack, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    return images.clone().detach().to(attack.device), labels.clone().detach().to(attack.device)


def _pgd_linf(attack, images: Tensor, labels: Tensor, eot_iter: int) -> Tensor:
    """torchattacks' L-inf PGD steps from a per-image random start, ``eot_iter`` gradients summed per step."""
    images, labels = _on_device(attack, images, labels)
    adv = images.clone().detach()
    if attack.random_start:
        start = per_image("rand", images.shape, attack.image_seeds or [0] * len(images), attack.device)
        adv = (adv + (2 * start - 1) * attack.eps).clamp(0, 1).detach()

    def step(images: Tensor, labels: Tensor, adv: Tensor, grad: Tensor) -> Tensor:
        adv = adv + attack.alpha * grad.sign()
        return (images + (adv - images).clamp(-attack.eps, attack.eps)).clamp(0, 1).detach()

    if attack.stop is not None:
        return _until_broken(attack, images, labels, adv, step, eot_iter=eot_iter)
    for _ in range(attack.steps):
        grad = sum(_gradient(attack, adv, labels)[0] for _ in range(eot_iter))
        adv = step(images, labels, adv, grad)
    return adv


def _until_broken(attack, images: Tensor, labels: Tensor, adv: Tensor,
                  step: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor], *, eot_iter: int = 1) -> Tensor:
    """``attack.steps`` of ``step`` on the images ``attack.stop`` has not called broken yet: each image keeps the
    first iterate found broken (judged at the logits each step computes anyway, before its update)."""
    live = torch.arange(len(images), device=images.device)
    for _ in range(attack.steps):
        x, y = adv[live], labels[live]
        grads = [_gradient(attack, x, y) for _ in range(eot_iter)]
        broken = attack.stop(x, y, grads[0][1]).to(live.device)
        keep = ~broken
        live, x, y = live[keep], x[keep], y[keep]
        if not len(live):
            break
        grad = sum(g[keep] for g, _ in grads)
        adv[live] = step(images[live], y, x, grad)
    return adv


def _gradient(attack, adv: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The input gradient of the cross-entropy summed over the batch (each image's gradient is its own), and
    the logits it was taken at."""
    adv = adv.clone().detach().requires_grad_(True)
    logits = attack.get_logits(adv)
    cost = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
    return torch.autograd.grad(cost, adv)[0], logits.detach()


