"""A defense: a codec at a quality, applied a number of rounds (``identity``: none)."""
from __future__ import annotations

from typing import NamedTuple


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
