"""Evaluation: every distinct piece of work once, batched, on the device.

What is reused (typed keys in :mod:`.keys`, stored in :class:`~pytest_hac.io.cache.Store`):

* oblivious adversarial examples per attack and restart, shared by every defense;
* codec outputs per (source images, codec, quality, round), round k computed
  from round k-1;
* logits per (source images, defense), so no image batch is classified twice;
* the soundness probes (:mod:`.probes`), per defense and attack;
* with a cache directory, all of the above across sessions.

What a verdict rests on:

* whitebox and adaptive attacks use the codec's ``approximate`` for gradients only
  (:mod:`.defended`); every cell is evaluated through the real codec;
* ``restarts=R`` runs R seeded restarts; an image counts as correct only if the
  evaluated pipeline gets it right on every restart (worst case per image);
* attacks are checked, not corrected: an output outside [0, 1] or outside the eps ball
  is a :class:`~pytest_hac.errors.HacError`, never silently clipped into a weaker attack;
* each attack batch runs under its own seed from (``--hac-seed``, attack, images) inside
  ``torch.random.fork_rng``: the rest of the run sees the global RNG untouched.

``Engine(model, dataset).evaluate(case)`` works without pytest.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from functools import cached_property

import torch
from torch import Tensor, nn

from ..attacks import AttackSpec, build_attack
from ..attacks.budget import check_budget
from ..codecs import Codec, get_codec
from ..data import Dataset
from ..errors import HacError
from ..io.cache import Store, codec_fingerprint, data_fingerprint, model_fingerprint
from ..models import Classifier, check_logits
from ..registry import ATTACKS
from . import probes
from .cases import Case
from .defended import Defended, gradient_path
from .judged import Judged, worst_of
from .keys import AdvKey, CleanKey, CodecRef, Key, LogitsKey, RoundKey, SourceKey, content, model_free
from .result import Result

#: Stages with their own batch size: an attack needs several times the memory of a forward pass.
STAGES = ("attack", "codec", "predict")
#: First batch size with ``batch_size="auto"``: CUDA starts large and halves on out-of-memory.
AUTO_BATCH = {"cuda": 256, "cpu": 16}
#: What soundness findings do (``--hac-soundness``); "thorough" adds the steps_2x probe to every cell.
SOUNDNESS_MODES = ("fail", "warn", "thorough")

#: ``progress(stage, images_done, images_total)``, called after every batch.
ProgressFn = Callable[[str, int, int], None]


class Engine:
    """Evaluates cases for one model on one dataset, reusing all shared work.

    Args:
        model: the classifier (inputs in [0, 1]); it must not change while the engine lives.
        dataset: the evaluation images (already subset).
        device: where models, attacks and codecs run.
        batch_size: images per batch, or "auto" (16 on CPU; 256 on CUDA). Either way a
            CUDA out-of-memory error halves the batch size of that stage and the run
            carries on from the batch that failed. Random-start attacks (PGD) draw their
            start per batch, so their numbers depend on batch boundaries (a back-off
            included); deterministic attacks, codecs and predictions do not.
        seed: seeds every attack batch (gradient-free ones included) and every codec batch
            from (seed, attack key, images in the batch), so results do not depend on the
            order cells run in (xdist, shards, ``-k``); the global RNG is left as found.
        amp: run the classifier under bf16 autocast when evaluating (not when attacking).
        weights_dir: local checkpoints of learned codecs.
        store: the in-memory LRU (with an optional disk layer) for reusable tensors.
        progress: called as ``progress(stage, done, total)`` after every batch.
        soundness: ``"fail"``, ``"warn"`` or ``"thorough"``; the engine measures the same
            diagnostics for the first two, and with ``"thorough"`` also reruns each attacked
            cell at twice its steps (``diagnostics["steps_2x"]``).
        offline: never download codec weights (missing ones are an error that names the file).
    """

    def __init__(
        self,
        model: Classifier,
        dataset: Dataset,
        *,
        device: torch.device | str = "cpu",
        batch_size: int | str = "auto",
        seed: int = 0,
        amp: bool = False,
        weights_dir=None,
        store: Store | None = None,
        progress: ProgressFn | None = None,
        soundness: str = "fail",
        offline: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dataset = dataset
        self.images = dataset.images
        self.labels = dataset.labels
        if model.label_space != "index" and dataset.label_space not in ("index", model.label_space):
            raise HacError(
                f"model {model.name!r} predicts {model.label_space} classes but data set {dataset.name!r} is labelled "
                f"with {dataset.label_space} classes; pick matching --hac-model and --hac-data (see --hac-list)"
            )
        if int(self.labels.max()) >= model.num_classes:
            raise HacError(f"data set {dataset.name!r} has label {int(self.labels.max())} but model {model.name!r} "
                           f"has only {model.num_classes} classes; pick a model whose logits cover the data's classes, "
                           f"or a data set labelled for this model (see --hac-list)")
        if soundness not in SOUNDNESS_MODES:
            raise HacError(f"soundness must be one of {', '.join(SOUNDNESS_MODES)}; got {soundness!r}")
        start = min(AUTO_BATCH.get(self.device.type, 16), len(self.labels)) if batch_size == "auto" else int(batch_size)
        self.batch_sizes = dict.fromkeys(STAGES, max(1, start))
        self.seed = seed
        self.amp = amp
        self.weights_dir = weights_dir
        self.store = store if store is not None else Store()
        self.progress = progress
        self.soundness = soundness
        self.offline = offline
        self._codecs: dict[CodecRef, Codec] = {}
        self._codec_fingerprints: dict[CodecRef, str] = {}
        self._probe_depth = 0
        #: Batches run per stage; the soundness probes' batches (of any stage) count apart.
        self.counters = {"attack_batches": 0, "codec_batches": 0, "predict_batches": 0, "probe_batches": 0,
                         "oom_backoffs": 0}
        #: Seconds spent per stage (attack, codec, predict) and on probes, for benchmarks and the progress line.
        self.seconds = dict.fromkeys((*STAGES, "probe"), 0.0)

    # --- cells ------------------------------------------------------------------------------------

    def evaluate(self, case: Case) -> Result:
        """Accuracy of ``model`` on the dataset under ``case``, with bpp, PSNR, diagnostics and time spent."""
        if case.parts:
            return self._worst(case)
        start = time.perf_counter()
        spec = case.attack if case.threat != "clean" else None
        if spec is not None:
            self._check_eot(case)
        sources = self.sources(case)
        judged = [self.judge(case.codec, case.quality, case.rounds, key, src) for key, src in sources]
        correct, images, bpp = worst_of(judged)
        psnr = None if case.codec == "identity" else mean_psnr(images, self.images)
        bpp_mean = None if bpp is None or bool(torch.isnan(bpp).all()) else float(bpp.mean())
        median_l2 = None
        if spec is not None and spec.min_norm:
            # The usual count for minimum-norm attacks: an image the pipeline still gets right
            # needs an infinite perturbation, so the median is infinite (None) unless most are fooled.
            norms = (sources[0][1] - self.images).flatten(1).double().norm(dim=1)
            median = float(norms.masked_fill(correct, math.inf).median())
            median_l2 = median if math.isfinite(median) else None
        return Result.from_correct(
            correct.tolist(),
            case_id=case.id, codec=case.codec, quality=case.quality, rounds=case.rounds, threat=case.threat,
            attack=None if spec is None else spec.name, eps=None if spec is None else spec.eps,
            bpp=bpp_mean, psnr=psnr, seconds=time.perf_counter() - start, ids=list(self.dataset.ids),
            threshold=case.threshold, attack_params={} if spec is None else spec.as_dict(), median_l2=median_l2,
            diagnostics={} if spec is None else probes.measure(self, case, judged),
        )

    def _worst(self, case: Case) -> Result:
        """Per image, right only if right in every part (clean and every attack): robust accuracy."""
        start = time.perf_counter()
        parts = [self.evaluate(p) for p in case.parts]  # reused: attacks, codec outputs and logits are stored
        correct = [all(flags) for flags in zip(*(r.correct for r in parts))]
        clean = next((r for r in parts if r.threat == "clean"), parts[0])
        return Result.from_correct(
            correct, case_id=case.id, codec=case.codec, quality=case.quality, rounds=case.rounds, threat=case.threat,
            attack=None, eps=None, bpp=clean.bpp, psnr=clean.psnr, seconds=time.perf_counter() - start,
            ids=list(self.dataset.ids), threshold=case.threshold, diagnostics={"cells": [r.case_id for r in parts]})

    def sources(self, case: Case) -> list[tuple[SourceKey, Tensor]]:
        """The images that reach the defense: clean, or one adversarial set per restart, with their store keys."""
        if case.threat == "clean" or case.attack is None:
            return [(CleanKey(), self.images)]
        path = gradient_path(case.threat, case.codec)
        return [self.adversarial(path, case.codec, case.quality, case.rounds, case.attack, restart=i)
                for i in range(case.attack.restarts)]

    # --- the work, each piece once ------------------------------------------------------------------

    def codec(self, name: str, quality: int | None) -> Codec:
        """The codec ``name`` at ``quality`` on the engine's device, built once."""
        ref = CodecRef(name, quality)
        if ref not in self._codecs:
            self._codecs[ref] = get_codec(name, quality, device=self.device, weights_dir=self.weights_dir,
                                          offline=self.offline)
        return self._codecs[ref]

    def adversarial(self, path: str, codec: str, quality: int | None, rounds: int, spec: AttackSpec, *,
                    restart: int = 0, n: int | None = None) -> tuple[AdvKey, Tensor]:
        """Restart ``restart`` of ``spec`` through gradient ``path`` on the first ``n`` images, computed once.

        Restart 0 is the attack with ``restarts=1``: more restarts only add sets.
        """
        n = len(self.labels) if n is None else n
        once = replace(spec, restarts=1)
        ref, rounds = (None, 1) if path == "bare" else (CodecRef(codec, quality), rounds)
        key = AdvKey(path, ref, rounds, n, spec.name, once.key + (f",restart={restart}" if restart else ""))
        address = self.address(key)
        cached = self.store.get(key, address)
        if cached is None:
            cached = (self.attack(self.target(path, codec, quality, rounds), once, key, n=n),)
            self.store.put(key, cached, address)
        return key, cached[0]

    def target(self, path: str, codec: str, quality: int | None, rounds: int) -> nn.Module:
        """The module an attack on ``path`` sees: the bare model or the model behind the defense."""
        if path == "bare":
            return self.model
        return Defended(self.model, self.codec(codec, quality), rounds, path)

    def attack(self, target: nn.Module, spec: AttackSpec, key: AdvKey, *, n: int | None = None) -> Tensor:
        """Run ``spec`` against ``target`` on the first ``n`` images, batch by batch.

        Each batch is seeded from (seed, ``key``, its images) under ``fork_rng`` and must
        come back inside [0, 1] and the eps ball (:func:`~pytest_hac.attacks.budget.check_budget`).
        """
        n = len(self.labels) if n is None else n
        attack = build_attack(target, spec)

        def run(start: int, stop: int) -> Tensor:
            xb, yb = self.images[start:stop].to(self.device), self.labels[start:stop].to(self.device)
            with self.seeded(key, start, stop):
                adv = attack(xb, yb).detach()
            check_budget(adv, xb, spec)
            self.count("attack")
            return adv.cpu()

        out = torch.cat(self.batched("attack", n, run))
        if self.model.training:
            raise HacError(f"the attack on {self.model.name!r} left it in training mode; results would be wrong")
        return out

    def judge(self, codec: str, quality: int | None, rounds: int, key: SourceKey, source: Tensor) -> Judged:
        """``source`` (stored under ``key``) through the real defense and the classifier."""
        defended, bpp = self.defend(key, source, codec, quality, rounds)
        ref = None if codec == "identity" else CodecRef(codec, quality)
        logits = self.logits(LogitsKey(key, ref, rounds if ref else 1, self.amp), defended)
        return Judged(logits.argmax(1) == self.labels[: len(source)], defended, bpp)

    def defend(self, source_key: SourceKey, source: Tensor, codec_name: str, quality: int | None,
               rounds: int) -> tuple[Tensor, Tensor | None]:
        """``rounds`` passes of the real codec over ``source``; round k is built from round k-1.

        Returns the reconstructions and bits per pixel per image (None for identity).
        """
        if codec_name == "identity":
            return source, None
        ref = CodecRef(codec_name, quality)
        keys = [RoundKey(source_key, ref, k) for k in range(rounds + 1)]
        done, x, bpp = 0, source, None
        for k in range(rounds, 0, -1):  # the latest round already computed, in memory or on disk
            hit = self.store.get(keys[k], self.address(keys[k]))
            if hit is not None:
                done, (x, bpp) = k, hit
                break
        for k in range(done + 1, rounds + 1):
            x, bpp = self.roundtrip(self.codec(codec_name, quality), x, key=keys[k])
            self.store.put(keys[k], (x, bpp), self.address(keys[k]))
        return x, bpp

    def roundtrip(self, codec: Codec, x: Tensor, *, key: Key | None = None) -> tuple[Tensor, Tensor]:
        """One pass of the real ``codec`` over ``x``, batched: reconstructions and bits per pixel.

        With ``key``, each batch is seeded from it (stochastic codecs give reproducible outputs).
        """

        def run(start: int, stop: int) -> tuple[Tensor, Tensor]:
            seeded = self.seeded(key, start, stop) if key is not None else nullcontext()
            with seeded, torch.inference_mode():
                x_hat, bpp = codec.roundtrip(x[start:stop].to(self.device))
            self.count("codec")
            return x_hat.cpu(), bpp.cpu()

        outs = self.batched("codec", len(x), run)
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def logits(self, key: LogitsKey, images: Tensor) -> Tensor:
        """Logits of ``images`` (stored under ``key``): the same images are never classified twice."""
        address = self.address(key)
        hit = self.store.get(key, address)
        if hit is not None:
            return hit[0]

        def run(start: int, stop: int) -> Tensor:
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
            with torch.inference_mode(), autocast:
                logits = self.model(images[start:stop].to(self.device)).float()
            check_logits(self.model, logits)
            self.count("predict")
            return logits.cpu()

        out = torch.cat(self.batched("predict", len(images), run))
        self.store.put(key, (out,), address)
        return out

    # --- batches, seeds, counts ---------------------------------------------------------------------

    def batched(self, stage: str, n: int, fn: Callable[[int, int], object]) -> list:
        """``fn(start, stop)`` over ``range(n)`` in batches of the stage's size.

        On CUDA out-of-memory the failed batch is halved and the run carries on
        from it: finished batches are kept, later batches use the smaller size.
        """
        outs, start, began = [], 0, time.perf_counter()
        try:
            while start < n:
                stop = min(n, start + self.batch_sizes[stage])
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
                start = stop
                if self.progress is not None:
                    self.progress(stage, start, n)
        finally:
            self.seconds["probe" if self._probe_depth else stage] += time.perf_counter() - began
        return outs

    @contextmanager
    def seeded(self, key: Key, start: int, stop: int) -> Iterator[None]:
        """Seed torch for one batch from (seed, ``key``, its images); the caller's RNG state comes back after."""
        devices = list(range(torch.cuda.device_count())) if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            seed = _seed(self.seed, key, start, stop)
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed_all(seed)
            yield

    @contextmanager
    def probing(self) -> Iterator[None]:
        """Count the work inside as soundness probes, apart from the cells' own."""
        self._probe_depth += 1
        try:
            yield
        finally:
            self._probe_depth -= 1

    def count(self, stage: str) -> None:
        self.counters["probe_batches" if self._probe_depth else f"{stage}_batches"] += 1

    def _check_eot(self, case: Case) -> None:
        """EOT over a deterministic defense repeats one gradient: refuse it, naming codec, attack and parameter."""
        spec = case.attack
        if spec.eot == 1:
            return
        if gradient_path(case.threat, case.codec) == "bare":
            raise HacError(f"eot={spec.eot} (attack {spec.name!r}) averages gradients over a random defense, but the "
                           f"{case.threat} cell {case.id or case.defense} attacks the bare, deterministic model; "
                           f"drop eot")
        if not getattr(self.codec(case.codec, case.quality), "stochastic", False):
            raise HacError(f"eot={spec.eot} (attack {spec.name!r}) averages gradients over a random defense, but codec "
                           f"{case.codec!r} is deterministic (its stochastic flag is False): every sample gives the "
                           f"same gradient at {spec.eot}x the cost; drop eot, or mark a codec that really is random "
                           f"with stochastic = True")

    def _halve(self, stage: str, failed: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if failed <= 1:
            raise HacError("CUDA out of memory even at batch size 1; use a smaller model or --hac-device=cpu")
        self.batch_sizes[stage] = failed // 2
        self.counters["oom_backoffs"] += 1
        warnings.warn(f"pytest-hac: CUDA out of memory in {stage}; batch size halved to {failed // 2}", stacklevel=3)

    # --- disk addresses -----------------------------------------------------------------------------

    def address(self, key: Key) -> str | None:
        """The disk address of a store key: the key plus the model, data, seed and codec weights it stands for."""
        disk = self.store.disk
        if disk is None:
            return None
        parts = content(key, self._codec_fingerprint)
        if isinstance(key, AdvKey):  # a user's attack registered under a built-in name is another attack
            parts += (_factory_id(ATTACKS.entry(key.attack).factory),)
        owner = None if model_free(key) else (self._model_fingerprint, self.seed)
        return disk.address(parts, owner, self._data_fingerprint, self.device.type)

    def _codec_fingerprint(self, ref: CodecRef) -> str:
        if ref not in self._codec_fingerprints:
            self._codec_fingerprints[ref] = codec_fingerprint(self.codec(ref.name, ref.quality))
        return self._codec_fingerprints[ref]

    @cached_property
    def _model_fingerprint(self) -> str:
        return model_fingerprint(self.model)

    @cached_property
    def _data_fingerprint(self) -> str:
        return data_fingerprint(self.dataset.ids, self.images, self.labels)


def _factory_id(factory: object) -> str:
    return f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', type(factory).__qualname__)}"


def _is_oom(exc: BaseException) -> bool:
    # Some kernels (cuDNN, cuBLAS) report exhausted memory as a plain RuntimeError.
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _seed(seed: int, key: Key, start: int, stop: int) -> int:
    digest = hashlib.sha256(f"{seed}|{key.parts()}|{start}:{stop}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def mean_psnr(x: Tensor, ref: Tensor) -> float:
    """Mean over images of the PSNR (dB, peak 1.0) of ``x`` against ``ref``."""
    mse = (x.double() - ref.double()).pow(2).flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return float(psnr.mean())
