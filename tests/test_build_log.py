"""Drivers' build logs go to the "clconv" logger, not to the user's screen as warnings; a failed build
still raises with its log."""

import logging
import time
import warnings

import numpy as np
import pytest

import clconv
from clconv import runtime

# A source that builds with a non-empty log on any driver that honours #warning (clang-based ones, PoCL
# among them): a warning of our own making.
WARNING_SOURCE = "#warning clconv-test-build-warning\n__kernel void touch(__global float *x) { x[0] += 1.0f; }\n"


@pytest.fixture
def fresh_device(device):
    """`device` with program caches that do not hold the test's sources."""
    programs, kernels = device._programs, device._kernels
    device._programs, device._kernels = {}, {}
    yield device
    device._programs, device._kernels = programs, kernels


def build_with(monkeypatch, device, source):
    monkeypatch.setattr(runtime, "kernel_source", lambda filename: source if filename == "test.cl" else "")
    monkeypatch.setenv("CLCONV_BINARY_CACHE", "0")
    # A define no earlier run used: pyopencl's binary cache (Intel's runtime) would skip the compiler's log.
    return device.kernel("test.cl", "touch", {"TEST_VALUE": 1, "TEST_RUN": time.time_ns()})


def test_build_log_goes_to_the_logger(fresh_device, monkeypatch, caplog):
    monkeypatch.delenv("CLCONV_VERBOSE", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes fails the test
        with caplog.at_level(logging.DEBUG, logger="clconv"):
            build_with(monkeypatch, fresh_device, WARNING_SOURCE)
    records = [r for r in caplog.records if r.name == "clconv" and "test.cl" in r.getMessage()]
    if not records:
        pytest.skip(f"{fresh_device.name} gave no build log for #warning")
    assert records[0].levelno == logging.DEBUG
    assert "clconv-test-build-warning" in records[0].getMessage()


def test_verbose_shows_the_build_log(fresh_device, monkeypatch, caplog):
    monkeypatch.setenv("CLCONV_VERBOSE", "1")
    with caplog.at_level(logging.DEBUG, logger="clconv"):
        build_with(monkeypatch, fresh_device, WARNING_SOURCE)
    records = [r for r in caplog.records if r.name == "clconv" and "test.cl" in r.getMessage()]
    if not records:
        pytest.skip(f"{fresh_device.name} gave no build log for #warning")
    assert records[0].levelno == logging.WARNING


def test_failed_build_raises_with_its_log(fresh_device, monkeypatch):
    source = "#error clconv-test-build-error\n__kernel void touch(__global float *x) { }\n"
    with pytest.raises(RuntimeError, match=r"(?s)failed to build test.cl.*clconv-test-build-error"):
        build_with(monkeypatch, fresh_device, source)


def test_build_log_mechanism(monkeypatch, caplog):
    """Independent of the driver: a CompilerWarning raised inside the block becomes a record; other
    warnings pass through."""
    monkeypatch.delenv("CLCONV_VERBOSE", raising=False)
    with caplog.at_level(logging.DEBUG, logger="clconv"), pytest.warns(UserWarning, match="unrelated"):
        with runtime.build_log("probe.cl"):
            warnings.warn("Kernel was 16-way vectorized", runtime.cl.CompilerWarning)
            warnings.warn("unrelated", UserWarning)
    assert [(r.levelno, "16-way" in r.getMessage()) for r in caplog.records if r.name == "clconv"] == [
        (logging.DEBUG, True)]


def test_forward_emits_no_compiler_warning(device, recwarn):
    clconv.conv1d(np.ones((1, 2, 9), np.float32), np.ones((3, 2, 2), np.float32), padding=3)
    assert not [w for w in recwarn if issubclass(w.category, runtime.cl.CompilerWarning)]
