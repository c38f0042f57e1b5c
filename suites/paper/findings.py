"""The paper's three findings, checked on whatever a run measured. Stated plainly when they do not hold.

Comparisons use the point estimates; with 20 images a single photo moves an accuracy by 0.05, so read
them beside the intervals in the tables.
"""
from __future__ import annotations

from collections import defaultdict

JPEG = {"jpeg", "jpeg-kornia"}


#: "Comparable bpp": a JPEG cell within this factor of the learned codec's bits per pixel.
BPP_FACTOR = 1.25


def _verdict(name: str, held: int, total: int, detail: str = "") -> str:
    word = "holds" if held == total else "does NOT hold"
    return f"paper finding '{name}': {word} (true in {held} of {total} comparisons{detail})"


def learned_beats_jpeg(results) -> str | None:
    """Under the oblivious attack, a learned codec is at least as accurate as JPEG at comparable bpp."""
    obl = [r for r in results if r.threat == "oblivious" and r.rounds == 1 and r.bpp]
    jpeg = [r for r in obl if r.codec in JPEG]
    learned = [r for r in obl if r.codec not in JPEG | {"identity"}]
    if not jpeg or not learned:
        return None
    verdicts, unmatched = [], []
    for r in learned:
        same = [j for j in jpeg if j.attack == r.attack and j.eps == r.eps
                and 1 / BPP_FACTOR <= j.bpp / r.bpp <= BPP_FACTOR]
        if not same:
            unmatched.append(r.case_id)
            continue
        j = min(same, key=lambda j: abs(j.bpp - r.bpp))
        verdicts.append((r, j, r.accuracy >= j.accuracy))
    if not verdicts:
        return None
    held = sum(v for *_, v in verdicts)
    worst = min(verdicts, key=lambda v: v[0].accuracy - v[1].accuracy)
    detail = (f"; weakest: {worst[0].case_id} {worst[0].accuracy:.2f} at {worst[0].bpp:.2f} bpp vs "
              f"{worst[1].case_id} {worst[1].accuracy:.2f} at {worst[1].bpp:.2f} bpp")
    if unmatched:
        detail += f"; {len(unmatched)} learned cells had no JPEG cell within {BPP_FACTOR}x their bpp"
    return _verdict("learned >= JPEG at comparable bpp (oblivious)", held, len(verdicts), detail)


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
    return _verdict("more rounds >= one round (attacked)", held, len(pairs))


def whitebox_weaker(results) -> str | None:
    """An attacker who differentiates through the codec does at least as well as one who ignores it."""
    index = {(r.codec, r.quality, r.rounds, r.attack, r.eps, r.threat): r for r in results}
    pairs = [(r, index[k]) for r in results if r.threat == "whitebox"
             and (k := (r.codec, r.quality, r.rounds, r.attack, r.eps, "oblivious")) in index]
    if not pairs:
        return None
    held = sum(w.accuracy <= o.accuracy for w, o in pairs)
    return _verdict("whitebox <= oblivious", held, len(pairs))


def paper_findings(results) -> list[str]:
    out = [learned_beats_jpeg(results), rounds_help(results), whitebox_weaker(results)]
    return [s for s in out if s]
