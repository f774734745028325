"""The benchmark: its smoke run (bench/compare_devices.py --quick ends cleanly and writes sane results), its
sampled layers, and the rules that decide what it may print (peak shares, spread flags, load warnings)."""

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "compare_devices.py"
SHAPE_NAMES = {"example", "dense", "depthwise", "wav2vec", "tcn", "grouped", "dense-reflect", "strided", "strided4",
               "multiplier", "filterbank", "mid", "batch1", "pointwise", "scale-mid", "scale-n1", "scale-n256"}


def load_bench():
    spec = importlib.util.spec_from_file_location("compare_devices", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = load_bench()


@pytest.mark.slow
def test_quick_bench_writes_results(tmp_path):
    # one timed round: what is checked here is that every shape runs and agrees with torch, not its speed
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--rounds", "1", "--scale", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"

    report = json.loads((tmp_path / "results.json").read_text())
    assert report["settings"]["quick"] is True
    assert report["machine"]["cpu_count"] >= 1
    opencl = [c for c in report["columns"] if c["kind"] == "opencl"]
    assert opencl and all(c["name"] and c["platform"] for c in opencl)
    # the multiply-add peak: a CPU core does at least one float32 multiply-add per cycle (> 1 GFLOP/s)
    assert all(c["peak_gflops"] > 1 for c in opencl), [c["peak_gflops"] for c in opencl]
    # the load is sampled through the run, and what it warns about is recorded
    assert len(report["load"]["samples"]) >= 2 and isinstance(report["warnings"], list)

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
        # peaks measured before the first round and after each, for every device a column is held against
        rounds = report["settings"]["rounds"]
        assert all(len(p["between_rounds_gflops"]) == rounds + 1 for p in row["peaks"].values()), row["peaks"]
        for column in opencl:
            result = row["results"][column["label"]]
            assert result["median_ms"] > 0 and result["gflops"] > 0
            assert result["p25_ms"] <= result["median_ms"] <= result["p75_ms"]
            assert result["share_of_peak"] is None or 0 < result["share_of_peak"] <= 1
            if "max_rel_err" in result:
                assert result["max_rel_err"] < 1e-3, (row["shape"], row["pass"], result["max_rel_err"])

    table = (tmp_path / "results.md").read_text()
    for name in SHAPE_NAMES:
        assert f"| {name} (" in table
    assert "GFLOP/s" in table
    assert all(f"{c['label']} % peak" in table and f"{c['label']} IQR ms" in table for c in opencl)
    # the scale shapes, timed in shared rounds, each against scale-mid for every column and pass
    shapes_in_order = [row["shape"] for row in rows]
    assert shapes_in_order[-12:] == ["scale-mid"] * 4 + ["scale-n1"] * 4 + ["scale-n256"] * 4
    scale = table.split("Scale: GFLOP/s against scale-mid's")[1]
    for column in opencl:
        for pass_name in ("forward", "backward-data", "backward-weight", "forward+backward"):
            assert f"| {column['label']} | {pass_name} | " in scale


# --- layers ---------------------------------------------------------------------------------------

def torch_output_shape(shape):
    """What torch makes of the layer, on the meta device (no arithmetic): it raises for an invalid one."""
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv1d(shape.c_in, shape.c_out, shape.k, stride=shape.stride, padding=shape.padding,
                           dilation=shape.dilation, groups=shape.groups, padding_mode=shape.padding_mode,
                           device="meta")
    return tuple(conv(torch.empty(shape.n, shape.c_in, shape.length, device="meta")).shape)


NAMED = bench.SHAPES + bench.SCALE_SHAPES


@pytest.mark.parametrize("shape", NAMED + tuple(bench.shrink(s) for s in NAMED),
                         ids=[s.name for s in NAMED] + [f"quick-{s.name}" for s in NAMED])
def test_named_shapes_are_torch_layers(shape):
    assert torch_output_shape(shape) == (shape.n, shape.c_out, shape.length_out)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")
@pytest.mark.parametrize("seed", [0, 1, 7])
def test_random_layers_are_valid_torch_layers_within_caps(seed):
    shapes = bench.random_shapes(40, seed)
    assert [s.name for s in shapes] == [f"random-{i:02d}" for i in range(1, 41)]
    for shape in shapes + [bench.shrink(s) for s in shapes]:
        assert shape.length_out >= 1, shape
        assert torch_output_shape(shape) == (shape.n, shape.c_out, shape.length_out), shape
    for shape in shapes:
        assert 1 <= shape.c_in <= 1024 and 1 <= shape.c_out <= 1024, shape
        assert 1 <= shape.k <= 512 and 1 <= shape.stride <= 4 and 1 <= shape.dilation <= 8, shape
        assert shape.flops <= bench.RANDOM_GFLOP[1] * 1e9, shape
        assert 4 * shape.n * (shape.c_in * shape.length + shape.c_out * shape.length_out) <= bench.RANDOM_MAX_BYTES
    # the families: dense, grouped, depthwise with and without a multiplier, long kernels, strides
    assert any(s.groups == 1 and s.c_in > 1 for s in shapes)
    assert any(1 < s.groups < s.c_in for s in shapes)
    assert any(s.groups == s.c_in > 1 and s.c_out > s.c_in for s in shapes)
    assert any(s.k > 64 for s in shapes) and any(s.stride > 1 for s in shapes)


def test_random_layers_repeat_with_their_seed():
    assert bench.random_shapes(12, 3) == bench.random_shapes(12, 3)
    assert bench.random_shapes(12, 3) != bench.random_shapes(12, 4)
    # a longer draw starts with the shorter one
    assert bench.random_shapes(20, 3)[:12] == bench.random_shapes(12, 3)


def test_random_replaces_the_named_shapes_unless_named():
    only_random = bench.pick_shapes(bench.parse_args(["--random", "3", "--seed", "2"]))
    assert [s.name for s in only_random] == ["random-01", "random-02", "random-03"]
    both = bench.pick_shapes(bench.parse_args(["--random", "2", "--shapes", "dense,strided"]))
    assert [s.name for s in both] == ["dense", "strided", "random-01", "random-02"]


# --- peak shares ----------------------------------------------------------------------------------

def test_a_sample_above_the_peaks_beside_it_is_measured_again():
    again = iter([110.0, 130.0])
    peak, measured = bench.held_peak(120.0, [100.0, 90.0], lambda: next(again))
    assert (peak, measured) == (130.0, [110.0, 130.0])
    assert bench.share_of_peak(120.0, peak) == pytest.approx(120 / 130)


def test_a_sample_that_still_beats_the_peak_gets_no_share_and_a_flag():
    peak, measured = bench.held_peak(120.0, [100.0, 90.0], lambda: 105.0)
    assert peak == 105.0 and len(measured) == bench.PEAK_REMEASURES
    assert bench.share_of_peak(120.0, peak) is None
    stats = bench.sample_statistics([0.010, 0.011, 0.012], 1e9, [0.5, None, 0.6])
    assert stats["share_of_peak"] == pytest.approx(0.55)
    assert any("1 of 3 samples beat the peak" in flag for flag in stats["flags"])


def test_no_share_exceeds_the_peak():
    rng = np.random.default_rng(5)
    for _ in range(500):
        gflops = float(rng.uniform(1, 400))
        neighbours = list(rng.uniform(50, 300, 2))
        peak, _ = bench.held_peak(gflops, neighbours, lambda: float(rng.uniform(50, 450)))
        share = bench.share_of_peak(gflops, peak)
        assert share is None or 0 < share <= 1
        assert peak >= max(neighbours)


# --- spread, speedups and their flags -------------------------------------------------------------

def test_median_and_interquartile_range():
    stats = bench.sample_statistics([0.005, 0.001, 0.004, 0.002, 0.003], 3e6, [])
    assert (stats["p25_ms"], stats["median_ms"], stats["p75_ms"]) == pytest.approx((2.0, 3.0, 4.0))
    assert stats["gflops"] == pytest.approx(1.0)
    assert stats["share_of_peak"] is None


@pytest.mark.parametrize("seconds, flagged", [
    ([1.0, 1.5, 1.9], False),
    ([1.0, 1.1, 2.0], False),
    ([1.0, 1.1, 2.1], True),
    ([0.117, 26.0, 26.0], True),
    ([1.0], True),
], ids=["tight", "exactly-2x", "over-2x", "one-fast-outlier", "one-sample"])
def test_a_result_spread_over_twice_is_flagged(seconds, flagged):
    stats = bench.sample_statistics(seconds, 1e9, [])
    assert stats["spread"] == pytest.approx(max(seconds) / min(seconds))
    assert bool(stats["flags"]) is flagged


def synthetic_report(torch_seconds, opencl_seconds):
    """A report with one pocl CPU column and torch-cpu over two named rows, from the bench's own rules."""
    columns = [{"label": "pocl-cpu", "kind": "opencl", "type": "CPU", "name": "cpu", "platform": "PoCL",
                "driver": "1", "peak_gflops": 100.0, "peak_device": "pocl-cpu"},
               {"label": "torch-cpu", "kind": "torch", "torch_device": "cpu", "peak_gflops": 100.0,
                "peak_device": "pocl-cpu"}]
    rows = []
    for name, torch_samples, opencl_samples in zip(("dense", "strided"), torch_seconds, opencl_seconds):
        shape = next(s for s in bench.SHAPES if s.name == name)
        results = {"pocl-cpu": bench.sample_statistics(opencl_samples, shape.flops, []),
                   "torch-cpu": bench.sample_statistics(torch_samples, shape.flops, [])}
        rows.append({"shape": name, "describe": shape.describe(), "pass": "forward", "gflop": shape.flops / 1e9,
                     "results": results, "errors": {}, "skipped": {}, "peaks": {}})
    bench.add_speedups(rows, columns)
    samples = [{"at": "start", "elapsed_s": 0.0, "load_average": [0.1, 0.1, 0.1], "other_cores": None}]
    return {"machine": {"cpu": "cpu", "cpu_count": 2, "platform": "linux", "python": "3", "pyopencl": "1",
                        "clconv": "0"},
            "settings": {"rounds": 3, "warmup": 2, "quick": False}, "load": {"samples": samples}, "warnings": [],
            "columns": columns, "rows": rows, "summaries": bench.speedup_summaries(rows, columns)}


def test_a_speedup_from_a_flagged_result_carries_the_flag():
    # dense: torch's samples spread 222x (the 26 ms median against a 0.117 ms minimum); strided: steady
    report = synthetic_report(torch_seconds=[[0.117e-3, 26e-3, 26e-3], [2e-3, 2e-3, 2.1e-3]],
                              opencl_seconds=[[1e-3, 1e-3, 1e-3], [1e-3, 1e-3, 1.1e-3]])
    dense, strided = report["rows"]
    assert dense["results"]["pocl-cpu"]["speedup_vs"]["torch-cpu"] == pytest.approx(26)
    assert dense["results"]["pocl-cpu"]["speedup_flagged"]["torch-cpu"] is True
    assert strided["results"]["pocl-cpu"]["speedup_flagged"]["torch-cpu"] is False
    table = bench.markdown(report)
    dense_line = next(line for line in table.splitlines() if line.startswith("| dense ("))
    strided_line = next(line for line in table.splitlines() if line.startswith("| strided ("))
    assert "26.00x !" in dense_line and "2.00x |" in strided_line and "!" not in strided_line
    assert "- dense forward torch-cpu: samples spread 222.2x" in table
    # the geometric mean over both rows includes the flagged one, and says so
    mean = next(line for line in table.splitlines() if line.startswith("| named (2, 1 flagged !)"))
    assert f"{math.sqrt(26 * 2):.2f}x !" in mean
    assert "!" in bench.summary(dense) and "!" not in bench.summary(strided)


def test_a_gpu_device_is_compared_with_torch_cuda_as_well():
    labels = ["pocl-cpu", "nvidia-gpu", "torch-cpu", "torch-cuda"]
    gpu = {"label": "nvidia-gpu", "kind": "opencl", "type": "GPU"}
    cpu = {"label": "pocl-cpu", "kind": "opencl", "type": "CPU"}
    assert bench.speedup_references(gpu, labels) == ["torch-cpu", "torch-cuda"]
    assert bench.speedup_references(cpu, labels) == ["torch-cpu"]
    assert bench.speedup_references(gpu, ["nvidia-gpu", "torch-cpu"]) == ["torch-cpu"]
    assert bench.speedup_references({"label": "torch-cuda", "kind": "torch"}, labels) == []


def test_the_torch_cuda_column_runs_through_the_torch_column_code(tmp_path, monkeypatch):
    """torch-cuda, with torch on the CPU standing in for CUDA: the same runners, timing and report."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(bench.TORCH_DEVICES, "torch-cuda", "cpu")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)
    assert bench.main(["--quick", "--shapes", "batch1", "--devices", "0", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "results.json").read_text())
    torch_columns = {c["label"]: c for c in report["columns"] if c["kind"] == "torch"}
    assert set(torch_columns) == {"torch-cpu", "torch-cuda"}
    # the stand-in runs on the CPU, so it is held against the CPU device's peak; the CPU device is compared
    # with torch-cpu only
    assert torch_columns["torch-cuda"]["peak_device"] == torch_columns["torch-cpu"]["peak_device"] is not None
    for row in report["rows"]:
        cuda = row["results"]["torch-cuda"]
        assert cuda["median_ms"] > 0 and cuda["max_rel_err"] < 1e-5
        opencl = next(r for label, r in row["results"].items() if label not in torch_columns)
        assert set(opencl["speedup_vs"]) == {"torch-cpu"}
    assert "| torch-cuda ms |" in (tmp_path / "results.md").read_text()


# --- load -----------------------------------------------------------------------------------------

def load_samples(start, later, other=None):
    samples = [{"at": "start", "elapsed_s": 0.0, "load_average": [start, start, start], "other_cores": None}]
    for i, load in enumerate(later):
        samples.append({"at": f"row {i}", "elapsed_s": 10.0 * (i + 1), "load_average": [load, load, load],
                        "other_cores": None if other is None else other[i]})
    return samples


@pytest.mark.parametrize("samples, expected", [
    (load_samples(0.3, [1.9, 2.2], other=[0.1, 0.2]), []),
    (load_samples(1.2, [2.5, 2.6], other=[0.1, 0.2]), ["at the start exceeds half the 2 cores"]),
    (load_samples(0.3, [2.5, 3.4], other=[0.1, 1.3]), ["other processes kept up to 1.3 of the 2 cores"]),
    (load_samples(1.5, [3.5], other=[1.4]), ["at the start", "up to 1.4 of the 2 cores"]),
    # without /proc/stat's counts: the benchmark keeps the 2 cores busy itself, so a load of 2.9 is its own
    (load_samples(0.3, [2.0, 2.9]), []),
    (load_samples(0.3, [2.0, 3.4]), ["load average up to 3.40 on 2 cores"]),
], ids=["quiet", "busy-start", "busy-later", "busy-throughout", "own-load-only", "load-risen"])
def test_load_warnings(samples, expected):
    warnings = bench.load_warnings(samples, cores=2)
    assert len(warnings) == len(expected), warnings
    for warning, text in zip(warnings, expected):
        assert text in warning


def test_peak_warnings():
    assert bench.peak_warnings({"pocl-cpu": [300.0, 320.0, 290.0]}) == []
    [warning] = bench.peak_warnings({"pocl-cpu": [428.0, 230.0], "gpu": [1000.0, 1010.0]})
    assert "pocl-cpu" in warning and "230" in warning and "428" in warning


def test_load_monitor_records_samples():
    monitor = bench.LoadMonitor()
    monitor.sample("too soon")  # under MIN_LOAD_INTERVAL_S after the start: skipped
    monitor.sample("end", final=True)
    assert [s["at"] for s in monitor.samples] == ["start", "end"]
    assert all(s["other_cores"] is None or s["other_cores"] >= 0 for s in monitor.samples)


PARAMS_BENCH = BENCH.parent / "compare_params.py"


def test_compare_params_times_each_variant_in_its_own_processes():
    # what is checked is that every variant runs in its own processes and is reported, not its speed
    proc = subprocess.run([sys.executable, str(PARAMS_BENCH), "--shape", "2,4,20,6,3,2,1", "--pass", "weight",
                           "--rounds", "2", "--calls", "2", "--warmup", "1", "{}", '{"TILE_CO": 2}'],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("2,4,20,6,3,2,1,1,1 weight, 2 process(es) per variant")
    assert [line.rsplit(": ", 1)[0].strip() for line in lines[1:]] == ["{}", '{"TILE_CO": 2}']
    assert all(len(line.rsplit(": ", 1)[1].split(" ms;")[0].split()) == 2 for line in lines[1:])


@pytest.mark.parametrize("args, message", [
    (["--shape", "1,2,3", "{}"], "expected N,C_IN,L,C_OUT,K"),
    (["--shape", "2,4,20,4,3,0", "{}"], "non-positive stride"),
    (["--shape", "2,4,20,4,3", "TILE_CO=2"], "not JSON"),
    (["--shape", "2,4,20,4,3", "[1]"], "must be a JSON object"),
])
def test_compare_params_rejects_bad_arguments(args, message):
    proc = subprocess.run([sys.executable, str(PARAMS_BENCH), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr
