"""Every pass over images on the device: attacks, real codec round trips, predictions, input gradients.

Each runs batch by batch through :class:`.batches.Batches` (counted, timed, halved on CUDA
out-of-memory), seeded by :class:`Seeds`, and returns its results on the CPU. What is
kept or reused is the caller's business (:mod:`.engine`).

Seeds: one per image for random starts, one per batch for everything else, all from ``--hac-seed``.

An image's random start is drawn from a seed of (seed, attack with restart, image id), so its
adversarial example does not depend on its batch, its chunk, the order cells run in or an
out-of-memory back-off. Each batch also runs inside ``torch.random.fork_rng`` with a seed of its
key and images, for randomness beyond the start (Square, AutoAttack's later parts, stochastic
codecs); the rest of the run sees the global RNG untouched.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...attacks import AttackSpec, build_attack
from ...attacks.budget import check_budget
from ...attacks.gradients import masked
from ...codecs import Codec, get_codec
from ...data import Dataset
from ...errors import HacError
from ...models import Classifier, check_logits
from ..cells.defense import Defense
from .batches import Batches
from .cost import estimate_attack, worth_estimating
from .keys import AdvKey, CodecRef, GradientKey, Key
from .targets import Defended


class Passes:
    """The passes of one model over one data set on ``device``, and the codecs they use (built once).

    Args:
        model: the classifier, already on ``device`` and in eval mode.
        dataset: the evaluation images, 8-bit.
        batches: the batch runner (batch sizes, counters, seconds, progress).
        seeds: per-image and per-batch seeds.
        amp: classify under bf16 autocast (not when attacking).
        weights_dir, offline: where learned codecs' checkpoints are, and whether to never download them.
        batchwise_rng_cap: the batch cap of attacks without per-image seeds (see
            :func:`.batches.first_batch_sizes`); None: no cap.
    """

    def __init__(self, model: Classifier, dataset: Dataset, batches: Batches, seeds: Seeds, *, amp: bool,
                 weights_dir, offline: bool, batchwise_rng_cap: int | None) -> None:
        self.model = model
        self.dataset = dataset
        self.labels = dataset.labels
        self.device = batches.device
        self.batches = batches
        self.seeds = seeds
        self.amp = amp
        self.weights_dir = weights_dir
        self.offline = offline
        self._batchwise_rng_cap = batchwise_rng_cap
        self._codecs: dict[CodecRef, Codec] = {}

    def codec(self, name: str, quality: int | None) -> Codec:
        """The codec ``name`` at ``quality`` on the engine's device, built once."""
        ref = CodecRef(name, quality)
        if ref not in self._codecs:
            self._codecs[ref] = get_codec(name, quality, device=self.device, weights_dir=self.weights_dir,
                                          offline=self.offline)
        return self._codecs[ref]

    def target(self, path: str, defense: Defense) -> nn.Module:
        """The module an attack on ``path`` sees: the bare model or the model behind ``defense``."""
        if path == "bare":
            return self.model
        return Defended(self.model, self.codec(defense.codec, defense.quality), defense.rounds, path)

    def attack(self, target: nn.Module, spec: AttackSpec, key: AdvKey, a: int, b: int, *,
               index: Tensor | None = None, clean_gradients: list[Tensor] | None = None) -> Tensor:
        """Run ``spec`` against ``target`` on images ``a:b`` (or the images at positions ``index``), batch by batch.

        Random starts are drawn per image (:meth:`Seeds.image_seeds`); each batch also runs under
        its own seed inside ``fork_rng``, and must come back inside [0, 1] and the eps ball. ``index`` is for
        attacks whose result on an image does not depend on its batch (``AttackInfo.per_image``): the cascade's
        survivors. ``clean_gradients`` receives, batch by batch, the zero-gradient flags of an attack whose first
        gradient is at the clean images (FGSM, BIM: ``clean_gradient_bad``), for the zero-gradient probe.
        """
        attack = build_attack(target, spec)
        if key.until_broken and hasattr(attack, "stop"):  # attacks whose steps are ours (torchattacks_fixes)
            attack.stop = lambda x, y, logits: self.broken(target, x, y, logits)
        label = "attack" if index is not None else self._announce(target, spec, key, a, b)
        per_image = spec.info.per_image_seeds  # declared at registration (AttackInfo), set before each batch
        positions = torch.arange(a, b) if index is None else index

        def run(start: int, stop: int) -> Tensor:
            at = positions[start:stop]
            first, last = int(at[0]), int(at[-1]) + 1
            contiguous = last - first == len(at)
            xb = (self.dataset.pixels(first, last) if contiguous else
                  self.dataset.images[at].float().div(255)).to(self.device)
            yb = self.labels[at].to(self.device)
            if per_image:
                attack.image_seeds = self.seeds.image_seeds(key, first, last) if contiguous else \
                    self.seeds.image_seeds_at(key, at.tolist())
            with self.seeds.seeded(key, first, last):
                adv = attack(xb, yb).detach()
            check_budget(adv, xb, spec)
            bad = getattr(attack, "clean_gradient_bad", None)
            if clean_gradients is not None and bad is not None:
                clean_gradients.append(bad)
            self.batches.count("attack", stop - start)
            return adv.cpu()

        cap = None if per_image else self._batchwise_rng_cap
        kind, passes = ("query", spec.steps) if spec.info.gradient_free else ("attack", spec.steps * spec.eot)
        out = torch.cat(self.batches.batched("attack", len(positions), run, label=label, cap=cap,
                                             kind=f"{kind}:{key.path}", per_image=passes))
        if self.model.training:
            raise HacError(f"the attack on {self.model.name!r} left it in training mode; results would be wrong")
        return out

    def broken(self, target: nn.Module, x: Tensor, labels: Tensor, logits: Tensor) -> Tensor:
        """Per image: does the pipeline ``target`` stands for (its real codec rounds, then the classifier) get ``x``
        wrong? The attack's ``logits`` at ``x`` name the candidates; only they pass the real pipeline (a stand-in
        or a batch may misjudge an image the real pipeline gets right). Part of the attack's step, inside its batch:
        counted in its time, not as batches of its own."""
        wrong = logits.argmax(1) != labels
        at = wrong.nonzero().flatten()
        if not len(at):
            return wrong
        z = x[at].detach()
        if isinstance(target, Defended):
            with torch.inference_mode():
                for _ in range(target.rounds):  # the decoded image, through the verified fast path where one is
                    z = target.codec.attack_decode(z)
        wrong[at] = self._classify(z) != labels[at]
        return wrong

    def _announce(self, target: nn.Module, spec: AttackSpec, key: AdvKey, a: int, b: int) -> str:
        """Before the first chunk of an attack through a defense: its planned codec passes and an estimate."""
        batch = self.batches.batch_sizes["attack"]
        if (not isinstance(target, Defended) or a or self.batches.in_probe
                or not worth_estimating(spec, key.n, key.rounds, batch)):
            return "attack"
        stop = a + min(batch, b - a)
        plan = estimate_attack(target, spec, key.n, key.rounds, self.dataset.pixels(a, stop).to(self.device),
                           self.labels[a:stop].to(self.device))
        if not plan.worth_saying:
            return "attack"
        label = f"attack ({plan.text()})"
        if self.batches.progress is not None:
            self.batches.progress(label, 0, b - a)
        return label

    def roundtrip(self, codec: Codec, x: Tensor, *, key: Key | None = None) -> tuple[Tensor, Tensor]:
        """One pass of the real ``codec`` over ``x``, batched: reconstructions and bits per pixel.

        With ``key``, each batch is seeded from it (stochastic codecs give reproducible outputs).
        """

        def run(start: int, stop: int) -> tuple[Tensor, Tensor]:
            seeded = self.seeds.seeded(key, start, stop) if key is not None else nullcontext()
            with seeded, torch.inference_mode():
                x_hat, bpp = codec.roundtrip(x[start:stop].to(self.device))
            self.batches.count("codec")
            return x_hat.cpu(), bpp.cpu()

        outs = self.batches.batched("codec", len(x), run)
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def predict(self, images: Tensor) -> Tensor:
        """The classifier's predicted class of each image, batched, under inference mode (bf16 with ``amp``)."""

        def run(start: int, stop: int) -> Tensor:
            predicted = self._classify(images[start:stop].to(self.device))
            self.batches.count("predict")
            return predicted.cpu()

        return torch.cat(self.batches.batched("predict", len(images), run))

    def _classify(self, x: Tensor) -> Tensor:
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
        with torch.inference_mode(), autocast:
            logits = self.model(x).float()
        check_logits(self.model, logits)
        return logits.argmax(1)

    def stand_in(self, codec: Codec, rounds: int, n: int) -> tuple[Tensor, Tensor]:
        """Per image of the first ``n``, through ``rounds`` rounds of each: the RMS distance of the codec's stand-in
        (``approximate``) from its decoded image, relative to the decoded image's RMS distance from the input (at
        least one 8-bit level), and whether the classifier's predicted class differs between the two. Counted as
        its real codec rounds and two predictions per image (probes, inside :meth:`.batches.Batches.probing`);
        ``n`` is a probe's few images, so both images are kept for the predictions."""

        def rms(t: Tensor) -> Tensor:
            return t.double().pow(2).flatten(1).mean(1).sqrt()

        def run(start: int, stop: int) -> tuple[Tensor, Tensor, Tensor]:
            x = self.dataset.pixels(start, stop).to(self.device)
            real = approx = x
            with torch.no_grad():
                for _ in range(rounds):
                    real = codec.roundtrip(real)[0]
                    approx = codec.approximate(approx)
                    self.batches.count("codec")
                relative = rms(approx - real) / rms(real - x).clamp_min(1 / 255)
            return relative.cpu(), real.cpu(), approx.float().cpu()

        outs = self.batches.batched("codec", n, run, per_image=rounds)
        relative, real, approx = (torch.cat([o[i] for o in outs]) for i in range(3))
        return relative, self.predict(approx) != self.predict(real)

    def zero_gradients(self, target: nn.Module, key: GradientKey) -> Tensor:
        """Per image of ``key.start:key.n``: is the input gradient of the cross-entropy of ``target`` at the clean
        image all zero or not finite? Counted as attack batches (probes, inside :meth:`.batches.Batches.probing`)."""

        def run(a: int, b: int) -> Tensor:
            start, stop = key.start + a, key.start + b
            xb = self.dataset.pixels(start, stop).to(self.device).requires_grad_(True)
            yb = self.labels[start:stop].to(self.device)
            with self.seeds.seeded(key, start, stop), torch.enable_grad():
                loss = F.cross_entropy(target(xb), yb, reduction="sum")  # sum: each image's gradient is its own
                (grad,) = torch.autograd.grad(loss, xb)
            self.batches.count("attack")
            return masked(grad).cpu()

        return torch.cat(self.batches.batched("attack", key.n - key.start, run, kind=f"attack:{key.path}"))


class Seeds:
    """The seeds of one engine: ``seed`` (``--hac-seed``) and the data set's image ids, on ``device``."""

    def __init__(self, seed: int, dataset: Dataset, device: torch.device) -> None:
        self.seed = seed
        self.dataset = dataset
        self.device = device

    def image_seeds(self, key: AdvKey, start: int, stop: int) -> list[int]:
        """One seed per image of ``start:stop`` from (seed, attack with restart, image id)."""
        return self.image_seeds_at(key, range(start, stop))

    def image_seeds_at(self, key: AdvKey, positions) -> list[int]:
        """One seed per image at ``positions`` (indices into the data set), as :meth:`image_seeds`."""
        ids = self.dataset.ids
        return [seed_of(f"{self.seed}|{key.run}|{key.path}|{key.codec}|{key.rounds}|{ids[i]}") for i in positions]

    @contextmanager
    def seeded(self, key: Key, start: int, stop: int) -> Iterator[None]:
        """Seed torch for one batch from (seed, ``key``, its images); the caller's RNG state comes back after."""
        devices = list(range(torch.cuda.device_count())) if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            seed = seed_of(f"{self.seed}|{key.parts()}|{start}:{stop}")
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed_all(seed)
            yield


def seed_of(text: str) -> int:
    """A 32-bit seed from ``text`` (its SHA-256), the same on every platform and run."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
