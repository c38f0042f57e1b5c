"""The paper suite's findings: stated as holding only when every comparison agrees, like with like."""
import importlib.util
from pathlib import Path

from pytest_hac.attacks import AttackSpec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.judge.result import Result

SPEC = importlib.util.spec_from_file_location("paper_findings", Path(__file__).parents[2] / "suites/paper/findings.py")
findings = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(findings)


def cell(codec, threat, acc, *, bpp=1.0, rounds=1, quality=1, eps=4 / 255):
    correct = [True] * round(acc * 20) + [False] * (20 - round(acc * 20))
    spec = None if threat == "clean" else AttackSpec("pgd", eps)
    case = Case(codec, quality, rounds, threat, spec, id=f"{codec}-q{quality}-r{rounds}-{threat}")
    return Result.from_correct(correct, case, bpp=bpp, psnr=30.0, seconds=0.0)


def test_learned_vs_jpeg_compares_only_at_comparable_bpp():
    results = [cell("tiny-hific", "oblivious", 0.6, bpp=0.7), cell("jpeg", "oblivious", 0.5, bpp=0.72, quality=20),
               cell("jpeg", "oblivious", 0.9, bpp=2.0, quality=90)]  # 2.0 bpp is not comparable to 0.7
    text = findings.learned_beats_jpeg(results)
    assert text.startswith("paper finding 'learned >= JPEG at comparable bpp (oblivious)': holds (true in 1 of 1")
    results.append(cell("tiny-mse", "oblivious", 0.3, bpp=0.68, quality=2))
    assert "does NOT hold (true in 1 of 2" in findings.learned_beats_jpeg(results)
    assert "tiny-mse-q2-r1-oblivious 0.30" in findings.learned_beats_jpeg(results)


def test_learned_without_a_comparable_jpeg_is_said_not_counted():
    results = [cell("tiny-mse", "oblivious", 0.2, bpp=0.25), cell("tiny-mse", "oblivious", 0.6, bpp=1.0, quality=3),
               cell("jpeg", "oblivious", 0.5, bpp=1.1)]
    text = findings.learned_beats_jpeg(results)
    assert "holds (true in 1 of 1" in text and "1 learned cells had no JPEG cell within 1.25x" in text


def test_rounds_and_whitebox_findings():
    rounds = [cell("jpeg", "oblivious", 0.4, rounds=1), cell("jpeg", "oblivious", 0.5, rounds=3)]
    assert "holds (true in 1 of 1" in findings.rounds_help(rounds)
    rounds[1] = cell("jpeg", "oblivious", 0.3, rounds=3)
    assert "does NOT hold (true in 0 of 1" in findings.rounds_help(rounds)
    pair = [cell("jpeg", "oblivious", 0.4), cell("jpeg", "whitebox", 0.6)]
    assert "'whitebox <= oblivious': does NOT hold" in findings.whitebox_weaker(pair)
    assert findings.paper_findings([cell("jpeg", "clean", 0.9)]) == []
