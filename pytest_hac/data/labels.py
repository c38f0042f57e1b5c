"""From class folder names to the labels a model's logits are indexed by.

In order: a ``--hac-labels`` file (folder name -> model class index) when given; ImageNet
WordNet ids (``n01440764``, as Imagenette's folders are) -> ImageNet-1k indices; folders
named ``0``, ``1``, ... -> those indices; any other names -> their sorted order, 0..N-1
(torchvision's ``ImageFolder`` convention), for models whose classes are in that order.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import HacError


@dataclass(frozen=True)
class LabelMapping:
    """Folder name -> label, the label space they live in, and the rule in words (for the report)."""

    labels: dict[str, int]
    space: str
    rule: str


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order."""
    return tuple((Path(__file__).resolve().parent.parent / "imagenet_wnids.txt").read_text().split())


def read_labels_file(path: Path) -> dict[str, int]:
    """A JSON object ``{"airplane": 404, ...}`` or two-column text (``airplane 404``, comma or tab also)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HacError(f"--hac-labels={str(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HacError(f"--hac-labels={str(path)!r} cannot be read ({exc}); give a JSON object or two-column "
                       f"text of folder name and class index") from None
    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HacError(f"--hac-labels={str(path)!r} is not valid JSON ({exc})") from None
        pairs = list(raw.items())
    else:
        pairs = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.replace(",", " ").replace("\t", " ").split()
            if len(parts) != 2:
                raise HacError(f"--hac-labels={str(path)!r} line {number}: expected 'folder-name class-index', "
                               f"got {line!r}")
            pairs.append((parts[0], parts[1]))
    labels = {}
    for name, index in pairs:
        try:
            value = int(index)
        except (TypeError, ValueError):
            raise HacError(f"--hac-labels={str(path)!r}: class index of {name!r} must be an integer; got "
                           f"{index!r}") from None
        if value < 0 or isinstance(index, bool):
            raise HacError(f"--hac-labels={str(path)!r}: class index of {name!r} must be >= 0; got {index!r}")
        labels[str(name)] = value
    if not labels:
        raise HacError(f"--hac-labels={str(path)!r} maps no folder; give 'folder-name class-index' lines")
    return labels


def map_classes(classes: list[str], labels_file: Path | None = None) -> LabelMapping:
    """The labels of sorted class folder names ``classes`` (see the module docstring)."""
    if labels_file is not None:
        table = read_labels_file(labels_file)
        missing = [c for c in classes if c not in table]
        if missing:
            raise HacError(f"--hac-labels={str(labels_file)!r} has no class index for folder(s) {missing[:5]}"
                           f"{' ...' if len(missing) > 5 else ''}; add a line for every class folder")
        return LabelMapping({c: table[c] for c in classes}, "index", f"mapping file {labels_file}")
    wnids = {w: i for i, w in enumerate(imagenet_wnids())}
    if all(c in wnids for c in classes):
        return LabelMapping({c: wnids[c] for c in classes}, "imagenet", "ImageNet WordNet ids -> ImageNet-1k indices")
    if all(c.isdigit() for c in classes):
        return LabelMapping({c: int(c) for c in classes}, "index", "folder names are class indices")
    return LabelMapping({c: i for i, c in enumerate(sorted(classes))}, "folder-order",
                        "sorted folder names -> 0..N-1 (torchvision's ImageFolder order)")
