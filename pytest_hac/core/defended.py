"""Where the attacker stands: which module a threat's attack differentiates (or queries).

* ``oblivious``: the bare model ("bare"); the defense is applied afterwards;
* ``whitebox``: the model behind the codec's differentiable stand-in ("approximate");
* ``adaptive``: BPDA, the real codec forward and the stand-in's gradient backward ("bpda");
* ``query``: the real defended pipeline, queried without gradients ("real").

An undefended cell (codec ``identity``) is attacked on the bare model whatever the threat.
"""
from __future__ import annotations

from torch import Tensor, nn

from ..codecs import Codec
from ..models import Classifier

#: Threat -> how gradients (or queries) pass through the defense.
GRADIENT_PATH = {"oblivious": "bare", "whitebox": "approximate", "adaptive": "bpda", "query": "real"}


def gradient_path(threat: str, codec: str) -> str:
    """The attacker's view of the defense for a cell."""
    return "bare" if codec == "identity" else GRADIENT_PATH[threat]


class Defended(nn.Module):
    """``classifier(defense^rounds(x))`` with the defense in one of three gradient modes.

    * ``approximate``: the codec's differentiable stand-in (white-box);
    * ``bpda``: the real codec forward, the stand-in's gradient backward (adaptive);
    * ``real``: the real codec, no gradient (queries only).
    """

    def __init__(self, classifier: Classifier, codec: Codec, rounds: int, mode: str) -> None:
        super().__init__()
        self.classifier = classifier  # registered, so torchattacks finds a device from its parameters
        self.codec = codec
        self.rounds = rounds
        self.mode = mode
        # torchattacks restores the mode it found: a module left in training mode would
        # switch the classifier's BatchNorm to batch statistics for good.
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        for _ in range(self.rounds):
            x = self._defend(x)
        return self.classifier(x)

    def _defend(self, x: Tensor) -> Tensor:
        # The codec decides how to reach its decoded image cheaply (its verified fast path, see codecs.fastpath).
        if self.mode == "approximate":
            return self.codec.approximate(x)
        if self.mode == "real":
            return self.codec.attack_decode(x.detach())
        return self.codec.bpda(x)
