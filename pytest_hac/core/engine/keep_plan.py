"""What pending cases still need: a chunk is kept in the store only while a planned case will read it.

:meth:`KeepPlan.plan` takes the cases a session will evaluate; for each it notes the (source
images, defense) pairs it reads. An oblivious attack's chunks are kept until every defense's
oblivious cell has its outcome, a codec's round k while a cell with more rounds is pending; once a
case is done, what no pending case needs is dropped. Without a plan (plain Python) everything
reusable is kept, within the budget, spilling to scratch.
"""
from __future__ import annotations

from ..cells.cases import Case
from ..cells.defense import Defense
from .keys import AdvKey, Chunk, RoundKey, SourceKey
from .sources import coded, source_keys

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
