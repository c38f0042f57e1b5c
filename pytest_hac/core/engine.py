"""Evaluation: every distinct piece of work once, batched, on the device.

What is reused (keys in :class:`Store`, content addresses in :mod:`pytest_hac.io.cache`):

* oblivious adversarial examples per attack and restart, shared by every defense;
* codec outputs per (source images, codec, quality, round), round k computed
  from round k-1;
* logits per (source images, defense), so no image batch is classified twice;
* the soundness probes below, per defense and attack;
* with a cache directory, all of the above across sessions.

What a verdict rests on:

* whitebox and adaptive attacks use the codec's ``approximate`` for gradients only;
  every cell is evaluated through the real codec;
* ``restarts=R`` runs R seeded restarts; an image counts as correct only if the
  evaluated pipeline gets it right on every restart (worst case per image);
* attacks are checked, not corrected: an output outside [0, 1] or outside the eps ball
  is a :class:`HacError`, never silently clipped into a weaker attack;
* each attack batch runs under its own seed from (``--hac-seed``, attack, images) inside
  ``torch.random.fork_rng``: the rest of the run sees the global RNG untouched.

``Result.diagnostics`` of an attacked cell (read by :mod:`pytest_hac.core.soundness`):

* ``restarts``: correct count per restart, ``[k_0, ..., k_R-1]``;
* ``zero_gradient``: ``{"images": k, "of": n}``, images whose input gradient of the
  cross-entropy of the attacked module is all zero or not finite (gradient attacks);
* ``large_eps``: ``{"eps": e, "correct": k, "n": m}``, the cell's attack at
  eps 64/255 (L2: 64/255 * sqrt(C*H*W)) through the same gradient path, judged by the
  real pipeline on the first 32 images (whitebox and adaptive, eps-bounded gradient attacks);
* ``undefended_large_eps``: ``{"eps": e, "correct": k, "n": m}``, the cell's attack at
  eps max(eps, 64/255) (L2 scaled likewise) against the bare model on the first 64
  images (eps-bounded gradient attacks);
* ``steps_2x``: ``{"steps": 2s, "correct": [bool, ...]}``, the cell at twice the steps
  (queries for Square), with ``soundness="thorough"`` only.

Probes count in ``counters["probe_batches"]`` and ``seconds["probe"]``, apart from the cells' work.

``Engine(model, dataset).evaluate(case)`` works without pytest.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attacks import AttackSpec, build_attack, make_spec
from ..io.cache import Store, codec_fingerprint, data_fingerprint, model_fingerprint
from .cases import Case
from ..codecs import Codec, get_codec
from ..data import Dataset
from ..errors import HacError
from ..models import Classifier, check_logits
from ..registry import ATTACKS
from .result import Result

#: Threat -> how gradients (or queries) pass through the defense.
GRADIENT_PATH = {"oblivious": "bare", "whitebox": "approximate", "adaptive": "bpda", "query": "real"}
#: Stages with their own batch size: an attack needs several times the memory of a forward pass.
STAGES = ("attack", "codec", "predict")
#: First batch size with ``batch_size="auto"``: CUDA starts large and halves on out-of-memory.
AUTO_BATCH = {"cuda": 256, "cpu": 16}
#: What soundness findings do (``--hac-soundness``); "thorough" adds the steps_2x probe to every cell.
SOUNDNESS_MODES = ("fail", "warn", "thorough")
#: An L-inf budget that breaks every classifier whose gradients carry information (Carlini et al., 2019:
#: "On evaluating adversarial robustness"), on a subset: a probe, not a cell.
LARGE_EPS, LARGE_EPS_IMAGES = 64 / 255, 32
#: A budget at which every undefended classifier is near 0% accurate, whatever its data: a sanity
#: check of model and attack (eval mode, logits, working gradients), so the same large eps as above
#: (small images of simple digits resist 16/255; their usual budget is 0.3 = 77/255).
UNDEFENDED_EPS, UNDEFENDED_IMAGES = LARGE_EPS, 64
#: Float round-off allowed beyond [0, 1] and the eps ball (relative to eps for L2).
BALL_TOLERANCE = 1e-5

#: ``progress(stage, images_done, images_total)``, called after every batch.
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CodecRef:
    """A codec at a quality inside a store key; the disk layer swaps it for the codec's fingerprint."""

    name: str
    quality: int | None


@dataclass(frozen=True)
class Judged:
    """Source images through the real defense: per-image correctness, what the classifier saw, bpp."""

    correct: Tensor
    images: Tensor
    bpp: Tensor | None


class Defended(nn.Module):
    """``classifier(defense^rounds(x))`` with the defense in one of three gradient modes.

    * ``approximate``: the codec's differentiable stand-in (white-box);
    * ``bpda``: the real codec forward, the stand-in's gradient backward (adaptive);
    * ``real``: the real codec, no gradient (queries only).
    """

    def __init__(self, classifier: Classifier, codec: Codec, rounds: int, mode: str) -> None:
        super().__init__()
        self.classifier = classifier  # registered, so torchattacks finds a device from its parameters
        self.codec = codec
        self.rounds = rounds
        self.mode = mode
        # torchattacks restores the mode it found: a module left in training mode would
        # switch the classifier's BatchNorm to batch statistics for good.
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        for _ in range(self.rounds):
            x = self._defend(x)
        return self.classifier(x)

    def _defend(self, x: Tensor) -> Tensor:
        if self.mode == "approximate":
            return self.codec.approximate(x)
        real = self.codec.roundtrip(x.detach())[0].clone()  # clone: leave inference mode's tensors behind
        if self.mode == "real":
            return real
        approx = self.codec.approximate(x)
        return approx + (real - approx).detach()


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
        store: the in-memory LRU (with an optional disk layer) for reusable tensors.
        progress: called as ``progress(stage, done, total)`` after every batch.
        offline: never download codec weights (missing ones are an error that names the file).
        soundness: ``"fail"``, ``"warn"`` or ``"thorough"``; the engine measures the same
            diagnostics for the first two, and with ``"thorough"`` also reruns each attacked
            cell at twice its steps (``diagnostics["steps_2x"]``).
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
        self._codecs: dict[tuple[str, int | None], Codec] = {}
        self._codec_fingerprints: dict[CodecRef, str] = {}
        self._probe_depth = 0
        #: Batches run per stage; the soundness probes' batches (of any stage) count apart.
        self.counters = {"attack_batches": 0, "codec_batches": 0, "predict_batches": 0, "probe_batches": 0,
                         "oom_backoffs": 0}
        #: Seconds spent per stage (attack, codec, predict) and on probes, for benchmarks and the progress line.
        self.seconds = dict.fromkeys((*STAGES, "probe"), 0.0)

    # --- public -----------------------------------------------------------------------------------

    def evaluate(self, case: Case) -> Result:
        """Accuracy of ``model`` on the dataset under ``case``, with bpp, PSNR, diagnostics and time spent."""
        if case.parts:
            return self._worst(case)
        start = time.perf_counter()
        spec = case.attack if case.threat != "clean" else None
        if spec is not None:
            self._check_eot(case)
        sources = self.sources(case)
        judged = [self._judge(case.codec, case.quality, case.rounds, key, src) for key, src in sources]
        correct, images, bpp = _worst_case(judged)
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
            diagnostics={} if spec is None else self._diagnostics(case, judged),
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

    def codec(self, name: str, quality: int | None) -> Codec:
        """The codec ``name`` at ``quality`` on the engine's device, built once."""
        key = (name, quality)
        if key not in self._codecs:
            self._codecs[key] = get_codec(name, quality, device=self.device, weights_dir=self.weights_dir,
                                          offline=self.offline)
        return self._codecs[key]

    def sources(self, case: Case) -> list[tuple[tuple, Tensor]]:
        """The images that reach the defense: clean, or one adversarial set per restart, with their store keys."""
        if case.threat == "clean" or case.attack is None:
            return [(("clean",), self.images)]
        path = self._path(case)
        return [self.adversarial(path, case.codec, case.quality, case.rounds, case.attack, restart=i)
                for i in range(case.attack.restarts)]

    def adversarial(self, path: str, codec: str, quality: int | None, rounds: int, spec: AttackSpec, *,
                    restart: int = 0, n: int | None = None) -> tuple[tuple, Tensor]:
        """Restart ``restart`` of ``spec`` through gradient ``path`` on the first ``n`` images, computed once.

        Restart 0 is the attack with ``restarts=1``: more restarts only add sets.
        """
        n = len(self.labels) if n is None else n
        attack_key = replace(spec, restarts=1).key + (f",restart={restart}" if restart else "")
        if path == "bare":
            key: tuple = ("adv", "bare", n, attack_key)
        else:
            key = ("adv", path, CodecRef(codec, quality), rounds, n, attack_key)
        address = self._address(key)
        cached = self.store.get(key, address)
        if cached is None:
            target = self._target(path, codec, quality, rounds)
            cached = (self.attack(target, replace(spec, restarts=1), key, n=n),)
            self.store.put(key, cached, address)
        return key, cached[0]

    def attack(self, target: nn.Module, spec: AttackSpec, key: tuple, *, n: int | None = None) -> Tensor:
        """Run ``spec`` against ``target`` on the first ``n`` images, batch by batch.

        Each batch is seeded from (seed, ``key``, its images) under ``fork_rng`` and must
        come back inside [0, 1] and the eps ball (:func:`check_budget`).
        """
        n = len(self.labels) if n is None else n
        attack = build_attack(target, spec)

        def run(start: int, stop: int) -> Tensor:
            xb, yb = self.images[start:stop].to(self.device), self.labels[start:stop].to(self.device)
            with self._seeded(key, start, stop):
                adv = attack(xb, yb).detach()
            check_budget(adv, xb, spec)
            self._count("attack")
            return adv.cpu()

        out = torch.cat(self._batched("attack", n, run))
        if self.model.training:
            raise HacError(f"the attack on {self.model.name!r} left it in training mode; results would be wrong")
        return out

    def defend(self, source_key: tuple, source: Tensor, codec_name: str, quality: int | None,
               rounds: int) -> tuple[Tensor, Tensor | None]:
        """``rounds`` passes of the real codec over ``source``; round k is built from round k-1.

        Returns the reconstructions and bits per pixel per image (None for identity).
        """
        if codec_name == "identity":
            return source, None
        ref = CodecRef(codec_name, quality)
        keys = [("codec", source_key, ref, k) for k in range(rounds + 1)]
        done, x, bpp = 0, source, None
        for k in range(rounds, 0, -1):  # the latest round already computed, in memory or on disk
            hit = self.store.get(keys[k], self._address(keys[k]))
            if hit is not None:
                done, (x, bpp) = k, hit
                break
        for k in range(done + 1, rounds + 1):
            x, bpp = self.roundtrip(self.codec(codec_name, quality), x, key=keys[k])
            self.store.put(keys[k], (x, bpp), self._address(keys[k]))
        return x, bpp

    def roundtrip(self, codec: Codec, x: Tensor, *, key: tuple | None = None) -> tuple[Tensor, Tensor]:
        """One pass of the real ``codec`` over ``x``, batched: reconstructions and bits per pixel.

        With ``key``, each batch is seeded from it (stochastic codecs give reproducible outputs).
        """

        def run(start: int, stop: int) -> tuple[Tensor, Tensor]:
            seeded = self._seeded(key, start, stop) if key is not None else nullcontext()
            with seeded, torch.inference_mode():
                x_hat, bpp = codec.roundtrip(x[start:stop].to(self.device))
            self._count("codec")
            return x_hat.cpu(), bpp.cpu()

        outs = self._batched("codec", len(x), run)
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def logits(self, key: tuple, images: Tensor) -> Tensor:
        """Logits of ``images`` (stored under ``key``): the same images are never classified twice."""
        address = self._address(key)
        hit = self.store.get(key, address)
        if hit is not None:
            return hit[0]
        out = self._logits(images)
        self.store.put(key, (out,), address)
        return out

    # --- soundness probes ---------------------------------------------------------------------------

    def _diagnostics(self, case: Case, judged: list[Judged]) -> dict:
        """The measurements :mod:`pytest_hac.core.soundness` reads (schema in the module docstring)."""
        spec = case.attack
        out: dict = {"restarts": [int(j.correct.sum()) for j in judged]}
        with self._probing():
            if not spec.info.gradient_free:
                bad = self._zero_gradients(case)
                out["zero_gradient"] = {"images": int(bad.sum()), "of": len(bad)}
                if not spec.min_norm:
                    if case.threat in ("whitebox", "adaptive"):
                        out["large_eps"] = self._large_eps(case)
                    out["undefended_large_eps"] = self._undefended_large_eps(spec)
            if (self.soundness == "thorough" or case.thorough) and spec.info.takes_steps:
                out["steps_2x"] = self._steps_2x(case)
        return out

    def _zero_gradients(self, case: Case) -> Tensor:
        """Per image: is the input gradient of the attack loss at the clean image all zero or not finite?"""
        path = self._path(case)
        key: tuple = ("zerograd", "bare") if path == "bare" else (
            "zerograd", path, CodecRef(case.codec, case.quality), case.rounds)
        address = self._address(key)
        hit = self.store.get(key, address)
        if hit is not None:
            return hit[0]
        target = self._target(path, case.codec, case.quality, case.rounds)

        def run(start: int, stop: int) -> Tensor:
            xb = self.images[start:stop].to(self.device).clone().requires_grad_(True)
            yb = self.labels[start:stop].to(self.device)
            with self._seeded(key, start, stop), torch.enable_grad():
                loss = F.cross_entropy(target(xb), yb, reduction="sum")  # sum: each image's gradient is its own
                (grad,) = torch.autograd.grad(loss, xb)
            flat = grad.detach().flatten(1)
            self._count("attack")
            return (~torch.isfinite(flat).all(1) | (flat == 0).all(1)).cpu()

        bad = torch.cat(self._batched("attack", len(self.labels), run))
        self.store.put(key, (bad,), address)
        return bad

    def _probe_spec(self, spec: AttackSpec, linf_eps: float, *, eot: int = 1) -> AttackSpec:
        """``spec``'s attack (name, norm, steps; default alpha) at max(its eps, ``linf_eps``).

        For L2 the budget is ``linf_eps * sqrt(C*H*W)``: the smallest L2 ball that holds the L-inf ball.
        """
        eps = linf_eps if spec.norm == "Linf" else linf_eps * math.sqrt(self.images[0].numel())
        return make_spec(spec.name, max(spec.eps, eps), steps=spec.steps if spec.info.takes_steps else None,
                         norm=spec.norm, eot=eot)

    def _large_eps(self, case: Case) -> dict:
        """The cell's attack at a huge eps through the same gradient path, judged by the real pipeline."""
        m = min(len(self.labels), LARGE_EPS_IMAGES)
        probe = self._probe_spec(case.attack, LARGE_EPS, eot=case.attack.eot)
        key, adv = self.adversarial(self._path(case), case.codec, case.quality, case.rounds, probe, n=m)
        judged = self._judge(case.codec, case.quality, case.rounds, key, adv)
        return {"eps": probe.eps, "correct": int(judged.correct.sum()), "n": m}

    def _undefended_large_eps(self, spec: AttackSpec) -> dict:
        """The cell's attack at a large eps against the bare model: it should break it."""
        m = min(len(self.labels), UNDEFENDED_IMAGES)
        probe = self._probe_spec(spec, UNDEFENDED_EPS)
        key, adv = self.adversarial("bare", "identity", None, 1, probe, n=m)
        judged = self._judge("identity", None, 1, key, adv)
        return {"eps": probe.eps, "correct": int(judged.correct.sum()), "n": m}

    def _steps_2x(self, case: Case) -> dict:
        """The cell again with twice the steps (all restarts, all images)."""
        twice = replace(case.attack, steps=2 * case.attack.steps)
        path = self._path(case)
        judged = [self._judge(case.codec, case.quality, case.rounds,
                              *self.adversarial(path, case.codec, case.quality, case.rounds, twice, restart=i))
                  for i in range(twice.restarts)]
        return {"steps": twice.steps, "correct": _worst_case(judged)[0].tolist()}

    # --- internals --------------------------------------------------------------------------------

    def _path(self, case: Case) -> str:
        if case.codec == "identity":
            return "bare"  # every attacker of an undefended model is the same attacker
        return GRADIENT_PATH[case.threat]

    def _target(self, path: str, codec: str, quality: int | None, rounds: int) -> nn.Module:
        """The module an attack on ``path`` sees: the bare model or the model behind the defense."""
        if path == "bare":
            return self.model
        return Defended(self.model, self.codec(codec, quality), rounds, path)

    def _check_eot(self, case: Case) -> None:
        """EOT over a deterministic defense repeats one gradient: refuse it, naming codec, attack and parameter."""
        spec = case.attack
        if spec.eot == 1:
            return
        if self._path(case) == "bare":
            raise HacError(f"eot={spec.eot} (attack {spec.name!r}) averages gradients over a random defense, but the "
                           f"{case.threat} cell {case.id or case.defense} attacks the bare, deterministic model; "
                           f"drop eot")
        codec = self.codec(case.codec, case.quality)
        if not getattr(codec, "stochastic", False):
            raise HacError(f"eot={spec.eot} (attack {spec.name!r}) averages gradients over a random defense, but codec "
                           f"{case.codec!r} is deterministic (its stochastic flag is False): every sample gives the "
                           f"same gradient at {spec.eot}x the cost; drop eot, or mark a codec that really is random "
                           f"with stochastic = True")

    def _judge(self, codec: str, quality: int | None, rounds: int, key: tuple, source: Tensor) -> Judged:
        """``source`` (stored under ``key``) through the real defense and the classifier."""
        defended, bpp = self.defend(key, source, codec, quality, rounds)
        ref = None if codec == "identity" else CodecRef(codec, quality)
        logits = self.logits(("logits", key, ref, rounds if ref else 1, self.amp), defended)
        return Judged(logits.argmax(1) == self.labels[: len(source)], defended, bpp)

    @contextmanager
    def _seeded(self, key: tuple, start: int, stop: int) -> Iterator[None]:
        """Seed torch for one batch from (seed, ``key``, its images); the caller's RNG state comes back after."""
        devices = list(range(torch.cuda.device_count())) if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            seed = _seed(self.seed, key, start, stop)
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed_all(seed)
            yield

    @contextmanager
    def _probing(self) -> Iterator[None]:
        """Count the work inside as soundness probes, apart from the cells' own."""
        self._probe_depth += 1
        try:
            yield
        finally:
            self._probe_depth -= 1

    def _count(self, stage: str) -> None:
        self.counters["probe_batches" if self._probe_depth else f"{stage}_batches"] += 1

    def _logits(self, images: Tensor) -> Tensor:
        """Logits, batched, under inference mode (and bf16 autocast with ``amp``)."""

        def run(start: int, stop: int) -> Tensor:
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
            with torch.inference_mode(), autocast:
                logits = self.model(images[start:stop].to(self.device)).float()
            check_logits(self.model, logits)
            self._count("predict")
            return logits.cpu()

        return torch.cat(self._batched("predict", len(images), run))

    def _batched(self, stage: str, n: int, fn: Callable[[int, int], object]) -> list:
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

    def _halve(self, stage: str, failed: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if failed <= 1:
            raise HacError("CUDA out of memory even at batch size 1; use a smaller model or --hac-device=cpu")
        self.batch_sizes[stage] = failed // 2
        self.counters["oom_backoffs"] += 1
        warnings.warn(f"pytest-hac: CUDA out of memory in {stage}; batch size halved to {failed // 2}", stacklevel=3)

    def _address(self, key: tuple) -> str | None:
        """The disk address of a store key: the key plus the model, data, seed and codec weights it stands for."""
        disk = self.store.disk
        if disk is None:
            return None
        # Codec outputs of the clean images do not depend on the model: models sharing
        # the preprocessed data share them.
        model_free = key[0] == "codec" and key[1] == ("clean",)
        owner = None if model_free else (self._model_fingerprint, self.seed)
        return disk.address(self._content(key), owner, self._data_fingerprint, self.device.type)

    def _content(self, part: object) -> object:
        if isinstance(part, tuple):
            content = tuple(self._content(p) for p in part)
            if part[:1] == ("adv",):  # a user's attack registered under a built-in name is another attack
                content += (_factory_id(ATTACKS.entry(part[-1].split(",", 1)[0]).factory),)
            return content
        if isinstance(part, CodecRef):
            if part not in self._codec_fingerprints:
                self._codec_fingerprints[part] = codec_fingerprint(self.codec(part.name, part.quality))
            return (part.name, part.quality, self._codec_fingerprints[part])
        return part

    @cached_property
    def _model_fingerprint(self) -> str:
        return model_fingerprint(self.model)

    @cached_property
    def _data_fingerprint(self) -> str:
        return data_fingerprint(self.dataset.ids, self.images, self.labels)


def _worst_case(judged: list[Judged]) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per image the first restart the pipeline gets wrong (else the first): correct only if right on all.

    Returns correctness, the images the classifier saw and their bpp for the restart kept.
    """
    first = judged[0]
    if len(judged) == 1:
        return first.correct, first.images, first.bpp
    correct, images = first.correct.clone(), first.images.clone()
    bpp = None if first.bpp is None else first.bpp.clone()
    for j in judged[1:]:
        take = correct & ~j.correct
        images[take] = j.images[take]
        if bpp is not None:
            bpp[take] = j.bpp[take]
        correct &= j.correct
    return correct, images, bpp


def check_budget(adv: Tensor, x: Tensor, spec: AttackSpec) -> None:
    """Raise :class:`HacError` when ``adv`` is not inside [0, 1] and ``spec``'s eps ball around ``x``.

    Asserted, not enforced: clipping a broken attack would report it as a weak one.
    Minimum-norm attacks (no eps) are held to [0, 1] only.
    """
    if adv.shape != x.shape:
        raise HacError(f"attack {spec.name!r} returned a batch shaped {tuple(adv.shape)} for images shaped "
                       f"{tuple(x.shape)}; an attack returns one adversarial image per input")
    if not bool(torch.isfinite(adv).all()):
        raise HacError(f"attack {spec.name!r} returned NaN or infinite pixels; fix the attack")
    outside = max(float(-adv.min()), float(adv.max()) - 1.0)
    if outside > BALL_TOLERANCE:
        raise HacError(f"attack {spec.name!r} returned pixels outside [0, 1] (by up to {outside:.3g}); attacks take "
                       f"and return images in [0, 1]: clamp inside the attack")
    if spec.eps is None:
        return
    delta = (adv - x).flatten(1).double()
    size = delta.abs().amax(1) if spec.norm == "Linf" else delta.norm(dim=1)
    excess = float(size.max()) - spec.eps if len(size) else 0.0
    if excess > BALL_TOLERANCE * max(1.0, spec.eps):
        raise HacError(f"attack {spec.name!r} left its {spec.norm} ball of eps {spec.eps_label}: the largest "
                       f"perturbation exceeds eps by {excess:.3g} ({spec.norm} norm {float(size.max()):.4g}). "
                       f"pytest-hac checks the budget instead of clipping, so a broken attack cannot pass as a weak "
                       f"one; project onto the eps ball inside the attack")


def _factory_id(factory: object) -> str:
    return f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', type(factory).__qualname__)}"


def _is_oom(exc: BaseException) -> bool:
    # Some kernels (cuDNN, cuBLAS) report exhausted memory as a plain RuntimeError.
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _seed(seed: int, key: tuple, start: int, stop: int) -> int:
    digest = hashlib.sha256(f"{seed}|{key}|{start}:{stop}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def mean_psnr(x: Tensor, ref: Tensor) -> float:
    """Mean over images of the PSNR (dB, peak 1.0) of ``x`` against ``ref``."""
    mse = (x.double() - ref.double()).pow(2).flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return float(psnr.mean())
