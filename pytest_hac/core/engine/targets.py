"""The module an attack differentiates or queries: the classifier behind a defense, in one gradient mode
(:data:`..cells.defense.MODES`, which says what each threat's paths are)."""
from __future__ import annotations

from torch import Tensor, nn

from ...codecs import Codec
from ...models import Classifier
from ..cells.defense import BPDA_BACKWARD, MODES


class Defended(nn.Module):
    """``classifier(defense^rounds(x))`` with the defense in one of the gradient :data:`MODES`.

    * ``approximate``: the codec's differentiable stand-in (white-box);
    * ``bpda``: the real codec forward, the stand-in's gradient backward (adaptive);
    * ``bpda-identity``: the real codec forward, the identity backward (adaptive);
    * ``bpda-first``: the real codec forward, the stand-in's gradient backward in the first round
      and the identity in later ones (adaptive);
    * ``real``: the real codec, no gradient (queries only).
    """

    def __init__(self, classifier: Classifier, codec: Codec, rounds: int, mode: str) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        self.classifier = classifier  # registered, so torchattacks finds a device from its parameters
        self.codec = codec
        self.rounds = rounds
        self.mode = mode
        # torchattacks restores the mode it found: a module left in training mode would
        # switch the classifier's BatchNorm to batch statistics for good.
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        for k in range(self.rounds):
            x = self._defend(x, k)
        return self.classifier(x)

    def _defend(self, x: Tensor, k: int) -> Tensor:
        # The codec decides how to reach its decoded image cheaply (its verified fast path, see codecs.fastpath).
        if self.mode == "approximate":
            return self.codec.approximate(x)
        if self.mode == "real":
            return self.codec.attack_decode(x.detach())
        if BPDA_BACKWARD[self.mode][min(k, 1)] == "approximate":
            return self.codec.bpda(x)
        real = self.codec.attack_decode(x.detach())
        return x + (real - x).detach()  # the identity backward
