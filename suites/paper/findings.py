"""The paper's three findings, checked on whatever a run measured. Stated plainly when they do not hold."""
from __future__ import annotations

from collections import defaultdict

JPEG = {"jpeg", "jpeg-kornia"}


def _acc(results, **match):
    return [r for r in results if all(getattr(r, k) == v for k, v in match.items())]


def learned_beats_jpeg(results) -> str | None:
    """Under the oblivious attack, a learned codec is at least as accurate as JPEG at comparable (or higher) bpp."""
    obl = [r for r in results if r.threat == "oblivious" and r.rounds == 1 and r.bpp is not None]
    jpeg = [r for r in obl if r.codec in JPEG]
    learned = [r for r in obl if r.codec not in JPEG | {"identity"}]
    if not jpeg or not learned:
        return None
    verdicts = []
    for r in learned:
        same = [j for j in jpeg if j.attack == r.attack and j.eps == r.eps]
        if not same:
            continue
        j = min(same, key=lambda j: abs(j.bpp - r.bpp))
        verdicts.append((r, j, r.accuracy >= j.accuracy))
    if not verdicts:
        return None
    held = sum(v for *_, v in verdicts)
    worst = min(verdicts, key=lambda v: v[0].accuracy - v[1].accuracy)
    return (f"paper finding 'learned >= JPEG at comparable bpp (oblivious)': "
            f"{'holds' if held == len(verdicts) else 'does NOT hold'} in {held}/{len(verdicts)} comparisons "
            f"(weakest: {worst[0].case_id} {worst[0].accuracy:.2f} at {worst[0].bpp:.2f} bpp vs {worst[1].case_id} "
            f"{worst[1].accuracy:.2f} at {worst[1].bpp:.2f} bpp)")


def rounds_help(results) -> str | None:
    """More rounds are at least as accurate as one round under attack."""
    groups = defaultdict(dict)
    for r in results:
        if r.threat != "clean":
            groups[(r.codec, r.quality, r.threat, r.attack, r.eps)][r.rounds] = r
    pairs = [(g[1], g[max(g)]) for g in groups.values() if 1 in g and max(g) > 1]
    if not pairs:
        return None
    held = sum(more.accuracy >= one.accuracy for one, more in pairs)
    return (f"paper finding 'more rounds >= one round (attacked)': {'holds' if held == len(pairs) else 'does NOT hold'}"
            f" in {held}/{len(pairs)} comparisons")


def whitebox_weaker(results) -> str | None:
    """An attacker who differentiates through the codec does at least as well as one who ignores it."""
    index = {(r.codec, r.quality, r.rounds, r.attack, r.eps, r.threat): r for r in results}
    pairs = [(r, index[k]) for r in results if r.threat == "whitebox"
             and (k := (r.codec, r.quality, r.rounds, r.attack, r.eps, "oblivious")) in index]
    if not pairs:
        return None
    held = sum(w.accuracy <= o.accuracy for w, o in pairs)
    return (f"paper finding 'whitebox <= oblivious': {'holds' if held == len(pairs) else 'does NOT hold'} in "
            f"{held}/{len(pairs)} comparisons")


def paper_findings(results) -> list[str]:
    out = [learned_beats_jpeg(results), rounds_help(results), whitebox_weaker(results)]
    return [s for s in out if s]
