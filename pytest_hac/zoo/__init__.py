"""Embedded weights and their model cards (MODEL_CARD.md, CODECS.md)."""
