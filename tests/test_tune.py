"""The tuner and the tuned-parameter cache: what `python -m clconv.tune` and CLCONV_AUTOTUNE=1 write is
what the library then reads, and a candidate that disagrees with the reference is never stored.

Each test gets its own cache folder (CLCONV_CACHE_DIR) and a short candidate list, so that it compiles a
handful of kernels only.
"""
import json
from dataclasses import asdict, replace

import numpy as np
import pytest

import clconv
from clconv.api import launch
from clconv.api.checks import conv_geometry
from clconv.passes.backward_data import input_gradient_as_forward
from clconv.passes.forward import forward_plan
from clconv.passes.plan import params_key
from clconv import params, tune, tuning_cache
from clconv.params import Pass
from conftest import assert_close
from reference import conv1d_input_grad_ref, conv1d_ref

SHORT_LIST = [{"strategy": "register", "TILE_CO": 2, "TILE_L": 1, "VEC": 4, "WG_L": 1, "WG_CO": 1},
              {"strategy": "register", "TILE_CO": 3, "TILE_L": 2, "VEC": 4, "WG_L": 1, "WG_CO": 1}]


def short_list(pass_name):
    """SHORT_LIST in the pass's own names: the input gradient tiles input channels (TILE_CI, WG_CI)."""
    record = type(params.safe_default(pass_name))
    names = {"TILE_CO": record.ROWS, "WG_CO": record.GROUP_ROWS}
    return [{names.get(k, k): v for k, v in c.items()} for c in SHORT_LIST]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty tuned-parameter cache for this test, forgotten again afterwards."""
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tune, "candidates", lambda pass_name, geo, device_type: short_list(pass_name))
    tuning_cache.reload()
    yield tmp_path
    monkeypatch.undo()
    tuning_cache.reload()  # back to the user's cache, and no plan memoised from this one


def geometry(n=2, c_in=5, length=40, c_out=6, k=3, stride=2, pad=1):
    return conv_geometry((n, c_in, length), (c_out, c_in, k), None, stride, pad, pad, 1, 1)


def test_tuned_entry_is_stored_and_read_back(device, cache_dir, rng):
    geo = geometry()
    best = tune.tune_pass(device, "forward", geo, np.float32)
    assert best in [{**asdict(params.builtin(device, Pass.FORWARD)), **c} for c in SHORT_LIST]
    data = json.loads((cache_dir / "tuned.json").read_text())
    assert data["format"] == tuning_cache.FORMAT_VERSION
    entries = data["devices"][tuning_cache.device_key(device)]
    assert entries[tuning_cache.shape_key_str("forward", params_key(geo, np.float32))] == best
    assert params.lookup(device, Pass.FORWARD, params_key(geo, np.float32)) == replace(params.safe_default(Pass.FORWARD), **best)
    # the library now runs the tuned parameters, and still computes the convolution
    x = rng.uniform(-1, 1, (geo.batch, geo.in_channels, geo.length_in)).astype(np.float32)
    w = rng.uniform(-1, 1, (geo.out_channels, geo.in_channels, geo.kernel_size)).astype(np.float32)
    y = clconv.conv1d(device.to_device(x), device.to_device(w), None, stride=2, padding=1)
    assert_close(y.get(), conv1d_ref(x.astype(np.float64), w.astype(np.float64), None, 2, 1), np.float32)
    plan = forward_plan(device, geo, np.float32, False)
    assert (plan.params.TILE_CO, plan.params.VEC) in [(c["TILE_CO"], c["VEC"]) for c in SHORT_LIST]


@pytest.mark.parametrize("pass_name", ["backward_data", "backward_weight"])
def test_backward_passes_tune(device, cache_dir, pass_name):
    geo = geometry(stride=2)  # strided: the input gradient runs its own kernel
    best = tune.tune_pass(device, pass_name, geo, np.float32)
    rows = type(params.safe_default(pass_name)).ROWS
    assert getattr(params.lookup(device, pass_name, params_key(geo, np.float32)), rows) == best[rows]


def test_input_gradient_run_as_a_forward_tunes_that_forward(device, cache_dir, rng):
    geo = geometry(stride=1)
    forward_geo = input_gradient_as_forward(device, geo, np.float32)
    if forward_geo is None:
        pytest.skip(f"{device.name} runs stride-1 input gradients with their own kernel")
    tune.tune_pass(device, "backward_data", geo, np.float32)
    assert params.has_tuned(device, "backward_data", params_key(geo, np.float32))
    tiles = [(c["TILE_CO"], c["VEC"]) for c in SHORT_LIST]
    tuned = params.lookup(device, "forward", params_key(forward_geo, np.float32))
    assert (tuned.TILE_CO, tuned.VEC) in tiles
    # the input gradient launches that tuned forward, and still computes its gradient
    w = rng.uniform(-1, 1, (geo.out_channels, geo.in_channels, geo.kernel_size)).astype(np.float32)
    dy = rng.uniform(-1, 1, (geo.batch, geo.out_channels, geo.length_out)).astype(np.float32)
    dx = launch.input_gradient(device, geo, device.to_device(dy), device.to_device(w))
    ref = conv1d_input_grad_ref((geo.batch, geo.in_channels, geo.length_in), w.astype(np.float64),
                                dy.astype(np.float64), 1, 1)
    assert_close(dx.get(), ref, np.float32)
    plan = forward_plan(device, forward_geo, np.float32, False)
    assert (plan.params.TILE_CO, plan.params.VEC) in tiles


def test_candidate_that_disagrees_is_refused(device, cache_dir, monkeypatch):
    geo = geometry()
    real_runner = tune._runner

    def runner(device, pass_name, geo, dtype):
        run = real_runner(device, pass_name, geo, dtype)

        def wrong_for_wide_tiles():
            out = run()
            if params.lookup(device, pass_name, params_key(geo, dtype)).TILE_CO == 4:
                out = out + 1  # a candidate whose kernel would compute something else
            return out
        return wrong_for_wide_tiles

    monkeypatch.setattr(tune, "_runner", runner)
    with pytest.raises(RuntimeError, match="disagrees with the reference"):
        tune.tune_pass(device, "forward", geo, np.float32)
    assert not (cache_dir / "tuned.json").exists()


def test_autotune_tunes_a_new_shape_at_first_use(device, cache_dir, monkeypatch, rng):
    monkeypatch.setenv("CLCONV_AUTOTUNE", "1")
    x = rng.uniform(-1, 1, (2, 3, 29)).astype(np.float32)
    w = rng.uniform(-1, 1, (7, 3, 4)).astype(np.float32)
    y = clconv.conv1d(device.to_device(x), device.to_device(w), None, padding=2)
    assert_close(y.get(), conv1d_ref(x.astype(np.float64), w.astype(np.float64), None, 1, 2), np.float32)
    data = json.loads((cache_dir / "tuned.json").read_text())
    keys = data["devices"][tuning_cache.device_key(device)]
    assert any(key.startswith("forward:3,7,1,4,1,1,zeros,float32") for key in keys), sorted(keys)


def test_autotune_tunes_a_stride_1_input_gradient(device, cache_dir, monkeypatch, rng):
    """CLCONV_AUTOTUNE=1 through a whole training step: the input gradient that runs as a forward gets its
    forward tuned, once, and computes its gradient."""
    monkeypatch.setenv("CLCONV_AUTOTUNE", "1")
    m = clconv.Conv1d(3, 5, 3, padding=1, device=device)
    x = rng.uniform(-1, 1, (2, 3, 31)).astype(np.float32)
    dy = rng.uniform(-1, 1, (2, 5, 31)).astype(np.float32)
    m(x)
    dx = m.backward(dy)
    w = np.asarray(m.weight).astype(np.float64)
    assert_close(dx, conv1d_input_grad_ref(x.shape, w, dy.astype(np.float64), 1, 1), np.float32)
    keys = json.loads((cache_dir / "tuned.json").read_text())["devices"][tuning_cache.device_key(device)]
    assert any(key.startswith("backward_data:") for key in keys), sorted(keys)
    generation = tuning_cache.generation()
    m.backward(dy)  # tuned now: nothing more to tune
    assert tuning_cache.generation() == generation


def test_deep_entry_sits_between_builtin_and_override(device, cache_dir, monkeypatch):
    """A built-in "<pass>_deep" entry applies to reductions of STAGE_MIN or more, below overrides."""
    entry = {"*": {"STAGE_MIN": 10, "TILE_CO": 4}, "forward_deep": {"TILE_CO": 7}}
    monkeypatch.setattr(params, "BUILTIN", {device.device_class: entry})
    key = params_key(geometry(), np.float32)
    assert params.lookup(device, "forward", key, depth=9).TILE_CO == 4
    assert params.lookup(device, "forward", key, depth=10).TILE_CO == 7
    assert params.lookup(device, "backward_weight", key, depth=10).TILE_CO == 4
    with params.override(TILE_CO=3):
        assert params.lookup(device, "forward", key, depth=10).TILE_CO == 3
    with params.override(STAGE_MIN=None):
        assert params.lookup(device, "forward", key, depth=10).TILE_CO == 4


def test_candidates_cover_the_special_kernels_where_they_apply():
    """Depthwise sample blocks only for depthwise stride-1 forwards of an even batch, realigned runs only for
    shallow forwards; every other register candidate times the general kernels."""
    def with_key(cands, key):
        return [c for c in cands if c.get(key) is not None]

    depthwise = conv_geometry((4, 8, 100), (8, 1, 31), None, 1, 15, 15, 1, 8)
    odd_batch = conv_geometry((3, 8, 100), (8, 1, 31), None, 1, 15, 15, 1, 8)
    shallow = conv_geometry((2, 1, 400), (16, 1, 10), None, 5, 0, 0, 1, 1)
    dense = geometry(c_in=16, c_out=16)
    assert with_key(tune.candidates("forward", depthwise), "DW_ROWS")
    assert not with_key(tune.candidates("backward_data", depthwise), "DW_ROWS")
    assert not with_key(tune.candidates("forward", odd_batch), "DW_ROWS")
    assert not with_key(tune.candidates("forward", dense), "DW_ROWS")
    assert with_key(tune.candidates("forward", shallow), "ALIGNED_TAPS")
    assert not with_key(tune.candidates("backward_data", shallow), "ALIGNED_TAPS")
    assert not with_key(tune.candidates("forward", dense), "ALIGNED_TAPS")
    general = [c for c in tune.candidates("forward", dense) if c["strategy"] == "register"]
    assert general and all(c["DW_ROWS"] is None and c["ALIGNED_TAPS"] is None for c in general)


def test_gpus_search_the_local_tile_space():
    """A GPU tries local tiles of every micro-tile, work-group and chunk size the table lists (LOCAL_VEC,
    TILE_CI and the other local parameters included); a CPU a couple of them."""
    dense = geometry(c_in=16, c_out=16)
    for pass_name, keys in (("forward", {"LOCAL_VEC", "TILE_L", "WG_L", "WG_CO", "CI_TILE"}),
                            ("backward_weight", {"TILE_CI", "TILE_K", "WG_L", "WG_CO", "LB", "RUN"})):
        gpu = [c for c in tune.candidates(pass_name, dense, "GPU") if c["strategy"] == "local"]
        cpu = [c for c in tune.candidates(pass_name, dense, "CPU") if c["strategy"] == "local"]
        assert 0 < len(cpu) < len(gpu)
        assert all(len({c[k] for c in gpu}) > 1 for k in keys), pass_name
        assert set(asdict(params.safe_default(pass_name))) >= {k for c in gpu for k in c}  # the pass's own names


def runner_failing_for(pass_names, fail, calls=None):
    """tune._runner whose runs fail (fail(out) raises or returns a wrong result) for the short list's
    candidates (TILE_CO 2 or 3), not for the reference (the safe default's TILE_CO 4)."""
    real_runner = tune._runner

    def runner(device, pass_name, geo, dtype):
        run = real_runner(device, pass_name, geo, dtype)

        def failing():
            if calls is not None:
                calls.append(pass_name)
            out = run()
            tile = params.lookup(device, pass_name, params_key(geo, dtype)).TILE_CO
            return fail(out) if pass_name in pass_names and tile in (2, 3) else out
        return failing
    return runner


def rejected_build(out):
    raise RuntimeError("clconv failed to build conv1d_forward.cl (simulated)")


def test_round_without_a_candidate_stores_nothing_and_warns(device, cache_dir, monkeypatch):
    monkeypatch.setattr(tune, "_runner", runner_failing_for({"forward"}, rejected_build))
    geo = geometry()
    with pytest.warns(tune.TuningWarning, match=r"no candidate ran for forward .*2 rejected.*nothing stored"):
        assert tune.tune_pass(device, "forward", geo, np.float32) is None
    assert not (cache_dir / "tuned.json").exists()
    assert not params.has_tuned(device, "forward", params_key(geo, np.float32))


def test_stride_1_input_gradient_without_a_forward_candidate_stores_nothing(device, cache_dir, monkeypatch):
    geo = geometry(stride=1)
    if input_gradient_as_forward(device, geo, np.float32) is None:
        pytest.skip(f"{device.name} runs stride-1 input gradients with their own kernel")
    monkeypatch.setattr(tune, "_runner", runner_failing_for({"forward"}, rejected_build))
    with pytest.warns(tune.TuningWarning, match="no candidate ran"):
        assert tune.tune_pass(device, "backward_data", geo, np.float32) is None
    assert not (cache_dir / "tuned.json").exists()


@pytest.mark.parametrize("failure", ["disagrees", "raises"])
def test_autotune_failure_falls_back_to_builtins_and_warns_once(device, cache_dir, monkeypatch, rng, failure):
    """CLCONV_AUTOTUNE=1: a tuning round that fails (a candidate computing something else, an unexpected
    error) never reaches the user's call; the shape runs the built-in parameters and is not tuned again."""
    def fail(out):
        if failure == "raises":
            raise ValueError("simulated driver trouble")
        return out + 1

    calls = []
    monkeypatch.setattr(tune, "_runner", runner_failing_for({"forward"}, fail, calls))
    monkeypatch.setattr(tune, "_failed", set())
    monkeypatch.setenv("CLCONV_AUTOTUNE", "1")
    w = rng.uniform(-1, 1, (7, 3, 4)).astype(np.float32)
    with pytest.warns(tune.TuningWarning) as record:
        for length in (29, 41):  # a second plan of the same tuning key: not tuned, not warned again
            x = rng.uniform(-1, 1, (2, 3, length)).astype(np.float32)
            y = clconv.conv1d(device.to_device(x), device.to_device(w), None, padding=2)
            assert_close(y.get(), conv1d_ref(x.astype(np.float64), w.astype(np.float64), None, 1, 2), np.float32)
    messages = [str(r.message) for r in record if issubclass(r.category, tune.TuningWarning)]
    assert len(messages) == 1, messages
    expected = "disagrees with the reference" if failure == "disagrees" else "ValueError: simulated driver trouble"
    assert "autotuning forward" in messages[0] and expected in messages[0] and "built-in parameters" in messages[0]
    assert calls and calls.count("forward") == len(calls)
    tries = len(calls)
    x = rng.uniform(-1, 1, (2, 3, 53)).astype(np.float32)
    clconv.conv1d(device.to_device(x), device.to_device(w), None, padding=2)
    assert len(calls) == tries
    assert not (cache_dir / "tuned.json").exists()
    key = params_key(conv_geometry((2, 3, 53), (7, 3, 4), None, 1, 2, 2, 1, 1), np.float32)
    assert not params.has_tuned(device, "forward", key)
    assert params.lookup(device, Pass.FORWARD, key) == params.builtin(device, Pass.FORWARD)


def test_explicit_tuning_still_raises_under_autotune(device, cache_dir, monkeypatch):
    """strict=True (what `python -m clconv.tune` passes) raises a failure even with CLCONV_AUTOTUNE=1."""
    monkeypatch.setattr(tune, "_runner", runner_failing_for({"forward"}, lambda out: out + 1))
    monkeypatch.setenv("CLCONV_AUTOTUNE", "1")
    with pytest.raises(RuntimeError, match="disagrees with the reference"):
        tune.tune_pass(device, "forward", geometry(), np.float32, strict=True)
