"""Shared fixtures: device parametrization, seeded RNG, one tolerance table.

Environment:
  CLCONV_TEST_DEVICES  comma-separated, case-insensitive substrings of
                       "<platform name> <device name>" (or of the short test id,
                       e.g. "pocl-cpu"); only matching devices are tested.
                       Unset: every GPU and accelerator whose compiler works,
                       and one CPU device, the one get_device(None) would pick
                       among CPUs (PoCL first; Intel's runtime where PoCL's
                       compiler does not know the CPU).
  CLCONV_BINARY_CACHE  set to 0 here unless given (see below).
"""

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The suite builds some 300 programs once each: storing their binaries would make PoCL compile each a
# second time (cold suite 3m51s -> 8m41s on 2 cores) for loads no test makes. test_binaries.py turns it on.
os.environ.setdefault("CLCONV_BINARY_CACHE", "0")

STRATEGIES = ("register", "local")

# ---------------------------------------------------------------------------
# Tolerances: ONE table, used through assert_close only.
#   max|actual - ref| <= TOL[dtype] * (1 + max|ref|)
# float16: inputs/weights are stored in float16, the reference is computed in
# float64 from exactly those float16 values; the only error expected is the
# float (fp32) accumulation plus the final rounding to float16
# (half an ulp = 2**-11 relative ~ 4.9e-4), so 5e-3 leaves a 10x margin while
# still catching accumulation in half precision over long reductions.
# ---------------------------------------------------------------------------
TOL = {
    np.dtype(np.float32): 1e-4,
    np.dtype(np.float64): 1e-10,
    np.dtype(np.float16): 5e-3,
}

DTYPE_IDS = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.float16): "f16"}


def assert_close(actual, ref, dtype, what=""):
    """Compare a library result with a float64 reference under the dtype's tolerance."""
    dtype = np.dtype(dtype)
    actual = np.asarray(actual)
    ref = np.asarray(ref, dtype=np.float64)
    assert actual.shape == ref.shape, f"{what} shape {actual.shape} != reference {ref.shape}"
    if ref.size == 0:
        return
    a64 = actual.astype(np.float64)
    assert np.all(np.isfinite(a64)), f"{what} non-finite values in result"
    err = np.max(np.abs(a64 - ref))
    bound = TOL[dtype] * (1.0 + np.max(np.abs(ref)))
    if not err <= bound:
        where = np.unravel_index(np.argmax(np.abs(a64 - ref)), ref.shape)
        raise AssertionError(
            f"{what} max|err| = {err:.3e} > {bound:.3e} ({DTYPE_IDS.get(dtype, dtype)}); "
            f"worst at {where}: got {a64[where]!r}, expected {ref[where]!r}"
        )


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------
_PLATFORM_SHORT = [
    ("portable computing language", "pocl"),
    ("pocl", "pocl"),
    ("nvidia", "nvidia"),
    ("intel", "intel"),
    ("amd", "amd"),
    ("rusticl", "rusticl"),
    ("clover", "clover"),
    ("apple", "apple"),
    ("arm", "arm"),
]


def _short_platform(name):
    low = name.lower()
    for key, short in _PLATFORM_SHORT:
        if key in low:
            return short
    word = re.sub(r"[^a-z0-9]+", "", low.split()[0]) if low.split() else "cl"
    return word or "cl"


def _short_type(type_str):
    t = str(type_str).upper()
    for key in ("GPU", "CPU", "ACCELERATOR"):
        if key in t:
            return "acc" if key == "ACCELERATOR" else key.lower()
    return re.sub(r"[^a-z0-9]+", "", t.lower()) or "dev"


def _load_devices():
    """[(id, device)] for every clconv device passing CLCONV_TEST_DEVICES."""
    try:
        import clconv
    except Exception:  # library missing: device tests error out at their own import
        return []
    devs = list(clconv.devices())
    ids = [f"{_short_platform(d.platform_name)}-{_short_type(d.type)}" for d in devs]
    seen = {}
    for i, name in enumerate(ids):
        if ids.count(name) > 1:
            seen[name] = seen.get(name, -1) + 1
            ids[i] = f"{name}{seen[name]}"
    wanted = [s.strip().lower() for s in os.environ.get("CLCONV_TEST_DEVICES", "").split(",") if s.strip()]
    if wanted:
        return [(did, d) for did, d in zip(ids, devs)
                if any(w in f"{d.platform_name} {d.name} {did}".lower() for w in wanted)]
    # Two CPU runtimes would double the suite's time for little: the second one is tested on its own
    # (.ci/run's Intel stage).
    from clconv.runtime import default_order

    working = sorted((d for d in devs if d.compile_error is None), key=default_order)
    first_cpu = next((d for d in working if d.type == "CPU"), None)
    return [(did, d) for did, d in zip(ids, devs) if d in working and (d.type != "CPU" or d is first_cpu)]


_DEVICES = None


def tested_devices():
    global _DEVICES
    if _DEVICES is None:
        _DEVICES = _load_devices()
    return _DEVICES


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slow test (wheel build / install); deselect with -m 'not slow'")


def pytest_report_header(config):
    devs = tested_devices()
    if not devs:
        return ["clconv devices tested: none (clconv not importable or no device matched)"]
    lines = ["clconv devices tested:"]
    for did, d in devs:
        lines.append(f"  {did}: {d.name} [{d.platform_name}] type={d.type} fp64={d.has_fp64}")
    return lines


def pytest_generate_tests(metafunc):
    if "device" in metafunc.fixturenames:
        devs = tested_devices()
        metafunc.parametrize("device", [d for _, d in devs], ids=[i for i, _ in devs], scope="session")
    if "strategy" in metafunc.fixturenames:
        metafunc.parametrize("strategy", STRATEGIES)


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's node id (stable across runs)."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(request.node.nodeid)) % (2 ** 32)
    return np.random.default_rng(seed)


@pytest.fixture
def fp64_device(device):
    if not device.has_fp64:
        pytest.skip(f"{device.name} has no fp64")
    return device
