"""reports/<model>.html: one self-contained page (summary, matrix, plot, cells, gallery), checked in a real browser.

The browser test runs headless Chromium (installed by .ci/run from Debian's packages) and is skipped where
there is none.
"""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CELLS = """
import pytest

@pytest.mark.hac(codecs={"jpeg": [50], "identity": []}, threats=["clean", "oblivious"], attack="pgd", eps="8/255",
                 steps=2, min_accuracy={"clean": 0.5, "identity-*-oblivious-*": 0.99})
def test_cells(hac_case, hac_evaluate):
    hac_evaluate(hac_case).assert_at_least(hac_case.threshold)
"""
ARGS = ["--hac-model=tiny-cnn", "--hac-samples=8", "--hac-gallery=2"]


def run_project(directory: Path, *args: str) -> subprocess.CompletedProcess:
    """pytest in a fresh project folder (a subprocess, so a module-scoped fixture can share it)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test_cells.py").write_text(CELLS)
    (directory / "pytest.ini").write_text("[pytest]\n")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *ARGS, *args],
                          cwd=directory, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("page")
    done = run_project(directory)
    assert done.returncode == 1, done.stdout[-3000:]  # the bare model's oblivious cell fails its 0.99 gate
    return directory / "reports" / "tiny-cnn.html"


def test_page_holds_summary_matrix_plot_cells_and_gallery(page):
    text = page.read_text(encoding="utf-8")
    assert 'id="matrix-table"' in text.replace("'", '"') and "<h2 id='gallery'>" in text
    assert "model</b> tiny-cnn" in text and "failed</b> 1" in text
    # the failed cell is marked and links to its row of reasons
    failed = re.search(r"<td class=failed><a href='#(cell-identity-r1-oblivious-pgd-eps8-s2)'>", text)
    assert failed and f"<tr id='{failed.group(1)}' class=failed>" in text
    assert re.search(r"threshold: identity-r1-oblivious-pgd-eps8-s2: accuracy 0\.\d+ .*is below the threshold 0.99",
                     text)
    # self-contained: every image is inline, nothing is fetched, no script
    sources = re.findall(r"src='([^']*)'", text)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert sum(s.startswith("data:image/png") for s in sources) == 1  # the plot
    # gallery: per image the clean photo, 2 decoded (jpeg: bpp and dB), 2 adversarial + 2 perturbations
    assert text.count("alt='clean photo'") == 2 and text.count("alt='perturbation'") == 4
    assert text.count("alt='decoded photo'") == 2 and text.count(" bpp · ") == 2
    assert len(re.findall(r"class='(right|wrong)'", text)) == 8
    assert page.stat().st_size < 2_000_000


def _project(pytester):
    """The project of ``run_project`` as a pytester folder (an in-process run: one process fewer to start)."""
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_cells=CELLS)
    return pytester


def test_gallery_arrives_from_xdist_workers_and_stays_out_of_junit(xdist_run):
    def shown(folder):
        text = (folder / "reports" / "tiny-cnn.html").read_text(encoding="utf-8")
        return {alt: text.count(f"alt='{alt}'") for alt in ("clean photo", "decoded photo", "adversarial photo",
                                                             "perturbation")}

    parallel = shown(xdist_run.parallel)
    assert parallel == shown(xdist_run.serial)  # every worker's pictures reach the controller's page
    assert parallel["clean photo"] == 2 and parallel["perturbation"] > 0 and parallel["decoded photo"] > 0
    junit = (xdist_run.parallel / "junit.xml").read_text()
    assert "hac_accuracy" in junit and "hac_gallery" not in junit


def test_no_gallery_with_zero(pytester):
    result = _project(pytester).runpytest(*ARGS, "--hac-gallery=0", "-k", "jpeg and clean")
    assert result.ret == 0, result.stdout.str()[-3000:]
    text = (pytester.path / "reports" / "tiny-cnn.selection.html").read_text(encoding="utf-8")
    assert "id='matrix-table'" in text and "id='gallery'" not in text and "alt='clean photo'" not in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Appended to a copy of the page (without its script-forbidding policy): counts the images the browser decoded.
PROBE = ("<script>window.addEventListener('load', () => { const all = [...document.images]; const ok = all.filter("
         "i => i.complete && i.naturalWidth > 0).length; document.body.dataset.decoded = ok + '/' + all.length; "
         "});</script></body>")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HOME": str(tmp_path)})


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (.ci/run installs Debian's chromium package)")
def test_page_renders_in_a_headless_browser(page, tmp_path):
    from PIL import Image, ImageStat

    url = page.resolve().as_uri()
    shot = tmp_path / "page.png"
    done = chromium(tmp_path, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1280,2400",
                    url)
    assert shot.is_file(), done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no errors (a blocked request would be a policy violation here)
    image = Image.open(shot).convert("RGB")
    stats = ImageStat.Stat(image)
    assert image.size == (1280, 2400) and max(stats.stddev) > 20  # not a blank page
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 1000  # photos and the plot, not only text on white

    dom = chromium(tmp_path, "--dump-dom", url).stdout
    assert "id=\"matrix-table\"" in dom and dom.count("<img") == page.read_text().count("<img")

    probe = tmp_path / "probe.html"
    text = re.sub(r"<meta http-equiv='Content-Security-Policy'[^>]*>", "", page.read_text(encoding="utf-8"))
    probe.write_text(text.replace("</body>", PROBE), encoding="utf-8")
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()).stdout
    decoded = re.search(r'data-decoded="(\d+)/(\d+)"', dom)
    assert decoded and decoded.group(1) == decoded.group(2) and int(decoded.group(2)) == text.count("<img")


def _several_eps_report():
    """A hand-made report: JPEG and WebP at two rates each, attacked at 2/255 and 8/255 (so the eps plot draws)."""
    from pytest_hac.attacks import AttackSpec
    from pytest_hac.core.cells.cases import Case
    from pytest_hac.core.judge.result import Result
    from pytest_hac.report.schema import Cell, Report

    ids = tuple(f"img{i}" for i in range(10))
    cells = []
    for codec, quality, bpp in (("jpeg", 25, 0.8), ("jpeg", 75, 1.7), ("webp", 40, 0.8), ("webp", 80, 1.5)):
        for eps, right in ((None, 9), (2, 6), (8, 2)):
            spec = None if eps is None else AttackSpec("pgd", eps / 255, "Linf", 10)
            case_id = f"{codec}-q{quality}-r1-" + ("clean" if eps is None else f"oblivious-pgd-eps{eps}")
            case = Case(codec, quality, 1, "clean" if eps is None else "oblivious", spec, id=case_id)
            r = Result.from_correct([i < right for i in range(10)], case, ids=ids, bpp=bpp, psnr=30.0, seconds=1.0)
            cells.append(Cell(test=f"t.py::test[{case_id}]", result=r))
    return Report(model="hand-made", dataset="embedded", n=10, device="cpu", seed=0, gate_rule="point", ids=list(ids),
                  cells=cells, complete=True)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (.ci/run installs Debian's chromium package)")
def test_eps_plot_and_rate_table_render_in_a_headless_browser(tmp_path):
    from pytest_hac.report.output import write_report

    paths = write_report(_several_eps_report(), tmp_path, plot=True)
    text = paths["html"].read_text(encoding="utf-8")
    assert "<h2 id='eps-plot'>" in text and "id='eps-plot-image'" in text and "<table class='rate-matched'>" in text
    probe = tmp_path / "probe.html"
    page_text = re.sub(r"<meta http-equiv='Content-Security-Policy'[^>]*>", "", text)
    probe.write_text(page_text.replace(
        "</body>", PROBE.replace("document.body.dataset.decoded = ok + '/' + all.length;",
                                 "document.body.dataset.decoded = ok + '/' + all.length; const eps = document."
                                 "getElementById('eps-plot-image'); document.body.dataset.eps = eps.naturalWidth + "
                                 "'x' + eps.naturalHeight;")), encoding="utf-8")
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()).stdout
    decoded = re.search(r'data-decoded="(\d+)/(\d+)"', dom)
    assert decoded and decoded.group(1) == decoded.group(2) == "2"  # the bpp plot and the eps plot
    from PIL import Image

    drawn = re.search(r'data-eps="(\d+)x(\d+)"', dom)
    assert drawn and (int(drawn.group(1)), int(drawn.group(2))) == Image.open(paths["eps_png"]).size
    assert "rate-matched" in dom and "interpolated" in dom
