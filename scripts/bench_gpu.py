"""One short GPU benchmark of what a nightly run spends its time on; prints one table and writes JSON.

Given CUDA (about 5 minutes on one GPU): images/s of one PGD step (forward + backward + step) for ResNet-50
and ViT-B/16 at 224 px (random weights: speed does not depend on them), bf16 autocast on and off, the JPEG
round trip through nvJPEG and through PIL, tiny-hific's attack fast path and real round trip, the batch the
engine's out-of-memory back-off settles on, and the wall time of the smoke suite with ``--hac-device=cuda``.
Without CUDA it runs the same measurements at tiny sizes on CPU (so CI keeps it working) and skips what needs
a GPU (nvJPEG, the back-off) or minutes (the suite, unless ``--suite``)::

    python scripts/bench_gpu.py --json reports/bench_gpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn: Callable[[], object], images: int, device: torch.device, repeats: int) -> float:
    """Images per second of ``fn`` (one warm-up call, then the median of ``repeats`` calls)."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return images / sorted(times)[len(times) // 2]


def pgd_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> Callable[[], None]:
    """One L-inf PGD step at 8/255 (what every attack iteration costs)."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    def step() -> None:
        xa = x.clone().requires_grad_(True)
        with autocast:
            loss = F.cross_entropy(model(xa).float(), y)
        (grad,) = torch.autograd.grad(loss, xa)
        (xa.detach() + 2 / 255 * grad.sign()).clamp_(0, 1)

    return step


def networks(size: int) -> dict[str, torch.nn.Module]:
    from torchvision.models import resnet50, vit_b_16

    return {"resnet50": resnet50(weights=None), "vit_b_16": vit_b_16(weights=None, image_size=size)}


def backoff_batch(device: torch.device, size: int, start: int) -> dict:
    """The attack batch the engine settles on for ViT-B/16 (one PGD step), starting from ``start``."""
    from pytest_hac.attacks import make_spec
    from pytest_hac.core.cells.cases import Case
    from pytest_hac.core.engine.engine import Engine
    from pytest_hac.data.dataset import Dataset
    from pytest_hac.models.classifier import Classifier

    net = networks(size)["vit_b_16"]
    model = Classifier(net, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), num_classes=1000,
                       input_size=size, resize_size=size, label_space="index", name="vit_b_16")
    n = start
    data = Dataset("random", torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8),
                   torch.randint(0, 1000, (n,)), tuple(map(str, range(n))), "index", class_labels=tuple(range(1000)))
    engine = Engine(model, data, device=device, batch_size=start, memory_mb=1 << 16)
    engine.evaluate(Case("identity", None, 1, "oblivious", make_spec("pgd", "8/255", steps=1), id="pgd"))
    return {"start": start, "settled": engine.batch_sizes["attack"], "backoffs": engine.counters.oom_backoffs}


def smoke_suite(device: torch.device) -> float:
    """Wall seconds of ``pytest suites/test_smoke.py`` on ``device`` (a fresh process, report to a temp dir)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites" / "test_smoke.py"), "-q",
                        "-p", "no:cacheprovider", f"--hac-device={device}", f"--hac-report-dir={tmp}"],
                       cwd=ROOT, env=env, check=False, capture_output=True)
        return time.perf_counter() - start


def measure(device: torch.device, size: int, batch: int, repeats: int, suite: bool, backoff_start: int) -> list[dict]:
    from pytest_hac.codecs import get_codec

    rows: list[dict] = []

    def add(what: str, value: float | int | str | None, unit: str) -> None:
        rows.append({"measure": what, "value": round(value, 2) if isinstance(value, float) else value, "unit": unit})
        print(f"  {what}: {rows[-1]['value']} {unit}", file=sys.stderr, flush=True)

    gen = torch.Generator().manual_seed(0)
    x_cpu = torch.rand(batch, 3, size, size, generator=gen)
    x, y = x_cpu.to(device), torch.randint(0, 1000, (batch,), generator=gen).to(device)
    for name, net in networks(size).items():
        net = net.to(device).eval()
        for bf16 in (False, True):
            add(f"PGD step {name} {size}px{' bf16' if bf16 else ''}", rate(pgd_step(net, x, y, bf16), batch, device,
                                                                          repeats), "img/s")
        del net
    if device.type == "cuda":
        add(f"JPEG q50 round trip nvJPEG {size}px", rate(lambda: get_codec("jpeg", 50, device=device).roundtrip(x),
                                                         batch, device, repeats), "img/s")
    else:
        add(f"JPEG q50 round trip nvJPEG {size}px", "n/a (no CUDA)", "")
    pil = get_codec("jpeg", 50)
    add(f"JPEG q50 round trip PIL {size}px", rate(lambda: pil.roundtrip(x_cpu), batch, torch.device("cpu"), repeats),
        "img/s")
    hific = get_codec("tiny-hific", 2, device=device)
    add(f"tiny-hific q2 fast path {size}px", rate(lambda: hific.attack_decode(x), batch, device, repeats), "img/s")
    add(f"tiny-hific q2 round trip {size}px", rate(lambda: hific.roundtrip(x), batch, device, repeats), "img/s")
    if device.type == "cuda":
        settled = backoff_batch(device, size, backoff_start)
        add(f"OOM back-off: ViT-B/16 PGD batch from {settled['start']}", settled["settled"],
            f"images ({settled['backoffs']} halvings)")
    else:
        add("OOM back-off batch", "n/a (no CUDA)", "")
    if suite:
        add(f"smoke suite wall time --hac-device={device.type}", smoke_suite(device), "s")
    else:
        add("smoke suite wall time", "skipped (--suite)", "")
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, help="image side (default 224 on CUDA, 32 on CPU)")
    parser.add_argument("--batch", type=int, help="images per measured batch (default 64 on CUDA, 2 on CPU)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per measure (default 5; 1 on CPU)")
    parser.add_argument("--suite", action=argparse.BooleanOptionalAction, default=None,
                        help="time the smoke suite (default: on CUDA only)")
    parser.add_argument("--backoff-start", type=int, default=4096, help="first batch of the back-off measure")
    parser.add_argument("--json", type=Path, default=Path("reports/bench_gpu.json"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    size, batch = args.size or (224 if cuda else 32), args.batch or (64 if cuda else 2)
    repeats = args.repeats or (5 if cuda else 1)
    suite = cuda if args.suite is None else args.suite
    start = time.perf_counter()
    rows = measure(device, size, batch, repeats, suite, args.backoff_start)
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    out = {"device": name, "torch": torch.__version__, "size": size, "batch": batch, "rows": rows,
           "seconds": round(time.perf_counter() - start, 1)}
    from tabulate import tabulate

    print(f"{name}, torch {torch.__version__}, batch {batch}, {out['seconds']} s")
    print(tabulate([[r["measure"], r["value"], r["unit"]] for r in rows], headers=["measure", "value", "unit"]))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
