"""The batch runner: a stage's work over n images in batches of the stage's size, on the device.

A CUDA out-of-memory error halves that stage's batch size and the run carries on from the
batch that failed. Every batch is counted per stage (:class:`Counters`; the soundness probes'
batches apart) and the seconds spent are summed per stage (attack, codec, predict, probe).

``--hac-batch-size=auto`` on CPU: the batch the model's activations allow, not a constant.

Small models on small images waste most of a small batch on per-call overhead (measured: a ResNet-20 on
500 images of 32 px ran 1.4x faster at 256 than at 16). :func:`cpu_batch` measures the bytes of every
layer's output for one image, allows an attack's forward and backward about three times that, and takes
the largest power of two whose activations fit the budget, capped at :data:`CPU_CAP`. CUDA keeps its own
start (large) and halves on out-of-memory.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from ...data import Dataset
from ...errors import HacError
from ...models import Classifier

#: Stages with their own batch size: an attack needs several times the memory of a forward pass.
STAGES = ("attack", "codec", "predict")


#: First batch size with ``batch_size="auto"``: CUDA starts large and halves on out-of-memory; on CPU
#: codecs use 16 and the model's stages what its activations allow (:func:`cpu_batch`).
AUTO_BATCH = {"cuda": 256, "cpu": 16}


#: ``progress(stage, images_done, images_total)``, called after every batch.
ProgressFn = Callable[[str, int, int], None]


@dataclass
class Counters:
    """Batches run per stage; the soundness probes' batches (of any stage) count apart in ``probe_batches``.

    ``attack_images`` counts the images each distinct attack set (gradient path x restart) attacked, once:
    the first set of a cell every image, each later one only the images every earlier one left correct
    (the cascade, :meth:`.chunks.Outcomes.cascade`); a set shared with another cell (the white-box one,
    an oblivious attack) once. ``oom_backoffs`` counts batches halved after CUDA ran out of memory.
    """

    attack_batches: int = 0
    codec_batches: int = 0
    predict_batches: int = 0
    probe_batches: int = 0
    oom_backoffs: int = 0
    attack_images: int = 0

    def count(self, stage: str, images: int = 0) -> None:
        """One batch of ``stage`` (attack, codec or predict) over ``images`` images."""
        if stage == "attack":
            self.attack_batches += 1
            self.attack_images += images
        elif stage == "codec":
            self.codec_batches += 1
        elif stage == "predict":
            self.predict_batches += 1
        else:
            raise ValueError(f"unknown stage {stage!r}")

    def to_dict(self) -> dict[str, int]:
        """The counters as JSON has them (the former dict, same keys in the same order)."""
        return asdict(self)


def first_batch_sizes(model: Classifier, dataset: Dataset, device: torch.device, batch_size: int | str,
                      memory_mb: int) -> tuple[dict[str, int], int | None]:
    """Each stage's first batch size, and the batch cap of attacks drawing from torch's RNG per batch.

    With ``batch_size="auto"``: on CPU 16 for codecs and for the model the largest power of two its
    activations fit in half the budget (at most :data:`CPU_CAP`); 256 on CUDA. The cap (None: none) keeps such
    attacks (Square, AutoAttack) on CPU at the former batch, so their results stay those recorded before
    the model's batch grew.
    """
    n = len(dataset.labels)
    start = min(AUTO_BATCH.get(device.type, 16), n) if batch_size == "auto" else int(batch_size)
    start = max(1, start)
    sizes = dict.fromkeys(STAGES, start)
    if batch_size == "auto" and device.type == "cpu":
        # The model's own batch for attacks and predictions; codecs keep theirs (same bytes as before).
        fit = cpu_batch(model, dataset.pixels(0, 1)[0], n, (memory_mb << 20) // 2)
        sizes.update(attack=fit, predict=fit)
    cap = start if batch_size == "auto" and device.type == "cpu" else None
    return sizes, cap


class Batches:
    """Runs work in batches of each stage's size on ``device``; counts batches and seconds, backs off on OOM.

    Args:
        device: where the work runs (CUDA out-of-memory back-off only there).
        batch_sizes: the first batch size of each stage (:data:`STAGES`); halved on out-of-memory.
        progress: called as ``progress(stage, done, total)`` after every batch.
    """

    def __init__(self, device: torch.device, batch_sizes: dict[str, int], progress: ProgressFn | None = None) -> None:
        self.device = device
        self.batch_sizes = batch_sizes
        self.progress = progress
        #: Batches run per stage, the probes' apart, and images attacked.
        self.counters = Counters()
        #: Seconds spent per stage (attack, codec, predict) and on probes, for benchmarks and the progress line.
        self.seconds = dict.fromkeys((*STAGES, "probe"), 0.0)
        #: Image passes done and their seconds, per kind of pass (probes' included): the measured rates the time
        #: left is estimated from (``attack``: forward and backward; ``query``: a gradient-free attack's forward).
        self.passes: dict[str, float] = {}
        self.pass_seconds: dict[str, float] = {}
        self._probe_depth = 0

    @property
    def in_probe(self) -> bool:
        """Whether the work now running is a soundness probe's (inside :meth:`probing`)."""
        return bool(self._probe_depth)

    def batched(self, stage: str, n: int, fn: Callable[[int, int], object], *, label: str | None = None,
                cap: int | None = None, kind: str | None = None, per_image: float = 1) -> list:
        """``fn(start, stop)`` over ``range(n)`` in batches of the stage's size, at most ``cap``.

        ``label`` names the stage in progress (as a soundness probe's inside :meth:`probing`); each image counts
        ``per_image`` passes of ``kind`` (default: the stage), e.g. an attack's steps.

        On CUDA out-of-memory the failed batch is halved and the run carries on
        from it: finished batches are kept, later batches use the smaller size.
        """
        outs, start, began = [], 0, time.perf_counter()
        mark = began
        try:
            while start < n:
                stop = min(n, start + min(self.batch_sizes[stage], cap or n))
                try:
                    outs.append(fn(start, stop))
                except Exception as exc:  # noqa: BLE001  (re-raised below unless it is an OOM)
                    if not _is_oom(exc):
                        raise
                    oom = True
                else:
                    oom = False
                if oom:  # outside the except block: the traceback no longer pins the batch's tensors
                    self._halve(stage, stop - start)
                    continue
                now = time.perf_counter()
                self._passed(kind or stage, (stop - start) * per_image, now - mark)
                mark = now
                start = stop
                if self.progress is not None:
                    shown = label or stage
                    self.progress(f"soundness probe: {shown}" if self._probe_depth else shown, start, n)
        finally:
            self.seconds["probe" if self._probe_depth else stage] += time.perf_counter() - began
        return outs

    def _passed(self, kind: str, passes: float, seconds: float) -> None:
        """Count a finished batch's passes and seconds (an out-of-memory retry's included)."""
        self.passes[kind] = self.passes.get(kind, 0.0) + passes
        self.pass_seconds[kind] = self.pass_seconds.get(kind, 0.0) + seconds

    @contextmanager
    def probing(self) -> Iterator[None]:
        """Count the work inside as soundness probes, apart from the cells' own."""
        self._probe_depth += 1
        try:
            yield
        finally:
            self._probe_depth -= 1

    def count(self, stage: str, images: int = 0) -> None:
        """One batch of ``stage`` done (over ``images`` images, for attacks)."""
        if self._probe_depth:
            self.counters.probe_batches += 1
            return
        self.counters.count(stage, images)

    def _halve(self, stage: str, failed: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if failed <= 1:
            raise HacError("CUDA out of memory even at batch size 1; use a smaller model or --hac-device=cpu")
        self.batch_sizes[stage] = failed // 2
        self.counters.oom_backoffs += 1
        warnings.warn(f"pytest-hac: CUDA out of memory in {stage}; batch size halved to {failed // 2}", stacklevel=3)


def _is_oom(exc: BaseException) -> bool:
    # Some kernels (cuDNN, cuBLAS) report exhausted memory as a plain RuntimeError.
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


__all__ = ["CPU_CAP", "CPU_FLOOR", "activation_bytes", "cpu_batch"]


#: Past this a CPU batch gets slower per image, not faster (measured on 2 cores, forward and backward per image:
#: tiny-cnn at 32 px 305 us at 128, 261 us at 256, 325 us at 512, 475 us at 1,000; scripts/bench_cpu_batch.py,
#: a ResNet-20 on 1,000 images: 16.3 s at 64, 17.9 s at 256, 24.4 s at 1,024).
CPU_CAP = 256


#: The former constant: a model that fits no more keeps it (the budget is a guide, not a wall, on CPU).
CPU_FLOOR = 16


#: An attack keeps each layer's output for the backward pass and its gradient: about 3x the forward.
ATTACK_FACTOR = 3


def activation_bytes(model: nn.Module, image: Tensor) -> int:
    """Bytes of every leaf module's output for one image (one forward pass, no gradient)."""
    total = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, Tensor):
            total += output.numel() * output.element_size()

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(image[None])
    finally:
        for hook in hooks:
            hook.remove()
    return max(total, image.numel() * image.element_size())


def cpu_batch(model: nn.Module, image: Tensor, n: int, budget_bytes: int) -> int:
    """The largest power of two (at least :data:`CPU_FLOOR`, at most :data:`CPU_CAP` and ``n``) that fits.

    A model whose activations cannot be measured (TorchScript modules take no hooks) keeps the floor.
    """
    try:
        per_image = ATTACK_FACTOR * activation_bytes(model, image)
    except RuntimeError:
        return max(1, min(CPU_FLOOR, n))
    fits = max(1, budget_bytes // per_image)
    batch = CPU_FLOOR
    while batch * 2 <= min(fits, CPU_CAP):
        batch *= 2
    return max(1, min(batch, n))
