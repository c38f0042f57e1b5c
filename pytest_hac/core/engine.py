"""Evaluation: every distinct piece of work once, in chunks of images, batched, on the device.

**Memory is bounded by a chunk, not by the data set.** Images are stored as the 8-bit
pixels they were decoded to; a cell walks the data set chunk by chunk (``chunk_size``
images, a multiple of the batch size, set by the memory budget) and keeps of each image
only its *outcome* (:class:`~.judged.Outcome`: correct or not, bits per pixel, PSNR), a few
numbers per image. Tensors a later cell still needs are stored per chunk under typed keys
(:mod:`.keys`): adversarial sets (float32) and codec rounds (uint8, exactly the 8-bit images
a codec decodes to). The store is a memory LRU within the budget that spills what it evicts
to a session scratch folder (and, with ``--hac-cache-dir``, writes through to a disk cache
shared across sessions), so **no attack runs twice on an image because memory filled up**.

**What a later cell needs** is known from the plan: :meth:`Engine.plan` takes the cases a
session will evaluate. A chunk is stored only while a planned, not yet evaluated case needs
it (an oblivious attack's chunks until every defense's oblivious cell has its outcome; a codec's
round k while a cell with more rounds is pending) and dropped afterwards. Without a plan
(plain Python) everything reusable is kept, within the budget, spilling to scratch.

What is reused, each computed once per session:

* oblivious adversarial examples per attack and restart, shared by every defense;
* codec outputs per (source images, codec, quality, round), round k computed from round k-1;
* per-image outcomes per (source images, defense): no image is classified twice;
* the soundness probes (:mod:`.probes`), per defense and attack.

What a verdict rests on:

* whitebox and adaptive attacks use the codec's ``approximate`` for gradients only
  (:mod:`.defended`); every cell is evaluated through the real codec;
* ``restarts=R`` runs R seeded restarts, and an adaptive cell runs each restart along
  several gradient paths (BPDA with the codec's approximation, the identity, or the approximation
  in the first round only, and the white-box attack, :mod:`.defended`); an image counts as
  correct only if the evaluated pipeline gets it right on every one (worst case per image);
* attacks are checked, not corrected (:func:`~pytest_hac.attacks.budget.check_budget`);
* random starts are drawn per image, from a seed of (``--hac-seed``, attack, restart, image
  id): an image's adversarial example does not depend on its batch, its chunk, the order
  cells run in or an out-of-memory back-off. Each batch also runs inside
  ``torch.random.fork_rng`` with a seed of its images, for attacks with randomness beyond the
  start (Square, AutoAttack's later parts), and the rest of the run sees the global RNG untouched.

``Engine(model, dataset).evaluate(case)`` works without pytest.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from functools import cached_property

import torch
from torch import Tensor, nn

from ..attacks import AttackSpec, Threat, build_attack
from ..attacks.budget import check_budget
from ..codecs import Codec, get_codec
from ..data import Dataset
from ..errors import HacError
from ..io.cache import Store, codec_fingerprint, data_fingerprint, model_fingerprint
from ..models import Classifier, check_logits
from ..registry import ATTACKS
from . import probes
from .autobatch import cpu_batch
from .cases import Case, check_eot
from .cost import plan_attack, worth_planning
from .defended import Defended, gradient_paths
from .diagnostics import Diagnostics
from .gallery import Gallery, class_names
from .judged import Outcome, psnr_per_image, worst_of
from .keys import AdvKey, Chunk, CleanKey, CodecRef, Key, NormKey, OutcomeKey, RoundKey, SourceKey, content, model_free
from .result import Result, worst_per_image
from .soundness import SOUNDNESS_MODES

#: Stages with their own batch size: an attack needs several times the memory of a forward pass.
STAGES = ("attack", "codec", "predict")
#: First batch size with ``batch_size="auto"``: CUDA starts large and halves on out-of-memory; on CPU
#: codecs use 16 and the model's stages what its activations allow (:func:`.autobatch.cpu_batch`).
AUTO_BATCH = {"cuda": 256, "cpu": 16}
#: Float32 copies of a chunk alive at once while a cell works on it (source, a codec round,
#: the classifier's input, the attack's iterates): the chunk size is budget / 2 / (copies x image).
WORKING_COPIES = 6
#: Defense of a source: (codec, quality, rounds).
Defense = tuple[str, "int | None", int]

#: ``progress(stage, images_done, images_total)``, called after every batch.
ProgressFn = Callable[[str, int, int], None]


@dataclass
class Counters:
    """Batches run per stage; the soundness probes' batches (of any stage) count apart in ``probe_batches``.

    ``attack_images`` counts each distinct attack once per image: a restart is one attack, and each
    gradient path of an adaptive cell is one (three at one round, four at more; the white-box one
    shared with the white-box cell). ``oom_backoffs`` counts batches halved after CUDA ran out of memory.
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


class Engine:
    """Evaluates cases for one model on one dataset, reusing all shared work within a memory budget.

    Args:
        model: the classifier (inputs in [0, 1]); it must not change while the engine lives.
        dataset: the evaluation images (already subset), 8-bit.
        device: where models, attacks and codecs run.
        batch_size: images per batch, or "auto" (on CPU: 16 for codecs, for the model the largest power
            of two its activations fit in the budget, at most 1024; 256 on CUDA). A CUDA
            out-of-memory error halves the batch size of that stage and the run carries on
            from the batch that failed.
        seed: seeds every random start (per image) and every batch (see the module docstring),
            so results do not depend on the order cells run in (xdist, shards, ``-k``).
        amp: run the classifier under bf16 autocast when evaluating (not when attacking).
        weights_dir: local checkpoints of learned codecs.
        store: where reusable chunks live (default: a memory LRU of ``memory_mb`` spilling to scratch).
        progress: called as ``progress(stage, done, total)`` after every batch.
        soundness: ``"fail"``, ``"warn"`` or ``"thorough"``; the engine measures the same
            diagnostics for the first two, and with ``"thorough"`` also reruns each attacked
            cell at twice its steps (``diagnostics["steps_2x"]``).
        offline: never download codec weights (missing ones are an error that names the file).
        memory_mb: the memory budget: half for the chunks a cell works on, half for the store.
        gallery: keep thumbnails of this many images (chosen by ``seed``) as the cells compute them
            (:mod:`.gallery`, for the HTML page); 0 keeps none.
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
        memory_mb: int = 2048,
        gallery: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.dataset = dataset
        self.labels = dataset.labels
        if model.label_space != "index" and dataset.label_space not in ("index", model.label_space):
            raise HacError(_label_mismatch(model, dataset))
        if dataset.label_space == "folder-order" and len(dataset.class_labels) != model.num_classes:
            raise HacError(_label_mismatch(model, dataset))
        if int(self.labels.max()) >= model.num_classes:
            raise HacError(f"data set {dataset.name!r} has label {int(self.labels.max())} but model {model.name!r} "
                           f"has only {model.num_classes} classes; pick a model whose logits cover the data's classes, "
                           f"or a data set labelled for this model (see --hac-list)")
        if soundness not in SOUNDNESS_MODES:
            raise HacError(f"soundness must be one of {', '.join(SOUNDNESS_MODES)}; got {soundness!r}")
        n = len(self.labels)
        start = min(AUTO_BATCH.get(self.device.type, 16), n) if batch_size == "auto" else int(batch_size)
        start = max(1, start)
        self.batch_sizes = dict.fromkeys(STAGES, start)
        if batch_size == "auto" and self.device.type == "cpu":
            # The model's own batch for attacks and predictions; codecs keep theirs (same bytes as before).
            fit = cpu_batch(self.model, dataset.pixels(0, 1)[0], n, (memory_mb << 20) // 2)
            self.batch_sizes.update(attack=fit, predict=fit)
        #: Attacks drawing from torch's RNG per batch (Square, AutoAttack) keep the former batch on CPU, so
        #: their results stay those recorded before the model's batch grew (None: no cap).
        self._batchwise_rng_cap = start if batch_size == "auto" and self.device.type == "cpu" else None
        top = max(self.batch_sizes.values())  # powers of two: a multiple of it is one of every stage's
        image_bytes = 4 * dataset.images[0].numel()
        per_chunk = max(1, (memory_mb << 20) // 2 // (WORKING_COPIES * image_bytes))
        #: Images per chunk: a multiple of the batch size, so chunks never split a batch.
        self.chunk_size = min(n, max(top, per_chunk // top * top))
        self.seed = seed
        self.amp = amp
        self.weights_dir = weights_dir
        self.store = store if store is not None else Store((memory_mb << 20) // 2)
        self.progress = progress
        self.soundness = soundness
        self.offline = offline
        #: Thumbnails of a few images for the HTML page, taken from the tensors cells compute anyway.
        self.gallery = Gallery(dataset, gallery, seed, class_names(model, dataset)) if gallery > 0 else None
        self._codecs: dict[CodecRef, Codec] = {}
        self._codec_fingerprints: dict[CodecRef, str] = {}
        self._probe_depth = 0
        self._outcomes: dict[OutcomeKey, Outcome] = {}
        #: (source, defense) pairs that planned, not yet evaluated cases will ask for; None: no plan.
        self._needs: dict[Case, set[tuple[SourceKey, Defense]]] | None = None
        #: Batches run per stage, the probes' apart, and images attacked (:class:`Counters`).
        self.counters = Counters()
        #: Seconds spent per stage (attack, codec, predict) and on probes, for benchmarks and the progress line.
        self.seconds = dict.fromkeys((*STAGES, "probe"), 0.0)

    # --- the plan -----------------------------------------------------------------------------------

    def plan(self, cases: list[Case]) -> None:
        """The cases this engine will evaluate: what they share is kept until the last one has it."""
        self._needs = {}
        for case in cases:
            for part in case.parts or (case,):
                self._needs[part] = self._needs_of(part)

    def _needs_of(self, case: Case) -> set[tuple[SourceKey, Defense]]:
        defense = (case.codec, case.quality, case.rounds)
        needs = {(key, defense) for key in self.source_keys(case)}
        if case.attack is not None and (self.soundness == "thorough" or case.thorough):
            needs |= {(key, defense) for key in self.source_keys(case, steps=2 * case.attack.steps)}
        return needs

    def _needed(self, key: AdvKey | RoundKey) -> bool:
        """Whether a pending planned case will read (chunks of) ``key``."""
        if self._needs is None:
            return True
        source = key if isinstance(key, AdvKey) else key.source
        for needs in self._needs.values():
            for src, (codec, quality, rounds) in needs:
                if src != source:
                    continue
                if isinstance(key, AdvKey) or (CodecRef(codec, quality) == key.codec and rounds > key.round):
                    return True
        return False

    def _done(self, case: Case) -> None:
        """``case`` has its outcome: drop what no pending case needs any more."""
        if self._needs is None:
            return
        self._needs.pop(case, None)
        for stored in self.store.keys():
            if isinstance(stored, Chunk) and not self._needed(stored.key):
                self.store.discard(stored)

    # --- cells ------------------------------------------------------------------------------------

    def evaluate(self, case: Case) -> Result:
        """Accuracy of ``model`` on the dataset under ``case``, with bpp, PSNR, diagnostics and time spent."""
        if self._needs is not None:
            self._needs.pop(case, None)  # what this cell computes itself is not a reason to keep anything
        try:
            return self._worst(case) if case.parts else self._cell(case)
        finally:
            self._done(case)

    def _cell(self, case: Case) -> Result:
        start = time.perf_counter()
        spec = case.attack if case.threat.attacked else None
        if spec is not None:
            self._check_eot(case)
        keys = self.source_keys(case)
        outcomes = [self.outcome(key, case.codec, case.quality, case.rounds) for key in keys]
        if self.gallery is not None:
            self.gallery.link(case.id, keys, (case.codec, case.quality, case.rounds))
        kept = worst_of(outcomes)
        median_l2 = None
        if spec is not None and spec.min_norm:
            # The usual count for minimum-norm attacks: an image the pipeline still gets right
            # needs an infinite perturbation, so the median is infinite (None) unless most are fooled.
            median = float(self.norms(keys[0]).masked_fill(kept.correct, math.inf).median())
            median_l2 = median if math.isfinite(median) else None
        bpp = None if kept.bpp is None or bool(torch.isnan(kept.bpp).all()) else float(kept.bpp.mean())
        return Result.from_correct(
            kept.correct.tolist(),
            case_id=case.id, codec=case.codec, quality=case.quality, rounds=case.rounds, threat=case.threat,
            spec=spec, bpp=bpp, psnr=None if kept.psnr is None else float(kept.psnr.mean()),
            seconds=time.perf_counter() - start, ids=list(self.dataset.ids), threshold=case.threshold,
            median_l2=median_l2, diagnostics=Diagnostics() if spec is None else probes.measure(self, case, outcomes),
        )

    def _worst(self, case: Case) -> Result:
        """Per image, right only if right in every part (clean and every attack): robust accuracy."""
        start = time.perf_counter()
        parts = [self.evaluate(p) for p in case.parts]  # reused: their outcomes are kept
        clean = next((r for r in parts if r.threat is Threat.CLEAN), parts[0])
        return Result.from_correct(
            worst_per_image(parts), case_id=case.id, codec=case.codec, quality=case.quality, rounds=case.rounds,
            threat=case.threat, spec=None, bpp=clean.bpp, psnr=clean.psnr, seconds=time.perf_counter() - start,
            ids=list(self.dataset.ids), threshold=case.threshold,
            diagnostics=Diagnostics(cells=tuple(r.case_id for r in parts)))

    def adversarial(self, case: Case) -> list[Tensor]:
        """The case's adversarial images as float [0, 1], one set per gradient path and restart (``source_keys``).

        Assembled from the chunks the session kept; without a plan everything is kept, with
        one a set no pending cell needed is computed again (the same images: seeds are per image).
        """
        return [torch.cat([self.source_chunk(key, a, b) for a, b in self.chunks(key.n)])
                for key in self.source_keys(case) if isinstance(key, AdvKey)]

    def source_keys(self, case: Case, *, steps: int | None = None) -> list[SourceKey]:
        """The images that reach the defense: the clean ones, or one adversarial set per gradient path
        (:func:`~.defended.gradient_paths`: several for adaptive cells) and restart."""
        if not case.threat.attacked or case.attack is None:
            return [CleanKey()]
        spec = case.attack if steps is None else replace(case.attack, steps=steps)
        return [self.adversarial_key(path, case.codec, case.quality, case.rounds, spec, restart=i)
                for path in gradient_paths(case.threat, case.codec, case.rounds) for i in range(spec.restarts)]

    def adversarial_key(self, path: str, codec: str, quality: int | None, rounds: int, spec: AttackSpec, *,
                        restart: int = 0, n: int | None = None) -> AdvKey:
        """The key of restart ``restart`` of ``spec`` through ``path`` on the first ``n`` images.

        Restart 0 is the attack with ``restarts=1``: more restarts only add sets.
        """
        n = len(self.labels) if n is None else n
        once = replace(spec, restarts=1)
        ref, rounds = (None, 1) if path == "bare" else (CodecRef(codec, quality), rounds)
        return AdvKey(path, ref, rounds, n, once, restart)

    # --- outcomes, chunk by chunk --------------------------------------------------------------------

    def chunks(self, n: int) -> list[tuple[int, int]]:
        return [(a, min(n, a + self.chunk_size)) for a in range(0, n, self.chunk_size)]

    def outcome(self, source: SourceKey, codec: str, quality: int | None, rounds: int) -> Outcome:
        """``source`` through ``rounds`` of the real ``codec`` and the classifier, per image; computed once."""
        ref = None if codec == "identity" else CodecRef(codec, quality)
        key = OutcomeKey(source, ref, rounds if ref else 1, self.amp)
        if key in self._outcomes:
            return self._outcomes[key]
        hit = self.store.get(key, self.address(key))
        if hit is not None:
            self._outcomes[key] = Outcome.from_tuple(hit)
            return self._outcomes[key]
        n = len(self.labels) if isinstance(source, CleanKey) else source.n
        parts = []
        for a, b in self.chunks(n):
            x, bpp = self.source_chunk(source, a, b), None
            pixels = x
            if ref is not None:
                for k in range(1, rounds + 1):
                    x, bpp = self.round_chunk(RoundKey(source, ref, k), a, b, x)
            predicted = self.predict(x)
            correct = predicted == self.labels[a:b]
            psnr = None if ref is None else psnr_per_image(x, self.dataset.pixels(a, b))
            if self.gallery is not None and not self._probe_depth:
                self.gallery.take(source, (codec, quality, rounds), a, pixels, x, predicted, bpp, psnr)
            parts.append(Outcome(correct, bpp, psnr))
        outcome = Outcome.cat(parts)
        self._outcomes[key] = outcome
        if self.store.disk is not None:  # only the disk layer: the outcome itself lives in _outcomes
            self.store.disk.put(self.address(key), outcome.as_tuple(), label=repr(key))
        return outcome

    def source_chunk(self, source: SourceKey, a: int, b: int) -> Tensor:
        """Images ``a:b`` of ``source`` as float [0, 1]: clean pixels, or the attack's (run once per image)."""
        if isinstance(source, CleanKey):
            return self.dataset.pixels(a, b)
        chunk = Chunk(source, a, b)
        hit = self.store.get(chunk, self.address(chunk))
        if hit is not None:
            return hit[0]
        adv = self.attack(self.target(source.path, *_codec_of(source)), source.spec, source, a, b)
        self._keep(chunk, (adv,))
        return adv

    def round_chunk(self, key: RoundKey, a: int, b: int, previous: Tensor) -> tuple[Tensor, Tensor]:
        """Images ``a:b`` after round ``key.round`` of the real codec (from ``previous``, round k-1)."""
        chunk = Chunk(key, a, b)
        hit = self.store.get(chunk, self.address(chunk))
        if hit is not None:
            pixels, bpp = hit
            return (pixels.float().div(255) if pixels.dtype == torch.uint8 else pixels), bpp
        x, bpp = self.roundtrip(self.codec(key.codec.name, key.codec.quality), previous, key=chunk)
        self._keep(chunk, (_as_uint8(x), bpp))
        return x, bpp

    def _keep(self, chunk: Chunk, value: tuple[Tensor, ...]) -> None:
        """Store ``chunk`` for the session while a pending cell needs it; on the cache dir (if any) always."""
        address = self.address(chunk)
        if self._needed(chunk.key):
            self.store.put(chunk, value, address)
        elif address is not None:
            self.store.disk.put(address, value, label=repr(chunk))

    def norms(self, source: AdvKey) -> Tensor:
        """Per image, the L2 norm of ``source``'s perturbation (for minimum-norm attacks)."""
        key = NormKey(source)
        hit = self.store.get(key, self.address(key))
        if hit is not None:
            return hit[0]
        norms = torch.cat([(self.source_chunk(source, a, b) - self.dataset.pixels(a, b)).flatten(1).double()
                           .norm(dim=1) for a, b in self.chunks(source.n)])
        self.store.put(key, (norms,), self.address(key))
        return norms

    # --- the work -------------------------------------------------------------------------------------

    def codec(self, name: str, quality: int | None) -> Codec:
        """The codec ``name`` at ``quality`` on the engine's device, built once."""
        ref = CodecRef(name, quality)
        if ref not in self._codecs:
            self._codecs[ref] = get_codec(name, quality, device=self.device, weights_dir=self.weights_dir,
                                          offline=self.offline)
        return self._codecs[ref]

    def target(self, path: str, codec: str, quality: int | None, rounds: int) -> nn.Module:
        """The module an attack on ``path`` sees: the bare model or the model behind the defense."""
        if path == "bare":
            return self.model
        return Defended(self.model, self.codec(codec, quality), rounds, path)

    def attack(self, target: nn.Module, spec: AttackSpec, key: AdvKey, a: int, b: int) -> Tensor:
        """Run ``spec`` against ``target`` on images ``a:b``, batch by batch.

        Random starts are drawn per image (:meth:`image_seeds`); each batch also runs under
        its own seed inside ``fork_rng``, and must come back inside [0, 1] and the eps ball.
        """
        attack = build_attack(target, spec)
        label = self._announce(target, spec, key, a, b)

        def run(start: int, stop: int) -> Tensor:
            xb = self.dataset.pixels(a + start, a + stop).to(self.device)
            yb = self.labels[a + start:a + stop].to(self.device)
            if hasattr(attack, "image_seeds"):
                attack.image_seeds = self.image_seeds(key, a + start, a + stop)
            with self.seeded(key, a + start, a + stop):
                adv = attack(xb, yb).detach()
            check_budget(adv, xb, spec)
            self.count("attack", stop - start)
            return adv.cpu()

        cap = None if hasattr(attack, "image_seeds") else self._batchwise_rng_cap
        out = torch.cat(self.batched("attack", b - a, run, label=label, cap=cap))
        if self.model.training:
            raise HacError(f"the attack on {self.model.name!r} left it in training mode; results would be wrong")
        return out

    def _announce(self, target: nn.Module, spec: AttackSpec, key: AdvKey, a: int, b: int) -> str:
        """Before the first chunk of an attack through a defense: its planned codec passes and an estimate."""
        batch = self.batch_sizes["attack"]
        if (not isinstance(target, Defended) or a or self._probe_depth
                or not worth_planning(spec, key.n, key.rounds, batch)):
            return "attack"
        stop = a + min(batch, b - a)
        plan = plan_attack(target, spec, key.n, key.rounds, self.dataset.pixels(a, stop).to(self.device),
                           self.labels[a:stop].to(self.device))
        if not plan.worth_saying:
            return "attack"
        label = f"attack ({plan.text()})"
        if self.progress is not None:
            self.progress(label, 0, b - a)
        return label

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

    def predict(self, images: Tensor) -> Tensor:
        """The classifier's predicted class of each image, batched, under inference mode (bf16 with ``amp``)."""

        def run(start: int, stop: int) -> Tensor:
            autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()
            with torch.inference_mode(), autocast:
                logits = self.model(images[start:stop].to(self.device)).float()
            check_logits(self.model, logits)
            self.count("predict")
            return logits.argmax(1).cpu()

        return torch.cat(self.batched("predict", len(images), run))

    # --- batches, seeds, counts ---------------------------------------------------------------------

    def batched(self, stage: str, n: int, fn: Callable[[int, int], object], *, label: str | None = None,
                cap: int | None = None) -> list:
        """``fn(start, stop)`` over ``range(n)`` in batches of the stage's size, at most ``cap``.

        ``label`` names the stage in progress.

        On CUDA out-of-memory the failed batch is halved and the run carries on
        from it: finished batches are kept, later batches use the smaller size.
        """
        outs, start, began = [], 0, time.perf_counter()
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
                start = stop
                if self.progress is not None:
                    self.progress(label or stage, start, n)
        finally:
            self.seconds["probe" if self._probe_depth else stage] += time.perf_counter() - began
        return outs

    def image_seeds(self, key: AdvKey, start: int, stop: int) -> list[int]:
        """One seed per image of ``start:stop`` from (seed, attack with restart, image id)."""
        return [_seed(f"{self.seed}|{key.run}|{key.path}|{key.codec}|{key.rounds}|{image}")
                for image in self.dataset.ids[start:stop]]

    @contextmanager
    def seeded(self, key: Key, start: int, stop: int) -> Iterator[None]:
        """Seed torch for one batch from (seed, ``key``, its images); the caller's RNG state comes back after."""
        devices = list(range(torch.cuda.device_count())) if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            seed = _seed(f"{self.seed}|{key.parts()}|{start}:{stop}")
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

    def count(self, stage: str, images: int = 0) -> None:
        if self._probe_depth:
            self.counters.probe_batches += 1
            return
        self.counters.count(stage, images)

    def close(self) -> None:
        """Remove the session's scratch folder."""
        self.store.close()

    def _check_eot(self, case: Case) -> None:
        """EOT over a deterministic defense repeats one gradient (:func:`.cases.check_eot`, with the codec built)."""
        spec = case.attack
        if spec.eot == 1 or case.codec == "identity":
            check_eot(spec, case.threat, case.codec)
            return
        codec = self.codec(case.codec, case.quality)
        check_eot(spec, case.threat, case.codec, stochastic=bool(getattr(codec, "stochastic", False)))

    def _halve(self, stage: str, failed: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if failed <= 1:
            raise HacError("CUDA out of memory even at batch size 1; use a smaller model or --hac-device=cpu")
        self.batch_sizes[stage] = failed // 2
        self.counters.oom_backoffs += 1
        warnings.warn(f"pytest-hac: CUDA out of memory in {stage}; batch size halved to {failed // 2}", stacklevel=3)

    # --- disk addresses -----------------------------------------------------------------------------

    def address(self, key: Key) -> str | None:
        """The disk address of a store key: the key plus the model, data, seed and codec weights it stands for."""
        disk = self.store.disk
        if disk is None:
            return None
        parts = content(key, self._codec_fingerprint)
        base = key.key if isinstance(key, Chunk) else key
        attack = base if isinstance(base, AdvKey) else getattr(base, "source", None)
        if isinstance(attack, AdvKey):  # a user's attack registered under a built-in name is another attack
            parts += (_factory_id(ATTACKS.entry(attack.attack).factory),)
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
        return data_fingerprint(self.dataset.ids, self.dataset.images, self.labels)


def _codec_of(key: AdvKey) -> tuple[str, int | None, int]:
    return ("identity", None, 1) if key.codec is None else (key.codec.name, key.codec.quality, key.rounds)


def _as_uint8(x: Tensor) -> Tensor:
    """8-bit images as uint8 (4x smaller); anything else (a codec that does not quantize) as it is."""
    pixels = x.mul(255).round()
    if torch.equal(pixels.div(255), x):
        return pixels.to(torch.uint8)
    return x


def _label_mismatch(model: Classifier, dataset: Dataset) -> str:
    if dataset.label_space == "folder-order":
        return (f"data set {dataset.name!r} has {len(dataset.class_labels)} class folders named by word, labelled "
                f"0..{len(dataset.class_labels) - 1} in sorted order (torchvision's ImageFolder convention), but model "
                f"{model.name!r} has {model.num_classes} classes"
                + (" (ImageNet's)" if model.label_space == "imagenet" else "")
                + ": give --hac-labels=FILE mapping each folder name to the model's class index (a model trained "
                  "with another class order is yours to map)")
    return (f"model {model.name!r} predicts {model.label_space} classes but data set {dataset.name!r} is labelled "
            f"with {dataset.label_space} classes; pick matching --hac-model and --hac-data (see --hac-list), or map "
            f"folders to the model's classes with --hac-labels=FILE")


def _factory_id(factory: object) -> str:
    return f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', type(factory).__qualname__)}"


def _is_oom(exc: BaseException) -> bool:
    # Some kernels (cuDNN, cuBLAS) report exhausted memory as a plain RuntimeError.
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def mean_psnr(x: Tensor, ref: Tensor) -> float:
    """Mean over images of the PSNR (dB, peak 1.0) of ``x`` against ``ref``."""
    return float(psnr_per_image(x, ref).mean())
