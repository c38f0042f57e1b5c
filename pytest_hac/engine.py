"""Evaluation: every distinct piece of work once, batched, on the device.

What is reused (keys in :class:`Store`, content addresses in :mod:`pytest_hac.cache`):

* oblivious adversarial examples per attack, shared by every defense;
* codec outputs per (source images, codec, quality, round), round k computed
  from round k-1;
* logits per (source images, defense), so no image batch is classified twice;
* with a cache directory, all of the above across sessions.

``Engine(model, dataset).evaluate(case)`` works without pytest.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor, nn

from .attacks import ATTACKS, AttackSpec, build_attack
from .cache import Store, codec_fingerprint, data_fingerprint, model_fingerprint
from .cases import Case
from .codecs import Codec, get_codec
from .data import Dataset
from .errors import HacError
from .models import Classifier, check_logits
from .result import Result

#: Threat -> how gradients (or queries) pass through the defense.
GRADIENT_PATH = {"oblivious": "bare", "whitebox": "approximate", "adaptive": "bpda", "query": "real"}
#: Stages with their own batch size: an attack needs several times the memory of a forward pass.
STAGES = ("attack", "codec", "predict")
#: First batch size with ``batch_size="auto"``: CUDA starts large and halves on out-of-memory.
AUTO_BATCH = {"cuda": 256, "cpu": 16}

#: ``progress(stage, images_done, images_total)``, called after every batch.
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CodecRef:
    """A codec at a quality inside a store key; the disk layer swaps it for the codec's fingerprint."""

    name: str
    quality: int | None


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
        seed: seeds every attack batch from (seed, attack key, images in the batch), so
            results do not depend on the order cells run in (xdist, shards, ``-k``).
        amp: run the classifier under bf16 autocast when evaluating (not when attacking).
        store: the in-memory LRU (with an optional disk layer) for reusable tensors.
        progress: called as ``progress(stage, done, total)`` after every batch.
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
        start = min(AUTO_BATCH.get(self.device.type, 16), len(self.labels)) if batch_size == "auto" else int(batch_size)
        self.batch_sizes = dict.fromkeys(STAGES, max(1, start))
        self.seed = seed
        self.amp = amp
        self.weights_dir = weights_dir
        self.store = store if store is not None else Store()
        self.progress = progress
        self._codecs: dict[tuple[str, int | None], Codec] = {}
        self._codec_fingerprints: dict[CodecRef, str] = {}
        self.counters = {"attack_batches": 0, "codec_batches": 0, "predict_batches": 0, "oom_backoffs": 0}
        #: Seconds spent per stage (attack, codec, predict), for benchmarks and the progress line.
        self.seconds = dict.fromkeys(STAGES, 0.0)

    # --- public -----------------------------------------------------------------------------------

    def evaluate(self, case: Case) -> Result:
        """Accuracy of ``model`` on the dataset under ``case``, with bpp, PSNR and time spent."""
        start = time.perf_counter()
        source_key, source = self.source(case)
        defended, bpp = self.defend(source_key, source, case.codec, case.quality, case.rounds)
        ref = None if case.codec == "identity" else CodecRef(case.codec, case.quality)
        logits = self.logits(("logits", source_key, ref, case.rounds if ref else 1, self.amp), defended)
        correct = (logits.argmax(1) == self.labels).tolist()
        psnr = None if case.codec == "identity" else mean_psnr(defended, self.images)
        spec = case.attack
        return Result.from_correct(
            correct,
            case_id=case.id, codec=case.codec, quality=case.quality, rounds=case.rounds, threat=case.threat,
            attack=None if spec is None else spec.name, eps=None if spec is None else spec.eps,
            bpp=None if bpp is None or math.isnan(bpp) else bpp, psnr=psnr,
            seconds=time.perf_counter() - start, ids=list(self.dataset.ids), threshold=case.threshold,
            attack_params={} if spec is None else spec.as_dict(),
        )

    def codec(self, name: str, quality: int | None) -> Codec:
        """The codec ``name`` at ``quality`` on the engine's device, built once."""
        key = (name, quality)
        if key not in self._codecs:
            self._codecs[key] = get_codec(name, quality, device=self.device, weights_dir=self.weights_dir)
        return self._codecs[key]

    def source(self, case: Case) -> tuple[tuple, Tensor]:
        """The images that reach the defense: clean, or adversarial for the case's threat."""
        if case.threat == "clean" or case.attack is None:
            return ("clean",), self.images
        path = GRADIENT_PATH[case.threat]
        if case.codec == "identity":
            path = "bare"  # every attacker of an undefended model is the same attacker
        if path == "bare":
            key: tuple = ("adv", "bare", case.attack.key)
        else:
            key = ("adv", path, CodecRef(case.codec, case.quality), case.rounds, case.attack.key)
        address = self._address(key)
        cached = self.store.get(key, address)
        if cached is None:
            if path == "bare":
                target: nn.Module = self.model
            else:
                target = Defended(self.model, self.codec(case.codec, case.quality), case.rounds, path)
            cached = (self.attack(target, case.attack, key),)
            self.store.put(key, cached, address)
        return key, cached[0]

    def attack(self, target: nn.Module, spec: AttackSpec, key: tuple) -> Tensor:
        """Run ``spec`` against ``target`` batch by batch; the result lies in the eps ball and [0, 1]."""
        attack = build_attack(target, spec)

        def run(start: int, stop: int) -> Tensor:
            xb, yb = self.images[start:stop].to(self.device), self.labels[start:stop].to(self.device)
            # Seeded by the images it covers, not by position in the run: cells give the same
            # numbers whichever order they run in.
            torch.manual_seed(_seed(self.seed, key, start, stop))
            adv = attack(xb, yb)
            self.counters["attack_batches"] += 1
            return project(adv.detach(), xb, spec).cpu()

        out = torch.cat(self._batched("attack", len(self.labels), run))
        if self.model.training:
            raise HacError(f"the attack on {self.model.name!r} left it in training mode; results would be wrong")
        return out

    def defend(self, source_key: tuple, source: Tensor, codec_name: str, quality: int | None,
               rounds: int) -> tuple[Tensor, float | None]:
        """``rounds`` passes of the real codec over ``source``; round k is built from round k-1."""
        if codec_name == "identity":
            return source, None
        ref = CodecRef(codec_name, quality)
        keys = [("codec", source_key, ref, k) for k in range(rounds + 1)]
        done, x, bpp = 0, source, None
        for k in range(rounds, 0, -1):  # the latest round already computed, in memory or on disk
            hit = self.store.get(keys[k], self._address(keys[k]))
            if hit is not None:
                done, (x, bpp_t) = k, hit
                bpp = float(bpp_t.mean())
                break
        for k in range(done + 1, rounds + 1):
            x, bpp_t = self.roundtrip(self.codec(codec_name, quality), x)
            self.store.put(keys[k], (x, bpp_t), self._address(keys[k]))
            bpp = float(bpp_t.mean())
        return x, bpp

    def roundtrip(self, codec: Codec, x: Tensor) -> tuple[Tensor, Tensor]:
        """One pass of the real ``codec`` over ``x``, batched: reconstructions and bits per pixel."""

        def run(start: int, stop: int) -> tuple[Tensor, Tensor]:
            with torch.inference_mode():
                x_hat, bpp = codec.roundtrip(x[start:stop].to(self.device))
            self.counters["codec_batches"] += 1
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

    # --- internals --------------------------------------------------------------------------------

    def _logits(self, images: Tensor) -> Tensor:
        """Logits, batched, under inference mode (and bf16 autocast with ``amp``)."""

        def run(start: int, stop: int) -> Tensor:
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
            with torch.inference_mode(), autocast:
                logits = self.model(images[start:stop].to(self.device)).float()
            check_logits(self.model, logits)
            self.counters["predict_batches"] += 1
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
            self.seconds[stage] += time.perf_counter() - began
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


def _factory_id(factory: object) -> str:
    return f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', type(factory).__qualname__)}"


def _is_oom(exc: BaseException) -> bool:
    # Some kernels (cuDNN, cuBLAS) report exhausted memory as a plain RuntimeError.
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def project(adv: Tensor, x: Tensor, spec: AttackSpec) -> Tensor:
    """Clip ``adv`` into the attack's norm ball around ``x`` and into [0, 1].

    A correct attack is already inside; this guards the report against attacks
    that are not (torchattacks' CW is unbounded: its L2 budget is applied here).
    """
    delta = adv - x
    if spec.norm == "Linf":
        delta = delta.clamp(-spec.eps, spec.eps)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        delta = delta * (spec.eps / norms).clamp(max=1.0)
    return (x + delta).clamp(0, 1)


def _seed(seed: int, key: tuple, start: int, stop: int) -> int:
    digest = hashlib.sha256(f"{seed}|{key}|{start}:{stop}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def mean_psnr(x: Tensor, ref: Tensor) -> float:
    """Mean over images of the PSNR (dB, peak 1.0) of ``x`` against ``ref``."""
    mse = (x.double() - ref.double()).pow(2).flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return float(psnr.mean())
