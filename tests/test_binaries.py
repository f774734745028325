"""Program binaries cached on disk: a fresh context builds from them, and a damaged one is rebuilt from
source instead of failing."""
import numpy as np
import pytest

from clconv.functional import conv1d_forward
from clconv.runtime import Device
from conftest import assert_close
from reference import conv1d_ref


@pytest.fixture
def fresh(device, tmp_path, monkeypatch):
    """A new Device (own context, no programs built yet) for the tested device, with an empty cache folder."""
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CLCONV_BINARY_CACHE", "1")  # conftest turns it off for the rest of the suite
    if not Device(device.cl_device, device.index, 0, 0)._caches_binaries:
        pytest.skip(f"{device.name}: pyopencl caches this driver's binaries itself")
    return lambda: Device(device.cl_device, device.index, 0, 0)


def run_conv(dev, rng):
    x = rng.uniform(-1, 1, (2, 3, 17)).astype(np.float32)
    w = rng.uniform(-1, 1, (4, 3, 3)).astype(np.float32)
    y, _, _ = conv1d_forward(x, w, None, 1, 1, 1, 1, 1, device=dev)  # numpy in: runs on `dev`
    assert_close(y, conv1d_ref(x.astype(np.float64), w.astype(np.float64), None, 1, 1), np.float32)


def binaries(tmp_path):
    return sorted((tmp_path / "binaries").glob("*.bin"))


def test_second_context_builds_from_the_cached_binary(fresh, tmp_path, rng, monkeypatch):
    run_conv(fresh(), rng)
    stored = binaries(tmp_path)
    assert stored, "no program binary was cached"
    loaded = []
    original = Device._build_from_binary

    def spy(self, path, options):
        program = original(self, path, options)
        loaded.append(program is not None)
        return program

    monkeypatch.setattr(Device, "_build_from_binary", spy)
    run_conv(fresh(), rng)
    assert loaded and all(loaded), loaded
    assert binaries(tmp_path) == stored


def test_damaged_binary_is_rebuilt_from_source(fresh, tmp_path, rng):
    run_conv(fresh(), rng)
    for path in binaries(tmp_path):
        path.write_bytes(b"not a program binary")
    run_conv(fresh(), rng)
    assert all(path.read_bytes() != b"not a program binary" for path in binaries(tmp_path))


def test_binary_cache_can_be_turned_off(fresh, tmp_path, rng, monkeypatch):
    monkeypatch.setenv("CLCONV_BINARY_CACHE", "0")
    run_conv(fresh(), rng)
    assert not binaries(tmp_path)
