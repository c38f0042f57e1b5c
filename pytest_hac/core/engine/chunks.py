"""Per-image outcomes of source images through a defense, chunk by chunk, each computed once.

A source (clean pixels or an adversarial set) is walked ``chunk_size`` images at a time: its
chunk, each real codec round from the previous one, the classifier; of each image only its
:class:`~.outcome.Outcome` (correct, bits per pixel, PSNR) is kept. Adversarial chunks (float32)
and codec rounds (uint8, exactly the 8-bit images a codec decodes to) are stored under
:class:`~.keys.Chunk` keys only while a pending planned case needs them (:class:`.KeepPlan`);
the store spills what memory cannot hold instead of recomputing it.

What pending cases still need: a chunk is kept in the store only while a planned case will read it.

:meth:`KeepPlan.plan` takes the cases a session will evaluate; for each it notes the (source
images, defense) pairs it reads. An oblivious attack's chunks are kept until every defense's
oblivious cell has its outcome, a codec's round k while a cell with more rounds is pending; once a
case is done, what no pending case needs is dropped. Without a plan (plain Python) everything
reusable is kept, within the budget, spilling to scratch.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ...data import Dataset
from ...io.cache import Store
from ..cells.cases import Case
from ..cells.defense import Defense
from .batches import Batches
from .gallery import Gallery
from .keys import (
    Addresses,
    AdvKey,
    Chunk,
    CleanKey,
    GradientKey,
    NormKey,
    OutcomeKey,
    RoundKey,
    SourceKey,
    StandInKey,
    coded,
    defense_of,
    gradient_key,
    source_keys,
)
from .outcome import Outcome, psnr_per_image
from .passes import Passes


class Outcomes:
    """Outcomes, adversarial chunks and codec rounds of one engine, reused through ``store``.

    Args:
        dataset: the evaluation images.
        passes: runs the attacks, codec rounds and predictions.
        store: where chunks live; ``address(key)`` gives their disk address.
        keep: which chunks a pending case still needs.
        chunk_size: images per chunk (a multiple of every stage's batch size).
        amp: whether predictions run under bf16 (part of an outcome's key).
        gallery: thumbnails taken from the tensors computed here (None: none).
    """

    def __init__(self, dataset: Dataset, passes: Passes, store: Store, address: Addresses, keep: KeepPlan, *,
                 chunk_size: int, amp: bool, gallery: Gallery | None) -> None:
        self.dataset = dataset
        self.labels = dataset.labels
        self.passes = passes
        self.batches: Batches = passes.batches
        self.store = store
        self.address = address
        self.keep = keep
        self.chunk_size = chunk_size
        self.amp = amp
        self.gallery = gallery
        self._outcomes: dict[OutcomeKey, Outcome] = {}
        self._cascaded: dict[tuple[tuple[SourceKey, ...], Defense], list[Outcome]] = {}
        self._partial_gradients: dict[GradientKey, dict[int, Tensor]] = {}

    def chunks(self, n: int) -> list[tuple[int, int]]:
        return [(a, min(n, a + self.chunk_size)) for a in range(0, n, self.chunk_size)]

    def outcome(self, source: SourceKey, defense: Defense) -> Outcome:
        """``source`` through the real ``defense`` and the classifier, per image; computed once."""
        ref, rounds = coded(defense)
        key = OutcomeKey(source, ref, rounds, self.amp)
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
            predicted = self.passes.predict(x)
            correct = predicted == self.labels[a:b]
            psnr = None if ref is None else psnr_per_image(x, self.dataset.pixels(a, b))
            if self.gallery is not None and not self.batches.in_probe:
                self.gallery.take(source, defense, a, pixels, x, predicted, bpp, psnr)
            parts.append(Outcome(correct, bpp, psnr))
        outcome = Outcome.cat(parts)
        self._outcomes[key] = outcome
        if self.store.disk is not None:  # only the disk layer: the outcome itself lives in _outcomes
            self.store.disk.put(self.address(key), outcome.as_tuple(), label=repr(key))
        return outcome

    def cascade(self, keys: list[SourceKey], defense: Defense, *, random: bool) -> list[Outcome]:
        """The outcomes of one cell's sets ``keys`` (gradient path x restart, in order) through ``defense``, each set
        attacking only the images every earlier one left correct (:meth:`survivors`); ``random``: the defense is.

        :func:`~.outcome.worst_of` over them is what it is over full sets, image by image. A set attacks every image
        where the cascade cannot apply or would not save work: the first set, a set shared by every defense (the
        bare model's), an attack whose result on an image depends on its batch (not ``AttackInfo.per_image``), a
        random defense (its draws are per batch), a set already known on every image, or one a pending planned
        cell needs on every image (the white-box cell's set is the adaptive cell's ``approximate`` path).
        """
        done = self._cascaded.get((tuple(keys), defense))
        if done is not None:
            return done
        # a cell's sets may begin with another's (the white-box cell's restarts open the adaptive cell's)
        start = max((i for i in range(1, len(keys)) if (tuple(keys[:i]), defense) in self._cascaded), default=0)
        outcomes: list[Outcome] = list(self._cascaded[(tuple(keys[:start]), defense)]) if start else []
        alive = None  # images every earlier set left correct
        for o in outcomes:
            alive = o.correct.clone() if alive is None else alive & o.correct
        for key in keys[start:]:
            subset = (alive is not None and isinstance(key, AdvKey) and key.path != "bare" and not random
                      and key.spec.info.per_image and not self.has(key, defense) and not self.keep.pending(key))
            outcome = self.survivors(key, defense, alive) if subset else self.outcome(key, defense)
            outcomes.append(outcome)
            alive = outcome.correct.clone() if alive is None else alive & outcome.correct
        for i in range(1, len(keys) + 1):  # a few numbers per image, kept like outcomes; every prefix
            self._cascaded.setdefault((tuple(keys[:i]), defense), outcomes[:i])
        return outcomes

    def has(self, source: AdvKey, defense: Defense) -> bool:
        """Whether ``source`` through ``defense`` is already known on every image, or its images are all stored."""
        ref, rounds = coded(defense)
        key = OutcomeKey(source, ref, rounds, self.amp)
        return key in self._outcomes or all(Chunk(source, a, b) in self.store for a, b in self.chunks(source.n))

    def survivors(self, source: AdvKey, defense: Defense, alive: Tensor) -> Outcome:
        """``source`` through ``defense`` attacked and judged on the images ``alive`` marks only (the cascade).

        The others count as correct (this set broke none of them; an earlier set did) with NaN bpp and PSNR,
        so :func:`~.outcome.worst_of` after the earlier sets keeps what it would keep over full sets. Nothing is
        stored: a subset serves this cell alone.
        """
        ref, rounds = coded(defense)
        n = source.n
        correct = torch.ones(n, dtype=torch.bool)
        bpp = psnr = None if ref is None else torch.full((n,), float("nan"), dtype=torch.float64)
        index = alive[:n].nonzero().flatten()
        target = self.passes.target(source.path, defense_of(source))
        for i in range(0, len(index), self.chunk_size):
            at = index[i:i + self.chunk_size]
            x = pixels = self.passes.attack(target, source.spec, source, 0, n, index=at)
            if ref is not None:
                codec = self.passes.codec(ref.name, ref.quality)
                for _ in range(rounds):
                    x, b = self.passes.roundtrip(codec, x)
                bpp[at] = b.to(torch.float64) if b.dtype != torch.float64 else b
                psnr[at] = psnr_per_image(x, self.dataset.images[at].float().div(255))
            predicted = self.passes.predict(x)
            correct[at] = predicted == self.labels[at]
            if self.gallery is not None and not self.batches.in_probe:
                for j, image in enumerate(at.tolist()):
                    self.gallery.take(source, defense, image, pixels[j:j + 1], x[j:j + 1], predicted[j:j + 1],
                                      None if bpp is None else bpp[image:image + 1],
                                      None if psnr is None else psnr[image:image + 1])
        return Outcome(correct, bpp, psnr)

    def source_chunk(self, source: SourceKey, a: int, b: int) -> Tensor:
        """Images ``a:b`` of ``source`` as float [0, 1]: clean pixels, or the attack's (run once per image)."""
        if isinstance(source, CleanKey):
            return self.dataset.pixels(a, b)
        chunk = Chunk(source, a, b)
        hit = self.store.get(chunk, self.address(chunk))
        if hit is not None:
            return hit[0]
        flags: list[Tensor] = []
        adv = self.passes.attack(self.passes.target(source.path, defense_of(source)), source.spec, source, a, b,
                                 clean_gradients=flags)
        self._keep(chunk, (adv,))
        if flags:
            self._clean_gradients(source, a, torch.cat(flags))
        return adv

    def _clean_gradients(self, source: AdvKey, a: int, bad: Tensor) -> None:
        """Zero-gradient flags an attack took at the clean images ``a:a+len(bad)`` (FGSM, BIM): once every image
        of the data set has them, they are the zero-gradient probe's answer on ``source``'s path and defense."""
        key = GradientKey(source.path, source.codec, source.rounds, len(self.labels))
        if source.restart or source.until_broken or source.n != len(self.labels) or key in self.store:
            return
        part = self._partial_gradients.setdefault(key, {})
        part[a] = bad
        if sum(map(len, part.values())) == len(self.labels):
            self.store.put(key, (torch.cat([part[k] for k in sorted(part)]),), self.address(key))
            del self._partial_gradients[key]

    def round_chunk(self, key: RoundKey, a: int, b: int, previous: Tensor) -> tuple[Tensor, Tensor]:
        """Images ``a:b`` after round ``key.round`` of the real codec (from ``previous``, round k-1)."""
        chunk = Chunk(key, a, b)
        hit = self.store.get(chunk, self.address(chunk))
        if hit is not None:
            pixels, bpp = hit
            return (pixels.float().div(255) if pixels.dtype == torch.uint8 else pixels), bpp
        x, bpp = self.passes.roundtrip(self.passes.codec(key.codec.name, key.codec.quality), previous, key=chunk)
        self._keep(chunk, (_as_uint8(x), bpp))
        return x, bpp

    def _keep(self, chunk: Chunk, value: tuple[Tensor, ...]) -> None:
        """Store ``chunk`` for the session while a pending cell needs it; on the cache dir (if any) always."""
        address = self.address(chunk)
        if self.keep.needed(chunk.key):
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

    def zero_gradients(self, path: str, defense: Defense, n: int, start: int = 0) -> Tensor:
        """Per image of ``start:n``: is the input gradient at the clean image through ``path`` all zero or not
        finite? Once; read from an attack that took it on every image (:meth:`_clean_gradients`) where one did."""
        key = gradient_key(path, defense, n, start)
        for known, at in ((key, 0), (gradient_key(path, defense, len(self.labels)), start)):
            hit = self.store.get(known, self.address(known))
            if hit is not None:
                return hit[0][at:at + n - start]
        bad = self.passes.zero_gradients(self.passes.target(path, defense), key)
        self.store.put(key, (bad,), self.address(key))
        return bad


    def stand_in(self, defense: Defense, n: int) -> tuple[Tensor, Tensor]:
        """Per image of the first ``n``: the stand-in's distance from the decoded image (relative) and whether
        predictions through the two differ (:meth:`.passes.Passes.stand_in`). Once (on disk with a cache dir)."""
        ref, rounds = coded(defense)
        key = StandInKey(ref, rounds, n)
        hit = self.store.get(key, self.address(key))
        if hit is not None:
            return hit[0], hit[1]
        relative, differ = self.passes.stand_in(self.passes.codec(ref.name, ref.quality), rounds, n)
        self.store.put(key, (relative, differ), self.address(key))
        return relative, differ


def _as_uint8(x: Tensor) -> Tensor:
    """8-bit images as uint8 (4x smaller); anything else (a codec that does not quantize) as it is."""
    pixels = x.mul(255).round()
    if torch.equal(pixels.div(255), x):
        return pixels.to(torch.uint8)
    return x


Needs = set[tuple[SourceKey, Defense]]


def needs_of(case: Case, n: int, soundness: str) -> Needs:
    """The (source, defense) pairs ``case`` reads on ``n`` images (with ``"thorough"``: its steps_2x rerun too)."""
    defense = case.defense
    needs = {(key, defense) for key in source_keys(case, n)}
    if case.attack is not None and (soundness == "thorough" or case.thorough):
        needs |= {(key, defense) for key in source_keys(case, n, steps=2 * case.attack.steps)}
    return needs


class KeepPlan:
    """The planned, not yet evaluated cases and what each will read; None until :meth:`plan`."""

    def __init__(self) -> None:
        #: (source, defense) pairs that planned, not yet evaluated cases will ask for; None: no plan.
        self._needs: dict[Case, Needs] | None = None

    def plan(self, cases: list[Case], n: int, soundness: str) -> None:
        """The cases the engine will evaluate: what they share is kept until the last one has it."""
        self._needs = {}
        for case in cases:
            for part in case.parts or (case,):
                self._needs[part] = needs_of(part, n, soundness)

    def start(self, case: Case) -> None:
        """``case`` is being evaluated: what it computes itself is not a reason to keep anything."""
        if self._needs is not None:
            self._needs.pop(case, None)

    def needed(self, key: AdvKey | RoundKey) -> bool:
        """Whether a pending planned case will read (chunks of) ``key``."""
        if self._needs is None:
            return True
        source = key if isinstance(key, AdvKey) else key.source
        for needs in self._needs.values():
            for src, defense in needs:
                if src != source:
                    continue
                ref, rounds = coded(defense)
                if isinstance(key, AdvKey) or (ref == key.codec and rounds > key.round):
                    return True
        return False

    def pending(self, key: AdvKey) -> bool:
        """Whether a planned case not yet evaluated reads ``key`` on every image (False without a plan)."""
        return self._needs is not None and self.needed(key)

    def done(self, case: Case, store) -> None:
        """``case`` has its outcome: drop from ``store`` what no pending case needs any more."""
        if self._needs is None:
            return
        self._needs.pop(case, None)
        for stored in store.keys():
            if isinstance(stored, Chunk) and not self.needed(stored.key):
                store.discard(stored)
