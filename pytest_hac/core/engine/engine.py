"""Evaluation: every distinct piece of work once, in chunks of images, batched, on the device.

**Memory is bounded by a chunk, not by the data set.** Images are stored as the 8-bit
pixels they were decoded to; a cell walks the data set chunk by chunk (``chunk_size``
images, a multiple of the batch size, set by the memory budget) and keeps of each image
only its *outcome* (:class:`~.outcome.Outcome`: correct or not, bits per pixel, PSNR), a few
numbers per image (:mod:`.chunks`). Tensors a later cell still needs are stored per chunk under
typed keys (:mod:`.keys`): adversarial sets (float32) and codec rounds (uint8, exactly the 8-bit
images a codec decodes to). The store is a memory LRU within the budget that spills what it evicts
to a session scratch folder (and, with ``--hac-cache``, writes through to a disk cache
shared across sessions, at the addresses of :mod:`.keys`), so **no attack runs twice on an
image because memory filled up**.

**What a later cell needs** is known from the plan: :meth:`Engine.plan` takes the cases a
session will evaluate (:class:`.chunks.KeepPlan`). A chunk is stored only while a planned, not yet
evaluated case needs it (an oblivious attack's chunks until every defense's oblivious cell has its
outcome; a codec's round k while a cell with more rounds is pending) and dropped afterwards. Without
a plan (plain Python) everything reusable is kept, within the budget, spilling to scratch.

What is reused, each computed once per session:

* oblivious adversarial examples per attack and restart, shared by every defense (:mod:`.keys`);
* codec outputs per (source images, codec, quality, round), round k computed from round k-1;
* per-image outcomes per (source images, defense): no image is classified twice;
* the soundness probes (:mod:`.probes`), per defense and attack.

What a verdict rests on:

* whitebox and adaptive attacks use the codec's ``approximate`` for gradients only
  (:mod:`.targets`); every cell is evaluated through the real codec;
* ``restarts=R`` runs R seeded restarts, and an adaptive cell runs each restart along
  several gradient paths (BPDA with the codec's approximation, the identity, or the approximation
  in the first round only, and the white-box attack, :mod:`.targets`); an image counts as
  correct only if the evaluated pipeline gets it right on every one (worst case per image), so each
  set after the first attacks only the images every earlier one left correct (the cascade:
  :meth:`.chunks.Outcomes.cascade`; per-image seeds make every image's outcome what it is over full sets);
* attacks are checked, not corrected (:func:`~pytest_hac.attacks.budget.check_budget`);
* random starts are drawn per image, from a seed of (``--hac-seed``, attack, restart, image
  id): an image's adversarial example does not depend on its batch, its chunk, the order
  cells run in or an out-of-memory back-off. Each batch also runs inside
  ``torch.random.fork_rng`` with a seed of its images, for attacks with randomness beyond the
  start (Square, AutoAttack's later parts), and the rest of the run sees the global RNG untouched
  (:class:`.passes.Seeds`).

The passes themselves (attacks, codec round trips, predictions) are :mod:`.passes`, run in batches
with out-of-memory back-off by :mod:`.batches`; the label checks are :mod:`pytest_hac.data.label_checks`.

``Engine(model, dataset).evaluate(case)`` works without pytest.
"""
from __future__ import annotations

import math
import time
from contextlib import AbstractContextManager
from dataclasses import replace

import torch
from torch import Tensor, nn

from ...attacks import AttackSpec, Threat
from ...codecs import Codec
from ...data import Dataset
from ...data.label_checks import check_labels
from ...errors import HacError
from ...io.cache import Store
from ...models import Classifier
from ..cells.cases import Case, check_eot
from ..cells.defense import Defense
from ..judge.diagnostics import Diagnostics
from ..judge.result import Result, worst_per_image
from ..judge.soundness import SOUNDNESS_MODES
from . import probes
from .batches import Batches, Counters, ProgressFn, first_batch_sizes
from .chunks import KeepPlan, Outcomes
from .gallery import Gallery, class_names
from .keys import Addresses, AdvKey, SourceKey, adversarial_key, source_keys
from .outcome import Outcome, psnr_per_image, worst_of
from .passes import Passes, Seeds

__all__ = ["Counters", "Engine", "ProgressFn", "WORKING_COPIES", "mean_psnr"]

#: Float32 copies of a chunk alive at once while a cell works on it (source, a codec round,
#: the classifier's input, the attack's iterates): the chunk size is budget / 2 / (copies x image).
WORKING_COPIES = 6


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
            cell at twice its steps (``diagnostics.steps_2x``).
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
        check_labels(model, dataset)
        if soundness not in SOUNDNESS_MODES:
            raise HacError(f"soundness must be one of {', '.join(SOUNDNESS_MODES)}; got {soundness!r}")
        n = len(self.labels)
        batch_sizes, batchwise_rng_cap = first_batch_sizes(self.model, dataset, self.device, batch_size, memory_mb)
        top = max(batch_sizes.values())  # powers of two: a multiple of it is one of every stage's
        image_bytes = 4 * dataset.images[0].numel()
        per_chunk = max(1, (memory_mb << 20) // 2 // (WORKING_COPIES * image_bytes))
        #: Images per chunk: a multiple of the batch size, so chunks never split a batch.
        self.chunk_size = min(n, max(top, per_chunk // top * top))
        self.seed = seed
        self.amp = amp
        self.weights_dir = weights_dir
        self.store = store if store is not None else Store((memory_mb << 20) // 2)
        self.soundness = soundness
        self.offline = offline
        #: Thumbnails of a few images for the HTML page, taken from the tensors cells compute anyway.
        self.gallery = Gallery(dataset, gallery, seed, class_names(model, dataset)) if gallery > 0 else None
        #: Batch sizes, counters, seconds and progress of every stage (:mod:`.batches`).
        self.batches = Batches(self.device, batch_sizes, progress)
        self.seeds = Seeds(seed, dataset, self.device)
        self.passes = Passes(self.model, dataset, self.batches, self.seeds, amp=amp, weights_dir=weights_dir,
                             offline=offline, batchwise_rng_cap=batchwise_rng_cap)
        #: ``address(key)``: a store key's disk address (:mod:`.keys`).
        self.address = Addresses(self.store, self.model, dataset, seed, self.device, self.passes.codec)
        self.keep = KeepPlan()
        self.outcomes = Outcomes(dataset, self.passes, self.store, self.address, self.keep,
                                 chunk_size=self.chunk_size, amp=amp, gallery=self.gallery)

    # --- what the batch runner holds -------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        """Batches run per stage, the probes' apart, and images attacked (:class:`.batches.Counters`)."""
        return self.batches.counters

    @property
    def seconds(self) -> dict[str, float]:
        """Seconds spent per stage (attack, codec, predict) and on probes."""
        return self.batches.seconds

    @property
    def batch_sizes(self) -> dict[str, int]:
        """Each stage's batch size now (halved after a CUDA out-of-memory error)."""
        return self.batches.batch_sizes

    @property
    def progress(self) -> ProgressFn | None:
        """Called as ``progress(stage, done, total)`` after every batch; may be set at any time."""
        return self.batches.progress

    @progress.setter
    def progress(self, progress: ProgressFn | None) -> None:
        self.batches.progress = progress

    # --- cells ------------------------------------------------------------------------------------

    def plan(self, cases: list[Case]) -> None:
        """The cases this engine will evaluate: what they share is kept until the last one has it."""
        self.keep.plan(cases, len(self.labels), self.soundness)

    def evaluate(self, case: Case) -> Result:
        """Accuracy of ``model`` on the dataset under ``case``, with bpp, PSNR, diagnostics and time spent."""
        self.keep.start(case)  # what this cell computes itself is not a reason to keep anything
        try:
            return self._worst(case) if case.parts else self._cell(case)
        finally:
            self.keep.done(case, self.store)

    def _cell(self, case: Case) -> Result:
        start = time.perf_counter()
        spec = case.attack if case.threat.attacked else None
        if spec is not None:
            self._check_eot(case)
        keys = self.source_keys(case)
        outcomes = self.cascade(case, keys)
        if self.gallery is not None:
            self.gallery.link(case.id, keys, case.defense)
        kept = worst_of(outcomes)
        median_l2 = None
        if spec is not None and spec.min_norm:
            # The usual count for minimum-norm attacks: an image the pipeline still gets right
            # needs an infinite perturbation, so the median is infinite (None) unless most are fooled.
            median = float(self.norms(keys[0]).masked_fill(kept.correct, math.inf).median())
            median_l2 = median if math.isfinite(median) else None
        bpp = None if kept.bpp is None or bool(torch.isnan(kept.bpp).all()) else float(kept.bpp.mean())
        diagnostics = Diagnostics() if spec is None else probes.measure(self, case, outcomes)
        if self.stochastic(case.codec, case.quality):  # say what a number over a random defense averaged
            follows = spec is not None and case.threat.info.informed
            diagnostics = replace(diagnostics, eot_samples=spec.eot if follows else 0)
        return Result.from_correct(
            kept.correct.tolist(), case, bpp=bpp, psnr=None if kept.psnr is None else float(kept.psnr.mean()),
            seconds=time.perf_counter() - start, ids=list(self.dataset.ids), median_l2=median_l2,
            diagnostics=diagnostics,
        )

    def _worst(self, case: Case) -> Result:
        """Per image, right only if right in every part (clean and every attack): robust accuracy."""
        start = time.perf_counter()
        parts = [self.evaluate(p) for p in case.parts]  # reused: their outcomes are kept
        clean = next((r for r in parts if r.threat is Threat.CLEAN), parts[0])
        return Result.from_correct(
            worst_per_image(parts), case, bpp=clean.bpp, psnr=clean.psnr, seconds=time.perf_counter() - start,
            ids=list(self.dataset.ids), diagnostics=Diagnostics(cells=tuple(r.case_id for r in parts)))

    def adversarial(self, case: Case) -> list[Tensor]:
        """The case's adversarial images as float [0, 1], one set per gradient path and restart (``source_keys``).

        Assembled from the chunks the session kept; without a plan everything is kept, with
        one a set no pending cell needed is computed again (the same images: seeds are per image).
        """
        return [torch.cat([self.outcomes.source_chunk(key, a, b) for a, b in self.outcomes.chunks(key.n)])
                for key in self.source_keys(case) if isinstance(key, AdvKey)]

    # --- what cells and probes ask for (:class:`.probes.ProbeEngine`) -------------------------------

    def source_keys(self, case: Case, *, steps: int | None = None) -> list[SourceKey]:
        """The images that reach the defense (:func:`.keys.source_keys`), at ``steps`` if given."""
        return source_keys(case, self.n_images, steps=steps)

    def adversarial_key(self, path: str, defense: Defense, spec: AttackSpec, *, restart: int = 0,
                        n: int | None = None, until_broken: bool = False) -> AdvKey:
        """The key of restart ``restart`` of ``spec`` through ``path`` of ``defense`` on the first ``n`` images
        (default all); ``until_broken``: a probe's attack that stops on an image once it is broken."""
        return adversarial_key(path, defense, spec, self.n_images if n is None else n, restart=restart,
                               until_broken=until_broken)

    def outcome(self, source: SourceKey, defense: Defense) -> Outcome:
        """``source`` through the real ``defense`` and the classifier, per image; computed once."""
        return self.outcomes.outcome(source, defense)

    def cascade(self, case: Case, keys: list[SourceKey]) -> list[Outcome]:
        """The outcomes of ``case``'s sets ``keys`` (gradient path x restart, in order) through its defense, each set
        attacking only the images every earlier one left correct (:meth:`.chunks.Outcomes.cascade`)."""
        defense = case.defense
        return self.outcomes.cascade(keys, defense, random=self.stochastic(defense.codec, defense.quality))

    def norms(self, source: AdvKey) -> Tensor:
        """Per image, the L2 norm of ``source``'s perturbation (for minimum-norm attacks)."""
        return self.outcomes.norms(source)

    def zero_gradients(self, path: str, defense: Defense, n: int | None = None, start: int = 0) -> Tensor:
        """Per image of ``start:n`` (default all): is the input gradient of the cross-entropy through ``path`` of
        ``defense`` at the clean image all zero or not finite? Computed once (stored like any attack)."""
        return self.outcomes.zero_gradients(path, defense, self.n_images if n is None else n, start)

    def stand_in(self, defense: Defense, n: int) -> tuple[Tensor, Tensor]:
        """Per image of the first ``n``: the codec's stand-in's distance from its decoded image (relative) and whether
        predictions through the two differ (:meth:`.passes.Passes.stand_in`). Computed once (stored like any probe)."""
        return self.outcomes.stand_in(defense, n)

    def stochastic(self, codec: str, quality: int | None) -> bool:
        """Whether ``codec`` at ``quality`` declares itself random (checked when built: :mod:`~..codecs.claims`)."""
        return codec != "identity" and bool(self.codec(codec, quality).stochastic)

    @property
    def n_images(self) -> int:
        """Images in the data set."""
        return len(self.labels)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """The shape of one image, (C, H, W)."""
        return tuple(self.dataset.images[0].shape)

    def probing(self) -> AbstractContextManager[None]:
        """Count the work inside as soundness probes, apart from the cells' own."""
        return self.batches.probing()

    # --- codecs and targets -------------------------------------------------------------------------

    def codec(self, name: str, quality: int | None) -> Codec:
        """The codec ``name`` at ``quality`` on the engine's device, built once."""
        return self.passes.codec(name, quality)

    def target(self, path: str, defense: Defense) -> nn.Module:
        """The module an attack on ``path`` sees: the bare model or the model behind ``defense``."""
        return self.passes.target(path, defense)

    def close(self) -> None:
        """Remove the session's scratch folder."""
        self.store.close()

    def _check_eot(self, case: Case) -> None:
        """EOT over a deterministic defense repeats one gradient (:func:`..cells.cases.check_eot`, with the codec
        built)."""
        spec = case.attack
        if spec.eot == 1 or case.codec == "identity":
            check_eot(spec, case.threat, case.codec)
            return
        check_eot(spec, case.threat, case.codec, stochastic=self.stochastic(case.codec, case.quality))


def mean_psnr(x: Tensor, ref: Tensor) -> float:
    """Mean over images of the PSNR (dB, peak 1.0) of ``x`` against ``ref``."""
    return float(psnr_per_image(x, ref).mean())
