"""The benchmark's smoke run: bench/compare_devices.py --quick ends cleanly and writes sane results."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "compare_devices.py"
SHAPE_NAMES = {"example", "dense", "depthwise", "wav2vec", "tcn", "grouped", "dense-reflect",
               "scale-mid", "scale-n1", "scale-n256"}


@pytest.mark.slow
def test_quick_bench_writes_results(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--scale", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"

    report = json.loads((tmp_path / "results.json").read_text())
    assert report["settings"]["quick"] is True
    assert report["machine"]["cpu_count"] >= 1
    opencl = [c for c in report["columns"] if c["kind"] == "opencl"]
    assert opencl and all(c["name"] and c["platform"] for c in opencl)
    # the multiply-add peak: a CPU core does at least one float32 multiply-add per cycle (> 1 GFLOP/s)
    assert all(c["peak_gflops"] > 1 for c in opencl), [c["peak_gflops"] for c in opencl]

    rows = report["rows"]
    assert {row["shape"] for row in rows} == SHAPE_NAMES
    forward = {row["shape"]: row for row in rows if row["pass"] == "forward"}
    assert set(forward) == SHAPE_NAMES
    # a training step per shape, counted as three convolutions
    steps = {row["shape"]: row for row in rows if row["pass"] == "forward+backward"}
    assert set(steps) == SHAPE_NAMES
    assert all(steps[name]["gflop"] == pytest.approx(3 * forward[name]["gflop"]) for name in SHAPE_NAMES)
    for row in rows:
        assert not row["errors"], row["errors"]
        assert row["gflop"] > 0
        for column in opencl:
            result = row["results"][column["label"]]
            assert result["median_ms"] > 0 and result["gflops"] > 0
            if "max_rel_err" in result:
                assert result["max_rel_err"] < 1e-3, (row["shape"], row["pass"], result["max_rel_err"])

    table = (tmp_path / "results.md").read_text()
    for name in SHAPE_NAMES:
        assert f"| {name} (" in table
    assert "GFLOP/s" in table
    assert all(f"{c['label']} % peak" in table for c in opencl)
    # the scale shapes, timed in shared rounds, each against scale-mid for every column and pass
    shapes_in_order = [row["shape"] for row in rows]
    assert shapes_in_order[-12:] == ["scale-mid"] * 4 + ["scale-n1"] * 4 + ["scale-n256"] * 4
    scale = table.split("Scale: GFLOP/s against scale-mid's")[1]
    for column in opencl:
        for pass_name in ("forward", "backward-data", "backward-weight", "forward+backward"):
            assert f"| {column['label']} | {pass_name} | " in scale
