"""A defense (a codec at a quality, applied a number of rounds; ``identity``: none) and where the attacker
stands against it: which module a threat's attack differentiates (or queries), by gradient path.

* ``oblivious``: the bare model ("bare"); the defense is applied afterwards;
* ``whitebox``: the model behind the codec's differentiable stand-in ("approximate");
* ``adaptive``: every defense-aware path, each one attack: BPDA (the real codec forward in every
  round) with the stand-in's gradient in every round ("bpda"), with the identity in every round
  ("bpda-identity") and, from two rounds on, with the stand-in in the first round and the identity
  in the later ones ("bpda-first"); and the white-box attack ("approximate", the white-box cell's
  own attack, shared with it). Per image the engine keeps the one the real pipeline gets wrong (as
  it does over restarts), so the adaptive cell is never above the white-box one on any image. Why
  so many: through several rounds a differentiable JPEG carries almost no gradient (the product of
  its rounding approximations), so "bpda" alone can be weaker than the oblivious attack; a decoded
  JPEG re-compressed at its quality barely changes, so later rounds are close to the identity and
  "bpda-first" is as strong at three rounds as "bpda" at one (tiny-cnn on digits, JPEG q25 and
  q50); the identity alone is the classic BPDA, for a codec whose stand-in is poor. The oblivious
  attack is not among them: the informed-not-weaker check compares the two;
* ``query``: the real defended pipeline, queried without gradients ("real").

An undefended cell (codec ``identity``) is attacked on the bare model whatever the threat.
"""
from __future__ import annotations

from typing import NamedTuple

from ...attacks import Threat
from ...registry import CODECS


class Defense(NamedTuple):
    """``(codec, quality, rounds)``; its ``str`` is the label cell ids start with: ``jpeg-q50-r1``."""

    codec: str
    quality: int | None
    rounds: int

    def __str__(self) -> str:
        q = "" if self.quality is None else f"-q{self.quality}"
        return f"{self.codec}{q}-r{self.rounds}"


#: No defense: the bare model (what an attack on the ``bare`` path sees).
IDENTITY = Defense("identity", None, 1)


#: Paths that are another path at one round (no later round to treat apart).
SAME_AT_ONE_ROUND = {"bpda-first": "bpda"}
#: BPDA modes -> what the backward pass differentiates in (the first round, each later round);
#: the forward pass is the real codec in every round.
BPDA_BACKWARD = {"bpda": ("approximate", "approximate"), "bpda-identity": ("identity", "identity"),
                 "bpda-first": ("approximate", "identity")}
MODES = ("approximate", "real", *BPDA_BACKWARD)


def gradient_paths(threat: Threat, codec: str, rounds: int) -> tuple[str, ...]:
    """The attacker's views of the defense for a cell (the threat's ``paths``): one attack per path, each
    one attack (and one ``AdvKey``) per restart; an image counts as correct only if the real pipeline
    gets it right on every one.

    Paths that coincide at this number of rounds are tried once ("bpda-first" is "bpda" at one round), and so
    are those that coincide for a codec without a differentiable stand-in (``CodecInfo.stand_in`` False): its
    ``approximate`` is already the real forward with the identity backward, so every informed path is the
    white-box attack ("approximate").
    """
    if codec == "identity":
        return ("bare",)
    paths = Threat.of(threat).info.paths
    if Threat.of(threat).info.informed and codec in CODECS and not CODECS.info(codec).stand_in:
        return ("approximate",)
    return paths if rounds > 1 else tuple(p for p in paths if SAME_AT_ONE_ROUND.get(p) not in paths)


def follows_stand_in(path: str) -> bool:
    """Whether an attack on ``path`` follows the codec's stand-in (``approximate``) in some round."""
    return path == "approximate" or "approximate" in BPDA_BACKWARD.get(path, ())


def masking_hint(threat: Threat) -> str:
    """What a user can try when a masking check (informed-not-weaker, large-eps-through-defense,
    gradient-nonzero, gradient-free-not-stronger) flags a ``threat`` cell on their codec."""
    tries = ["more steps (steps=, --hac-steps) or restarts (restarts=)",
             "eot=N if the codec is random (EOT needs a codec marked stochastic = True)"]
    if "bpda-identity" in Threat.of(threat).info.paths:
        tries.append("a codec approximate() whose gradient carries information (the adaptive attack already "
                     "keeps, per image, the worst of the approximation's and the identity's backward)")
    else:
        tries.append("the adaptive threat, which also follows the identity gradient (BPDA: real codec forward, "
                     "identity backward) and keeps the per-image worst case")
    return "what to try: " + "; ".join(tries)
