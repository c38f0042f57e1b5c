"""``scripts/bench_gpu.py`` keeps working: it runs on CPU at tiny sizes and writes its table as JSON."""
import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_gpu.py"


def test_bench_gpu_runs_on_cpu_at_tiny_sizes(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--device", "cpu", "--size", "32", "--batch", "1", "--json", str(tmp_path / "b.json")])
    assert json.loads((tmp_path / "b.json").read_text()) == out
    values = {r["measure"]: r["value"] for r in out["rows"]}
    for name in ("resnet50", "vit_b_16"):
        assert values[f"PGD step {name} 32px"] > 0 and values[f"PGD step {name} 32px bf16"] > 0
    assert values["tiny-hific q2 fast path 32px"] > 0 and values["tiny-hific q2 round trip 32px"] > 0
    assert values["JPEG q50 round trip PIL 32px"] > 0
    assert values["OOM back-off batch"] == "n/a (no CUDA)"
    table = capsys.readouterr().out
    assert "tiny-hific q2 fast path" in table and "measure" in table
