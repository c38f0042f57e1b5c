"""The text ``pytest --hac-list`` prints."""
from __future__ import annotations

from ..attacks import Threat
from ..codecs import quality_text
from ..data import DATASETS
from ..registry import ATTACKS, CODECS, MODELS


def listing() -> str:
    """Known models, data sets, codecs, attacks and threats; one per line under a heading each."""
    lines = ["models:"]
    for e in MODELS:
        info = e.info
        lines.append(f"  {e.name:<20} {info.label_space}, {info.input_size}px  {e.description}")
    lines += ["  timm:<name>           any timm model (needs timm)",
              "  package.module:fn     a factory returning an nn.Module that takes [0, 1] inputs", "", "data sets:"]
    lines += [f"  {name}" for name in DATASETS]
    lines += ["  PATH                 an ImageFolder (WordNet-id, index or word-named class folders;",
              "                       --hac-labels=FILE maps named folders to a model's classes)", "", "codecs:"]
    for e in CODECS:
        lines.append(f"  {e.name:<20} {quality_text(e.name):<18} {e.description}")
    lines += ["", "attacks:"]
    for e in ATTACKS:
        lines.append(f"  {e.name:<20} {e.info.norm:<5} {e.description}")
    lines += ["", "threats:"]
    for t in Threat:
        extra = f" (aliases: {', '.join(t.info.aliases)})" if t.info.aliases else ""
        lines.append(f"  {t:<20} {t.info.help}{extra}")
    return "\n".join(lines)
