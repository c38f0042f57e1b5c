"""A cell against its baseline: the comparison on the images both runs share, and the versions that drifted.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...attacks import describe_attack
from .result import Result
from .stats import SIGNIFICANCE_LEVEL as SIGNIFICANCE
from .stats import mcnemar_drop_pvalue


@dataclass(frozen=True)
class Comparison:
    """One cell against the baseline's cell of the same id and attack, on the images both runs share.

    ``baseline`` and ``current`` are accuracies on the ``compared`` shared images (of the
    baseline's ``of``); the p-values are one-sided exact McNemar tests on those pairs.
    A cell that cannot be compared says why in ``why`` (then the numbers are None).
    """

    baseline: float | None = None
    current: float | None = None
    compared: int = 0
    of: int = 0
    p_drop: float | None = None
    p_gain: float | None = None
    regression: bool = False
    why: str | None = None

    @property
    def comparable(self) -> bool:
        return self.why is None

    @property
    def delta_points(self) -> float | None:
        return None if self.baseline is None or self.current is None else 100 * (self.current - self.baseline)


def compare(result: Result, baseline: list[Result], margin_points: float | None = None, *,
            parts: list[Result] | None = None,
            hashes: tuple[list[str] | None, list[str] | None] = (None, None)) -> Comparison | None:
    """Compare with the baseline's cell of the same id, on the images both runs share.

    None when the baseline has no such cell. A cell whose attack differs from the
    baseline's (any parameter) is not comparable: a weakened attack must not show up
    as an improvement; a worst cell is comparable only when it covers the same cells and
    each of its ``parts`` is. Images are shared when their ids and their content (``hashes``:
    the baseline's and this run's per-image hashes, in the order of each run's ids) agree: a
    folder of other photos under the same names is other data. Δ and the one-sided exact
    McNemar p-values use only the shared images, so a run on fewer (or other) images is
    compared like with like.
    """
    old = next((r for r in baseline if r.case_id == result.case_id), None)
    if old is None:
        # ids name the attack's parameters: a weakened attack is another id, but the same defense, threat and
        # attack in the baseline must still see it, as "not comparable", never as a cell without a baseline
        old = next((r for r in baseline if r.defense == result.defense and r.threat == result.threat
                    and r.attack == result.attack and r.spec != result.spec), None)
        if old is None:
            return None
    why = _not_comparable(old, result, baseline, parts)
    if why is not None:
        return Comparison(of=old.n, why=why)
    mine = dict(zip(result.ids, result.correct))
    base_hash, my_hash = hashes
    if base_hash is not None and my_hash is not None:
        theirs, ours = dict(zip(old.ids, base_hash)), dict(zip(result.ids, my_hash))
        other = [i for i in mine if i in theirs and theirs[i] != ours.get(i)]
        if other:
            return Comparison(of=old.n, why=f"different data: {len(other)} of the shared image ids hold other "
                                            f"pixels or labels than in the baseline (e.g. {other[0]!r})")
    shared = [(was, mine[i]) for i, was in zip(old.ids, old.correct) if i in mine]
    if not shared:
        return Comparison(of=old.n, why="no image of this run is in the baseline (other data or subset)")
    before = [a for a, _ in shared]
    after = [b for _, b in shared]
    base_acc, cur_acc = sum(before) / len(shared), sum(after) / len(shared)
    p_drop, p_gain = mcnemar_drop_pvalue(before, after), mcnemar_drop_pvalue(after, before)
    regression = (margin_points is not None and p_drop < SIGNIFICANCE
                  and 100 * (base_acc - cur_acc) > margin_points)
    return Comparison(baseline=base_acc, current=cur_acc, compared=len(shared), of=old.n, p_drop=p_drop,
                      p_gain=p_gain, regression=regression)


def _not_comparable(old: Result, new: Result, baseline: list[Result], parts: list[Result] | None) -> str | None:
    if old.spec != new.spec:
        return (f"the attack differs: baseline {describe_attack(old.spec)}, this run "
                f"{describe_attack(new.spec)}")
    if not new.threat.info.combines:
        return None
    covered, was = new.diagnostics.cells or (), old.diagnostics.cells or ()
    if sorted(covered) != sorted(was):
        return f"the worst case covers other cells: baseline {sorted(was)}, this run {sorted(covered)}"
    for part in parts or []:
        base_part = next((r for r in baseline if r.case_id == part.case_id), None)
        if base_part is None or base_part.spec != part.spec:
            return f"its part {part.case_id} is not comparable with the baseline's"
    return None


def version_drift(recorded: dict[str, str], versions: dict[str, str]) -> list[str]:
    """Packages whose version differs from the one ``recorded`` with a baseline: ``torch 2.1 -> 2.2``."""
    old = recorded
    return [f"{k} {old[k]} -> {v}" for k, v in versions.items() if k in old and old[k] != v]
