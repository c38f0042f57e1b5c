"""Codecs at the same rate, on a hand-made report with known numbers; and the plot of accuracy against eps."""
import pytest

from pytest_hac.attacks import AttackSpec
from pytest_hac.core.cells.cases import Case
from pytest_hac.core.judge.result import Result
from pytest_hac.report.eps_plot import SERIES_GID, eps_figure, eps_png, panels
from pytest_hac.report.output import write_report
from pytest_hac.report.rate_matched import Measured, at_rate, common_rates, rate_markdown, rate_tables
from pytest_hac.report.schema import Cell, Report

N = 20
IDS = tuple(f"img{i}" for i in range(N))


def cell(codec, quality, bpp, correct, threat="oblivious", eps=4, rounds=1):
    """A cell with ``correct`` of 20 images right; clean cells carry the defense's bpp, attacked ones a different
    (adversarial) bpp, which the comparison must not use."""
    attacked = threat != "clean"
    spec = AttackSpec("pgd", eps / 255, "Linf", 10) if attacked else None
    case = Case(codec, quality, rounds, threat, spec,
                id=f"{codec}-q{quality}-r{rounds}-{threat}" + (f"-pgd-eps{eps}" if attacked else ""))
    r = Result.from_correct([i < correct for i in range(N)], case, ids=IDS, bpp=bpp + (0.37 if attacked else 0.0),
                            psnr=30.0, seconds=1.0)
    return Cell(test=f"t.py::test[{r.case_id}]", result=r)


def report(cells):
    return Report(model="m", dataset="embedded", n=N, device="cpu", seed=0, gate_rule="point", ids=list(IDS),
                  cells=list(cells), complete=True, meta={"versions": {"libjpeg-turbo": "3.2.0", "libwebp": "1.6.0"}})


# jpeg: 0.4 bpp -> 10/20, 1.2 bpp -> 18/20; webp: 0.5 -> 12/20, 1.0 -> 14/20; avif only at 2..3 bpp (no partner)
DEFENSES = [("jpeg", 10, 0.4, 10), ("jpeg", 50, 1.2, 18), ("webp", 20, 0.5, 12), ("webp", 80, 1.0, 14),
            ("avif", 30, 2.0, 15), ("avif", 60, 3.0, 16)]


@pytest.fixture
def known():
    return report([cell(c, q, b, k, "clean") for c, q, b, k in DEFENSES]
                  + [cell(c, q, b, k) for c, q, b, k in DEFENSES])


def test_rates_inside_the_shared_range_interpolated_in_bpp_with_their_neighbours(known):
    tables = {t.title: t for t in rate_tables(known)}
    assert set(tables) == {"clean · rounds 1", "oblivious pgd 4/255 · rounds 1", "worst case · rounds 1"}
    t = tables["oblivious pgd 4/255 · rounds 1"]
    assert t.codecs == ("jpeg", "webp")  # avif (2..3 bpp) reaches no shared rate: no column, nothing extrapolated
    # jpeg and webp share 0.5..1.0 bpp (the clean cells' rates, not the attacked cells' own): grid rates in it
    assert [b for b, _ in t.rows] == [0.5, 0.6, 0.75, 1.0]
    jpeg, webp = (list(col) for col in zip(*(ms for _, ms in t.rows)))
    assert [round(m.accuracy, 6) for m in jpeg] == [0.55, 0.6, 0.675, 0.8]  # 0.5 + (b - 0.4) / 0.8 * 0.4
    assert all(m.interpolated for m in jpeg) and jpeg[0].below.quality == 10 and jpeg[0].above.quality == 50
    assert [round(m.accuracy, 6) for m in webp] == [0.6, 0.62, 0.65, 0.7]
    assert [m.interpolated for m in webp] == [False, True, True, False]  # measured at its own rates
    lo = jpeg[0].below
    assert (lo.bpp, lo.accuracy) == (0.4, 0.5) and lo.ci_low < 0.5 < lo.ci_high


def test_markdown_marks_interpolated_values_and_names_the_encoders(known):
    text = rate_markdown(known)
    assert "never a gate" in text and "Encoders: `avif` libavif (version not recorded) · `jpeg` libjpeg-turbo 3.2.0 " \
                                      "· `webp` libwebp 1.6.0" in text
    row = next(line for line in text.splitlines() if line.startswith("| 0.75 "))
    assert "≈0.68 (interpolated: q10 0.50 [" in row and "@0.40 · q50 0.90 [" in row and "@1.20)" in row
    assert "≈0.65 (interpolated: q20 0.60" in row
    first = next(line for line in text.splitlines() if line.startswith("| 0.5 "))
    assert "0.60 [" in first and "(measured q20)" in first


def test_no_table_without_two_codecs_sharing_a_rate():
    alone = report([cell("jpeg", 10, 0.4, 10, "clean"), cell("jpeg", 50, 1.2, 18, "clean"),
                    cell("tiny-mse", 1, 2.0, 10, "clean"), cell("identity", None, 0.0, 19, "clean")])
    assert rate_tables(alone) == []


def test_an_overlap_between_grid_rates_gets_its_middle():
    assert common_rates([(0.41, 0.44), (0.42, 0.48)]) == [0.43]
    assert common_rates([(0.1, 0.2), (0.3, 0.4)]) == []
    points = [Measured(1, 0.2, 0.4, 0.2, 0.6), Measured(2, 0.6, 0.8, 0.6, 0.9)]
    assert at_rate(points, 0.4).accuracy == pytest.approx(0.6) and at_rate(points, 0.7) is None


def test_eps_plot_only_with_several_eps_per_attack(known, tmp_path):
    assert eps_figure(known) is None  # one eps: nothing to plot
    several = report(known.cells + [cell(c, q, b, k - 4, eps=8) for c, q, b, k in DEFENSES[:2]])
    (found,) = panels(several).values()
    assert [r.spec.eps * 255 if r.spec else 0 for r in found["jpeg q10 r1"]] == pytest.approx([0, 4, 8])
    fig = eps_figure(several)
    lines = {line.get_gid().removeprefix(SERIES_GID): line for ax in fig.axes for line in ax.get_lines()
             if (line.get_gid() or "").startswith(SERIES_GID)}
    assert list(lines["jpeg q10 r1"].get_ydata()) == [0.5, 0.5, 0.3] and list(lines["jpeg q10 r1"].get_xdata()) == [
        0, 4, 8]
    assert "webp q20 r1" in lines  # one eps only, still shown beside the others
    paths = write_report(several, tmp_path, plot=True)
    assert paths["eps_png"].read_bytes()[:4] == b"\x89PNG" and paths["eps_png"].name == "m.eps.png"
    md = paths["md"].read_text()
    assert "![accuracy against eps](m.eps.png)" in md and "## Codecs at the same rate" in md
    html = paths["html"].read_text()
    assert "<h2 id='eps-plot'>" in html and "id='rate-matched'" in html and "class=interpolated" in html
    assert eps_png(known) is None
