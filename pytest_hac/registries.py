"""The three registries and their ``register_*`` functions in one place (what the register hook receives)."""
from .attacks import ATTACKS, register_attack
from .codecs import CODECS, register_codec
from .models import MODELS, register_model

__all__ = ["ATTACKS", "CODECS", "MODELS", "register_attack", "register_codec", "register_model"]
