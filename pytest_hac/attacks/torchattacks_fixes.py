"""torchattacks subclasses that return a best iterate for every image (see PITFALLS).

torchattacks' APGD, Square and AutoAttack return the clean image for every point they
did not fool, judged on the attacked model; when that model is not the evaluated pipeline
(oblivious, white-box) the pipeline would see no attack at all. Built on first use:
importing pytest-hac must not import torchattacks.
"""
from __future__ import annotations

import functools
from types import SimpleNamespace

from . import DEFAULT_QUERIES


@functools.cache
def fixed() -> SimpleNamespace:
    """The classes, built once."""
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


