"""Evaluation: every distinct piece of work once, batched, on the device.

What is reused within a session (keys in :class:`Store`):

* oblivious adversarial examples per attack, shared by every defense;
* codec outputs per (source images, codec, quality, round), round k computed
  from round k-1;
* clean images are the source of every ``clean`` cell.

``Engine(model, dataset).evaluate(case)`` works without pytest.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor, nn

from .attacks import AttackSpec, build_attack
from .cases import Case
from .codecs import Codec, get_codec
from .data import Dataset
from .errors import HacError
from .models import Classifier, check_logits
from .result import Result

#: Threat -> how gradients (or queries) pass through the defense.
GRADIENT_PATH = {"oblivious": "bare", "whitebox": "approximate", "adaptive": "bpda", "query": "real"}


class Store:
    """A byte-bounded LRU of tensors (adversarial batches, codec outputs)."""

    def __init__(self, max_bytes: int = 2 << 30) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[Tensor, ...]] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> tuple[Tensor, ...] | None:
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return value

    def put(self, key: tuple, value: tuple[Tensor, ...]) -> None:
        size = sum(t.nbytes for t in value)
        if key in self._items:
            self.nbytes -= sum(t.nbytes for t in self._items.pop(key))
        self._items[key] = value
        self.nbytes += size
        while self.nbytes > self.max_bytes and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self.nbytes -= sum(t.nbytes for t in old)


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
        model: the classifier (inputs in [0, 1]).
        dataset: the evaluation images (already subset).
        device: where models, attacks and codecs run.
        batch_size: images per batch, or "auto" (start large, halve on CUDA OOM).
        seed: seeds every attack batch from (seed, attack key, batch), so results do
            not depend on the order cells run in (xdist, shards, ``-k``).
        amp: run the classifier under bf16 autocast when evaluating (not when attacking).
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
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dataset = dataset
        self.images = dataset.images
        self.labels = dataset.labels
        if dataset.label_space not in ("index", model.label_space):
            raise HacError(
                f"model {model.name!r} predicts {model.label_space} classes but data set {dataset.name!r} is labelled "
                f"with {dataset.label_space} classes; pick matching --hac-model and --hac-data (see --hac-list)"
            )
        if int(self.labels.max()) >= model.num_classes:
            raise HacError(f"data set {dataset.name!r} has label {int(self.labels.max())} but model {model.name!r} "
                           f"has only {model.num_classes} classes")
        if batch_size == "auto":
            self.batch_size, self.auto_batch = (64 if self.device.type == "cuda" else 16), True
        else:
            self.batch_size, self.auto_batch = int(batch_size), False
        self.seed = seed
        self.amp = amp
        self.weights_dir = weights_dir
        self.store = store or Store()
        self.progress = progress
        self._codecs: dict[tuple[str, int | None], Codec] = {}
        self.counters = {"attack_batches": 0, "codec_batches": 0, "predict_batches": 0}

    # --- public -----------------------------------------------------------------------------------

    def evaluate(self, case: Case) -> Result:
        """Accuracy of ``model`` on the dataset under ``case``, with bpp, PSNR and time spent."""
        start = time.perf_counter()
        source_key, source = self.source(case)
        defended, bpp = self.defend(source_key, source, case.codec, case.quality, case.rounds)
        pred = self.predict(defended)
        correct = (pred == self.labels).tolist()
        psnr = None if case.codec == "identity" else _mean_psnr(defended, self.images)
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
            key = ("adv", "bare", case.attack.key)
            target: nn.Module = self.model
        else:
            key = ("adv", path, case.codec, case.quality, case.rounds, case.attack.key)
            target = Defended(self.model, self.codec(case.codec, case.quality), case.rounds, path)
        cached = self.store.get(key)
        if cached is None:
            cached = (self.attack(target, case.attack, key),)
            self.store.put(key, cached)
        return key, cached[0]

    def attack(self, target: nn.Module, spec: AttackSpec, key: tuple) -> Tensor:
        """Run ``spec`` against ``target`` batch by batch; the result lies in the eps ball and [0, 1]."""
        return retrying(lambda: self._attack_once(target, spec, key))

    def _attack_once(self, target: nn.Module, spec: AttackSpec, key: tuple) -> Tensor:
        attack = build_attack(target, spec)
        outs = []
        for i, (xb, yb) in enumerate(self._batches()):
            torch.manual_seed(_seed(self.seed, key, i))
            xb, yb = xb.to(self.device), yb.to(self.device)
            adv = self._with_backoff(lambda: attack(xb, yb))
            outs.append(project(adv.detach(), xb, spec).cpu())
            self.counters["attack_batches"] += 1
        if self.model.training:
            raise HacError(f"the attack on {self.model.name!r} left it in training mode; results would be wrong")
        return torch.cat(outs)

    def defend(self, source_key: tuple, source: Tensor, codec_name: str, quality: int | None,
               rounds: int) -> tuple[Tensor, float | None]:
        """``rounds`` passes of the real codec over ``source``; round k is built from round k-1."""
        if codec_name == "identity":
            return source, None
        codec = self.codec(codec_name, quality)
        done, x, bpp = 0, source, None
        for k in range(rounds, 0, -1):  # the latest round already computed
            hit = self.store.get(("codec", source_key, codec_name, quality, k))
            if hit is not None:
                done, (x, bpp_t) = k, hit
                bpp = float(bpp_t.mean())
                break
        for k in range(done + 1, rounds + 1):
            x, bpp_t = retrying(lambda: self._roundtrip_once(codec, x))
            self.store.put(("codec", source_key, codec_name, quality, k), (x, bpp_t))
            bpp = float(bpp_t.mean())
        return x, bpp

    def predict(self, images: Tensor) -> Tensor:
        """Top-1 predictions, batched, under inference mode (and bf16 autocast with ``amp``)."""
        return retrying(lambda: self._predict_once(images))

    def _predict_once(self, images: Tensor) -> Tensor:
        preds = []
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
        with torch.inference_mode(), autocast:
            for xb in images.split(self.batch_size):
                logits = self._with_backoff(lambda: self.model(xb.to(self.device))).float()
                check_logits(self.model, logits)
                preds.append(logits.argmax(1).cpu())
                self.counters["predict_batches"] += 1
        return torch.cat(preds)

    # --- internals --------------------------------------------------------------------------------

    def _roundtrip_once(self, codec: Codec, x: Tensor) -> tuple[Tensor, Tensor]:
        outs, bpps = [], []
        for xb in x.split(self.batch_size):
            x_hat, b = self._with_backoff(lambda: codec.roundtrip(xb.to(self.device)))
            outs.append(x_hat.cpu())
            bpps.append(b)
            self.counters["codec_batches"] += 1
        return torch.cat(outs), torch.cat(bpps)

    def _batches(self):
        for i in range(0, len(self.labels), self.batch_size):
            yield self.images[i:i + self.batch_size], self.labels[i:i + self.batch_size]

    def _with_backoff(self, fn):
        """Run ``fn``; on CUDA out-of-memory halve the batch size and have the caller start over."""
        try:
            return fn()
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            if self.batch_size > 1:
                self.batch_size //= 2
                warnings.warn(f"pytest-hac: CUDA out of memory; batch size halved to {self.batch_size}", stacklevel=2)
                raise _RetrySmaller() from exc
            raise HacError("CUDA out of memory even at batch size 1; use a smaller model or --hac-device=cpu") from exc


class _RetrySmaller(Exception):
    """Raised inside a batch loop after the batch size was halved; the caller restarts the loop."""


def retrying(fn: Callable[[], object]):
    """Call ``fn`` until it completes without a batch-size back-off."""
    while True:
        try:
            return fn()
        except _RetrySmaller:
            continue


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


def _seed(seed: int, key: tuple, batch: int) -> int:
    digest = hashlib.sha256(f"{seed}|{key}|{batch}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def _mean_psnr(x: Tensor, ref: Tensor) -> float:
    mse = (x.double() - ref.double()).pow(2).flatten(1).mean(1)
    psnr = 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return float(psnr.mean())
