"""Device classes: decided from device properties, forced with CLCONV_DEVICE_CLASS, and the built-in
parameter rows they select; override() refuses names it does not know."""
from dataclasses import asdict, replace

import numpy as np
import pytest

import clconv
from clconv.api.checks import conv_geometry
from clconv.passes.forward import forward_plan
from clconv import params, tuning_cache
from clconv.params import Pass
from clconv.params.rows import BUILTIN
from clconv.runtime import DEVICE_CLASS_ENV, DEVICE_CLASSES, DeviceProperties, classify, target_cpu
from conftest import assert_close
from reference import conv1d_ref


def props(type, vendor_id, native, preferred, local_mem_type, local_mem_size=32768, compute_units=8, wg=1024, cpu=""):
    return DeviceProperties(type=type, vendor_id=vendor_id, native_vector_width_float=native,
                            preferred_vector_width_float=preferred, local_mem_type=local_mem_type,
                            local_mem_size=local_mem_size, compute_units=compute_units, max_work_group_size=wg,
                            target_cpu=cpu)


# What the drivers report (PoCL and Intel's CPU runtime as on the test machines; the GPUs as their drivers
# describe them).
KNOWN = {
    "pocl-avx512": (props("CPU", 0x8086, 16, 16, "global", 2 << 20, 2, 4096, "icelake-client"), "cpu-avx512"),
    # PoCL 3.0 (LLVM 14) on an AVX-512 Zen 4: the host's 16 lanes reported, code compiled for znver3 (AVX2)
    "pocl-zen4-as-znver3": (props("CPU", 0x1022, 16, 16, "global", 1 << 20, 2, 4096, "znver3"), "cpu-avx2"),
    "pocl-zen4": (props("CPU", 0x1022, 16, 16, "global", 1 << 20, 2, 4096, "znver4"), "cpu-avx512"),
    "pocl-avx2": (props("CPU", 0x8086, 8, 8, "global", 2 << 20, 8, 4096), "cpu-avx2"),
    "pocl-amd-avx2": (props("CPU", 0x1022, 8, 8, "global", 2 << 20, 16, 4096, "znver2"), "cpu-avx2"),
    "pocl-sse": (props("CPU", 0x8086, 4, 4, "global", 2 << 20, 4, 4096), "cpu"),
    "pocl-arm-neon": (props("CPU", 0x13B5, 4, 4, "global", 2 << 20, 4, 4096, "neoverse-n1"), "cpu"),
    # Intel's OpenCL CPU runtime: native 16 floats, preferred 1 (it vectorises work-items itself; vendor id
    # Intel's on an AMD Zen 4 too); with AVX2 it keeps the explicit 8-float row
    "intel-cpu-runtime": (props("CPU", 0x8086, 16, 1, "global", 256 << 10, 2, 8192), "cpu-implicit-simd"),
    "intel-cpu-runtime-avx2": (props("CPU", 0x8086, 8, 1, "global", 256 << 10, 8, 8192), "cpu-avx2"),
    "nvidia-gpu": (props("GPU", 0x10DE, 1, 1, "local", 48 << 10, 108, 1024), "nvidia-gpu"),
    "amd-gpu": (props("GPU", 0x1002, 4, 4, "local", 64 << 10, 60, 256), "amd-gpu"),
    "intel-gpu": (props("GPU", 0x8086, 1, 1, "local", 64 << 10, 96, 512), "intel-gpu"),
    "apple-gpu": (props("GPU", 0x1027F00, 1, 1, "local", 32 << 10, 10, 256), "gpu"),
    "oclgrind": (props("GPU", 0x42, 1, 1, "local", 32 << 10, 1, 1024), "gpu"),
    "accelerator": (props("ACCELERATOR", 0x1172, 1, 1, "local", 16 << 10, 1, 256), "accelerator"),
    "custom": (props("OTHER", 0x1234, 1, 1, "none", 0, 1, 1), "other"),
}


@pytest.mark.parametrize("version, cpu", [
    ("OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-znver3", "znver3"),
    ("OpenCL 3.0 PoCL HSTR: pthread-x86_64-unknown-linux-gnu-icelake-client", "icelake-client"),
    ("OpenCL 3.0 PoCL HSTR: cpu-aarch64-unknown-linux-gnu-neoverse-n1", "neoverse-n1"),
    ("OpenCL 3.0 (Build 0)", ""),
], ids=["pocl-znver3", "pocl-icelake", "pocl-arm", "intel-runtime"])
def test_target_cpu_from_the_device_version(version, cpu):
    assert target_cpu(version) == cpu


@pytest.mark.parametrize("name", KNOWN)
def test_classify_from_properties(name):
    record, expected = KNOWN[name]
    assert classify(record) == expected


def test_every_class_has_a_row_and_a_provenance_line():
    assert set(BUILTIN) == set(DEVICE_CLASSES) == set(params.PROVENANCE)
    assert len(set(DEVICE_CLASSES)) == len(DEVICE_CLASSES)
    for cls in DEVICE_CLASSES:
        line = params.provenance(cls)
        assert line and "\n" not in line
    for cls in ("nvidia-gpu", "amd-gpu", "intel-gpu"):
        assert "never timed on" in params.provenance(cls)  # guides, not measurements: it says so
    with pytest.raises(ValueError, match="cpu-avx512"):
        params.provenance("tpu")


def test_rows_are_the_measured_ones():
    """The AVX-512 CPU row and the others, as measured: rows move between keys, their values stay."""
    rows = BUILTIN
    assert rows["cpu-avx512"]["*"]["VEC"] == 16 and rows["cpu-avx512"]["forward"]["TILE_CO"] == 16
    assert rows["cpu-avx512"]["forward_deep"] == {"TILE_CO": 8, "TILE_L": 3}
    assert rows["cpu-avx2"] is rows["cpu"] and rows["cpu-avx2"]["*"]["VEC"] == 8
    # Intel's runtime: PoCL's AVX-512 vectors and passes, its own deep and strided forward tiles
    assert rows["cpu-implicit-simd"]["*"] == rows["cpu-avx512"]["*"]
    assert rows["cpu-implicit-simd"]["forward_deep"] == {"TILE_CO": 8, "TILE_L": 2}
    assert rows["cpu-implicit-simd"]["forward_deep_strided"] == {"PHASE_TILE_R": 2, "TILE_CO": 4, "TILE_L": 4}
    assert "forward_strided" not in rows["cpu-implicit-simd"]  # shallow strided layers as on cpu-avx512
    assert rows["cpu-avx2"]["backward_weight"]["TILE_CO"] == 3
    assert rows["gpu"] is rows["nvidia-gpu"]
    assert rows["amd-gpu"] != rows["nvidia-gpu"] != rows["intel-gpu"] != rows["amd-gpu"]  # each vendor's own sizes
    assert all(rows[c]["*"]["strategy"] == "local" for c in ("nvidia-gpu", "amd-gpu", "intel-gpu", "accelerator"))
    assert rows["other"] == {}


def test_real_device_class(device, monkeypatch):
    monkeypatch.delenv(DEVICE_CLASS_ENV, raising=False)
    assert device.detected_class == classify(device.properties)
    assert device.device_class == device.detected_class in DEVICE_CLASSES
    assert device.properties.type == device.type
    cpu = device.properties
    if device.type == "CPU" and cpu.native_vector_width_float >= 16 and cpu.preferred_vector_width_float == 1:
        assert device.device_class == "cpu-implicit-simd"  # Intel's CPU runtime, whatever its driver version
    elif device.type == "CPU" and cpu.native_vector_width_float >= 16 and (
            cpu.target_cpu in ("", "icelake-client", "rocketlake", "skylake-avx512", "znver4")):
        assert device.device_class == "cpu-avx512"  # PoCL compiling for AVX-512
        assert params.builtin(device, Pass.FORWARD, deep=True).TILE_CO == 8


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path))
    tuning_cache.reload()
    yield tmp_path
    monkeypatch.undo()
    tuning_cache.reload()


@pytest.mark.parametrize("cls", DEVICE_CLASSES)
def test_forced_class_selects_its_row(device, empty_cache, monkeypatch, cls):
    monkeypatch.setenv(DEVICE_CLASS_ENV, cls)
    assert device.device_class == cls
    assert device.detected_class == classify(device.properties)
    row = BUILTIN[cls]
    for pass_name in Pass:
        expected = replace(params.safe_default(pass_name), **{**row.get("*", {}), **row.get(str(pass_name), {})})
        assert params.lookup(device, pass_name, (1, 1, 1, 3, 1, 1, "zeros", "float32"), depth=3) == expected


def test_deep_strided_fields_apply_to_deep_strided_passes_only(device, empty_cache, monkeypatch):
    """cpu-implicit-simd's 4 x 4 strided tiles are for deep reductions; shallow strided layers keep the
    cpu-avx512 row's fields."""
    monkeypatch.setenv(DEVICE_CLASS_ENV, "cpu-implicit-simd")
    key = (1, 1, 1, 3, 1, 1, "zeros", "float32")
    deep_strided = params.lookup(device, Pass.FORWARD, key, depth=1024, stride=4)
    assert (deep_strided.TILE_CO, deep_strided.TILE_L, deep_strided.PHASE_TILE_R) == (4, 4, 2)
    deep = params.lookup(device, Pass.FORWARD, key, depth=1024)
    assert (deep.TILE_CO, deep.TILE_L, deep.PHASE_TILE_R) == (8, 2, 1)
    tiles = ("TILE_CO", "TILE_L", "TILE_R", "PHASE_TILE_R", "CI_TILE", "CI_CHUNK", "VEC")
    shallow = params.lookup(device, Pass.FORWARD, key, depth=15, stride=2)
    monkeypatch.setenv(DEVICE_CLASS_ENV, "cpu-avx512")
    avx512 = params.lookup(device, Pass.FORWARD, key, depth=15, stride=2)
    assert [getattr(shallow, f) for f in tiles] == [getattr(avx512, f) for f in tiles]


def test_forced_class_runs_its_plan(device, empty_cache, monkeypatch, rng):
    """Forcing a GPU class on any device runs the GPU row's (local strategy) plans, which still compute the
    convolution; launch plans memoised before do not stand in for them."""
    x = rng.uniform(-1, 1, (2, 5, 37)).astype(np.float32)
    w = rng.uniform(-1, 1, (6, 5, 3)).astype(np.float32)
    geo = conv_geometry(x.shape, w.shape, None, 1, 1, 1, 1, 1)
    ref = conv1d_ref(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
    for cls, strategy in (("cpu-avx2", "register"), ("nvidia-gpu", "local"), ("cpu-avx2", "register")):
        monkeypatch.setenv(DEVICE_CLASS_ENV, cls)
        y = clconv.conv1d(device.to_device(x), device.to_device(w), None, 1, 1)
        assert_close(y.get(), ref, np.float32, cls)
        plan = forward_plan(device, geo, np.float32, False)
        assert plan.params.strategy == strategy, cls


@pytest.mark.parametrize("value", ["tpu", "cpu-avx1024", "gpu,cpu"])
def test_unknown_forced_class_is_refused_when_needed(device, empty_cache, monkeypatch, value):
    monkeypatch.setenv(DEVICE_CLASS_ENV, value)
    with pytest.raises(ValueError) as info:
        params.lookup(device, "forward", (1, 1, 1, 3, 1, 1, "zeros", "float32"))
    message = str(info.value)
    assert DEVICE_CLASS_ENV in message and repr(value) in message
    assert all(cls in message for cls in DEVICE_CLASSES)
    with pytest.raises(ValueError, match=DEVICE_CLASS_ENV):
        device.device_class


def test_forced_class_is_case_and_space_tolerant(device, monkeypatch):
    monkeypatch.setenv(DEVICE_CLASS_ENV, " GPU ")
    assert device.device_class == "gpu"


def test_override_rejects_unknown_names():
    with pytest.raises(ValueError) as info:
        with params.override(stratgy="local"):
            pass
    message = str(info.value)
    assert "stratgy" in message and "strategy" in message and "TILE_CO" in message
    with pytest.raises(ValueError, match="TILE_C0"):
        with params.override(TILE_CO=4, TILE_C0=8):
            pass
    assert not params.is_overridden()


@pytest.mark.parametrize("pass_name", list(Pass), ids=str)
def test_override_accepts_every_parameter_of_the_safe_default(monkeypatch, pass_name):
    monkeypatch.delenv(DEVICE_CLASS_ENV, raising=False)
    defaults = asdict(params.safe_default(pass_name))
    with params.override(**defaults):
        assert dict(params.override_key()) == defaults
    assert not params.is_overridden()


@pytest.mark.parametrize("values, error", [
    (dict(STAGE_MIN=0), ValueError), (dict(TILE_CO=0), ValueError), (dict(TILE_CO="4"), TypeError),
    (dict(AS_FORWARD=None), TypeError), (dict(strategy="locl"), ValueError), (dict(DW_ROWS=2.0), TypeError),
], ids=["zero-threshold", "zero-tile", "string-tile", "none-flag", "bad-strategy", "float-rows"])
def test_override_rejects_bad_values(values, error):
    with pytest.raises(error, match=next(iter(values))):
        with params.override(**values):
            pass
    assert not params.is_overridden()
