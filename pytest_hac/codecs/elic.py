"""ELIC (He et al. 2022), the paper's codec: checkpoint names, loading and the registry factory.

Two registry entries: ``elic`` is CompressAI's ``Elic2022Chandelier`` and loads the public
checkpoints of VincentChandelier's re-implementation (renamed by :func:`map_elic_reimplementation`)
or CompressAI state dicts; ``elic-official`` is ``Elic2022Official`` and loads CompressAI state
dicts only. ELIC weights are never downloaded: they come from ``--hac-weights-dir``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..errors import WeightsNotFound
from ..io.checkpoints import hub_checkpoint_dir, load_state_dict
from .compressai_codec import CompressAICodec, load_state_strict

__all__ = ["ELIC_CHECKPOINTS", "elic_factory", "elic_filename", "load_elic", "map_elic_reimplementation"]

ELIC_REPO = "https://github.com/VincentChandelier/ELiC-ReImplemetation"
#: quality -> the lambda code of the re-implementation's public checkpoints (lambda 0.004 .. 0.45).
ELIC_CHECKPOINTS: dict[int, str] = {1: "0004", 2: "0008", 3: "0016", 4: "0032", 5: "0150", 6: "0450"}


def elic_filename(quality: int) -> str:
    """``ELIC_0004_ft_3980_Plateau.pth.tar`` .. ``ELIC_0450_ft_3980_Plateau.pth.tar`` for qualities 1..6."""
    return f"ELIC_{ELIC_CHECKPOINTS[quality]}_ft_3980_Plateau.pth.tar"


# The re-implementation's TestModel (Network.py) names its modules differently from
# CompressAI's Elic2022Chandelier, which was ported from it: same layers, new places.
_REIMPL_PREFIXES = ("cc_transforms.", "context_prediction.", "ParamAggregation.", "gaussian_conditional.")


def map_elic_reimplementation(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a VincentChandelier ELiC-ReImplemetation state dict to CompressAI's Elic2022Chandelier.

    ``h_a``/``h_s``/``entropy_bottleneck`` move under ``latent_codec.hyper``;
    ``cc_transforms.i`` becomes channel context ``y{i+1}``; ``context_prediction.i``
    and ``ParamAggregation.i`` become group ``y{i}``'s spatial context and entropy
    parameters; the single ``gaussian_conditional`` is copied into every group.
    """
    groups = sorted({int(k.split(".")[1]) for k in state if k.startswith("context_prediction.")})
    base = "latent_codec.y.latent_codec"
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head in ("g_a", "g_s"):
            out[key] = value
        elif head in ("h_a", "h_s", "entropy_bottleneck"):
            out[f"latent_codec.hyper.{key}"] = value
        elif head == "gaussian_conditional":
            for k in groups:
                out[f"{base}.y{k}.y.gaussian_conditional.{rest}"] = value
        elif head in ("cc_transforms", "context_prediction", "ParamAggregation"):
            index, _, tail = rest.partition(".")
            i = int(index)
            if head == "cc_transforms":
                out[f"latent_codec.y.channel_context.y{i + 1}.{tail}"] = value
            elif head == "context_prediction":
                out[f"{base}.y{i}.context_prediction.{tail}"] = value
            else:
                out[f"{base}.y{i}.entropy_parameters.{tail}"] = value
        else:
            raise WeightsNotFound(f"unexpected key {key!r} in an ELIC re-implementation checkpoint")
    return out


def _is_reimplementation(state: dict[str, Tensor]) -> bool:
    return any(k.startswith(_REIMPL_PREFIXES) for k in state)


def _elic_dims(state: dict[str, Tensor], what: str) -> tuple[int, int, list[int]]:
    """N, M and channel groups of an ELIC state dict in CompressAI's layout."""
    try:
        n = state["g_a.0.weight"].shape[0]
        m = state["g_a.13.weight"].shape[0]
    except KeyError as exc:
        raise WeightsNotFound(f"{what} is not an ELIC checkpoint (no {exc.args[0]!r})") from exc
    pattern = re.compile(r"latent_codec\.y\.latent_codec\.y(\d+)\.context_prediction\.weight$")
    found = {int(mt.group(1)): v.shape[1] for k, v in state.items() if (mt := pattern.match(k))}
    groups = [found[k] for k in sorted(found)]
    if not groups or sum(groups) != m:
        raise WeightsNotFound(f"{what}: channel groups {groups} do not add up to M={m}")
    return n, m, groups


def load_elic(path: Path | str, *, official: bool = False) -> nn.Module:
    """An ELIC network from a CompressAI-style state dict or one of the re-implementation's checkpoints."""
    from compressai.models import Elic2022Chandelier, Elic2022Official
    from compressai.zoo.pretrained import rename_key

    what = f"ELIC checkpoint {path}"
    # rename_key strips DataParallel's "module." and converts CompressAI 1.1's entropy-bottleneck names.
    state = {rename_key(k): v for k, v in load_state_dict(path, what=what).items()}
    if _is_reimplementation(state):
        if official:
            raise WeightsNotFound(
                f"{what} is from the ELiC re-implementation ({ELIC_REPO}); load it as codec 'elic', "
                f"not 'elic-official' (the architectures differ)")
        state = map_elic_reimplementation(state)
    n, m, groups = _elic_dims(state, what)
    cls = Elic2022Official if official else Elic2022Chandelier
    net = cls(N=n, M=m, groups=groups)
    load_state_strict(net, state, what)
    return net


def elic_factory(official: bool):
    """The registry factory of ``elic`` (``official=False``) or ``elic-official``."""
    codec_name = "elic-official" if official else "elic"

    def factory(quality: int, *, weights_dir: Path | None = None, **_: Any) -> CompressAICodec:
        filename = elic_filename(quality)
        folder = Path(weights_dir) if weights_dir is not None else hub_checkpoint_dir()
        path = folder / filename
        if not path.is_file():
            where = "" if weights_dir is not None else " (the default folder; no --hac-weights-dir was given)"
            source = (f"the links in the README of {ELIC_REPO}" if not official
                      else "your own Elic2022Official training run (no official ELIC weights are public)")
            raise WeightsNotFound(
                f"{codec_name} quality {quality} needs checkpoint {filename} (lambda 0.{ELIC_CHECKPOINTS[quality]}) "
                f"in {folder}{where}. ELIC weights are never downloaded automatically: get {filename} from "
                f"{source} and pass its folder with --hac-weights-dir=<folder>")
        return CompressAICodec(load_elic(path, official=official), name=codec_name, quality=quality)

    return factory
