"""Seconds of one oblivious PGD cell (8/255, 10 steps) on CPU at ``--hac-batch-size`` auto, 16, 64, 256, 1024.

The case of issue 19: a ResNet-20 (CIFAR-style, random weights: speed does not depend on them) on 32-px
images. Prints one JSON line: the batch ``auto`` chose and the seconds at each size::

    python scripts/bench_cpu_batch.py --images 500
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


def resnet20(num_classes: int = 10):
    """A CIFAR ResNet-20 (3 stages of 3 blocks, 16/32/64 channels) as a pytest-hac classifier."""
    from pytest_hac.models.classifier import Classifier

    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(_Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
    return Classifier(net, mean=(0.49, 0.48, 0.45), std=(0.25, 0.24, 0.26), num_classes=num_classes,
                      input_size=32, resize_size=32, label_space="index", name="resnet20").eval()


def images(n: int):
    from pytest_hac.data.dataset import Dataset

    gen = torch.Generator().manual_seed(0)
    low = torch.rand(n, 3, 8, 8, generator=gen)
    pixels = torch.nn.functional.interpolate(low, size=(32, 32), mode="bilinear", align_corners=False)
    return Dataset("random-32px", pixels.mul(255).round().to(torch.uint8), torch.randint(0, 10, (n,), generator=gen),
                   tuple(f"img-{i}" for i in range(n)), "index", class_labels=tuple(range(10)))


def seconds(batch_size: int | str, n: int) -> tuple[float, int]:
    from pytest_hac.attacks import make_spec
    from pytest_hac.core.cells.cases import Case
    from pytest_hac.core.engine.engine import Engine

    torch.manual_seed(0)
    engine = Engine(resnet20(), images(n), batch_size=batch_size)
    case = Case("identity", None, 1, "oblivious", make_spec("pgd", "8/255", steps=10), id="pgd")
    start = time.perf_counter()
    engine.evaluate(case)
    return time.perf_counter() - start, engine.batch_sizes["attack"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--sizes", default="auto,16,64,256,1024")
    args = parser.parse_args()
    out: dict = {"images": args.images, "threads": torch.get_num_threads(), "seconds": {}}
    seconds(16, min(args.images, 32))  # warm-up: lazy imports and allocations must not count against the first size
    for size in args.sizes.split(","):
        s, chosen = seconds(size if size == "auto" else int(size), args.images)
        out["seconds"][size] = round(s, 2)
        if size == "auto":
            out["auto_batch"] = chosen
    print(json.dumps(out))


if __name__ == "__main__":
    main()
