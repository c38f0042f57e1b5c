"""Scale measurements on generated photos: time to the first cell, peak memory, attack work, decoding speed.

    python scripts/bench_scale.py folder DIR --files 50000            # photo-like JPEGs, 500x375, 10 class folders
    python scripts/bench_scale.py first-cell DIR --samples 1000       # one clean JPEG cell on a subset
    python scripts/bench_scale.py matrix DIR --samples 1000           # jpeg q25/50/75 x rounds 1/2/3 x 3 threats
    python scripts/bench_scale.py decode DIR --samples 1000 --workers 2

Each measuring command prints one JSON line (seconds, peak RSS in MiB of this process, attack work). Run each
in its own process: peak RSS is the process's. The classifier is a small random-weight CNN at 224 px and the
white-box path uses JPEG with a straight-through gradient, so the numbers measure the engine (decoding,
chunks, reuse, memory), not a model. ``tests/benchmarks/test_bench_scale.py`` runs these; the same script
measures an older checkout through PYTHONPATH (it adapts to the engine API before chunked evaluation).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = (500, 375)
CLASSES = 10
#: Distinct generated photos; a larger folder repeats them as hard links (a directory listing of 50,000
#: names is what matters, not 50,000 distinct pixels).
DISTINCT = 400
MATRIX = {"codecs": {"jpeg-bpda": [25, 50, 75]}, "rounds": [1, 2, 3], "threats": ["clean", "oblivious", "whitebox"],
          "attack": "fgsm", "eps": "4/255"}


def photo(seed: int) -> Image.Image:
    """Smooth colour gradients plus a little texture: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = []
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.002, 0.02, 2).tolist() + [rng.uniform(0, 6.3)]
        channels.append(127 + 100 * np.sin(fx * x + fy * y + phase) + 20 * np.cos(0.05 * x * fy * 50))
    image = np.stack(channels, -1) + rng.normal(0, 6, (h, w, 3))
    return Image.fromarray(image.clip(0, 255).astype(np.uint8))


def make_folder(root: Path, files: int) -> Path:
    """``files`` JPEGs in ``CLASSES`` class folders named 0..9 (class indices), made once."""
    marker = root / f".complete-{files}"
    if marker.exists():
        return root
    originals = root / ".originals"
    originals.mkdir(parents=True, exist_ok=True)
    for i in range(min(files, DISTINCT)):
        path = originals / f"{i}.jpg"
        if not path.exists():
            photo(i).save(path, quality=90)
    for i in range(files):
        target = root / str(i % CLASSES) / f"{i:06d}.jpg"
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            os.link(originals / f"{i % DISTINCT}.jpg", target)
    marker.write_text("")
    return root


def classifier():
    """A small random-weight CNN at 224 px (10 logits): cheap, so the engine's own costs show."""
    import torch
    from torch import nn

    from pytest_hac.models import Classifier

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 7, stride=4), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, CLASSES))
    return Classifier(net, mean=(0.5,) * 3, std=(0.25,) * 3, num_classes=CLASSES, input_size=224, resize_size=256,
                      label_space="index", name="bench-cnn")


def register_bpda_jpeg() -> None:
    """Real JPEG whose white-box gradient is straight-through (the Codec default): the engine's work, cheaply."""
    from pytest_hac.codecs.jpeg import Jpeg

    class BpdaJpeg(Jpeg):
        name = "jpeg-bpda"

        def approximate(self, x):
            return super(Jpeg, self).approximate(x)  # Codec.approximate: real forward, identity backward

    try:
        from pytest_hac.registry import register_codec
    except ImportError:  # before the registry module
        from pytest_hac.codecs import register_codec
    register_codec("jpeg-bpda", lambda q, **_: BpdaJpeg(q), qualities=range(1, 101), replace=True)


def load(root: Path, samples: int, workers: int | None = None):
    from pytest_hac.data import load_dataset

    try:
        return load_dataset(str(root), resize=256, crop=224, samples=samples, workers=workers)
    except TypeError:  # before the subset was drawn from the file list: decode all, then subset
        return load_dataset(str(root), resize=256, crop=224).subset(samples, 0)


def engine(model, data):
    from pytest_hac.core.engine.engine import Engine

    return Engine(model, data, batch_size=16)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def first_cell(root: Path, samples: int) -> dict:
    from pytest_hac.core.cells.cases import expand

    start = time.perf_counter()
    data = load(root, samples)
    loaded = time.perf_counter() - start
    (case,) = expand({"codecs": {"jpeg": [50]}, "threats": ["clean"]}, {})
    engine(classifier(), data).evaluate(case)
    return {"files": sum(1 for p in root.glob("[!.]*/*.jpg")), "samples": len(data), "load_seconds": loaded,
            "first_cell_seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb()}


def matrix(root: Path, samples: int) -> dict:
    from pytest_hac.core.cells.cases import expand

    register_bpda_jpeg()
    start = time.perf_counter()
    data = load(root, samples)
    cases = expand(MATRIX, {})
    e = engine(classifier(), data)
    if hasattr(e, "plan"):
        e.plan(cases)
    for case in cases:
        e.evaluate(case)
    distinct = 1 + sum(1 for c in cases if c.threat == "whitebox")  # one oblivious attack + one per defense
    counters = e.counters if isinstance(e.counters, dict) else e.counters.to_dict()  # older engines: a dict
    attacked = counters.get("attack_images", counters["attack_batches"] * e.batch_sizes["attack"])
    return {"samples": len(data), "cells": len(cases), "seconds": time.perf_counter() - start,
            "peak_rss_mb": peak_rss_mb(), "distinct_attacks": distinct, "attack_images": attacked,
            "attack_runs_per_image": attacked / len(data) / distinct,
            "spilled": getattr(e.store, "spills", None)}


def decode(root: Path, samples: int, workers: int) -> dict:
    start = time.perf_counter()
    data = load(root, samples, workers)
    seconds = time.perf_counter() - start
    return {"samples": len(data), "workers": workers, "seconds": seconds, "images_per_second": len(data) / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["folder", "first-cell", "matrix", "decode"])
    parser.add_argument("root", type=Path)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "folder":
        make_folder(args.root, args.files)
        return 0
    out = {"first-cell": lambda: first_cell(args.root, args.samples),
           "matrix": lambda: matrix(args.root, args.samples),
           "decode": lambda: decode(args.root, args.samples, args.workers or 1)}[args.command]()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
