"""Every clconv kernel under Oclgrind: out-of-bounds accesses, data races, uninitialized values, API misuse.

Runs only when the Oclgrind device is visible to pyopencl (skipped otherwise).  To expose it:

    mkdir -p /tmp/oclgrind-icd
    echo /usr/lib/oclgrind/liboclgrind-rt-icd.so > /tmp/oclgrind-icd/oclgrind.icd
    OCL_ICD_VENDORS=/tmp/oclgrind-icd OCLGRIND_DATA_RACES=1 OCLGRIND_UNINITIALIZED=1 OCLGRIND_CHECK_API=1 \\
        CLCONV_DEVICE=oclgrind CLCONV_TEST_DEVICES=oclgrind python -m pytest -n 0 tests/test_oclgrind.py

(.ci/run does this.)  With the pyopencl wheel, PoCL stays visible next to Oclgrind.  Oclgrind reads its
OCLGRIND_* switches when a context is created; this module switches the three checks on (unless the
environment says otherwise) before the device's context exists.

Oclgrind reports to the process's stderr (file descriptor 2, from C++), so each case reads it with pytest's
capfd after the queue has finished, and fails on any report.  The one exception is pyopencl's own probing:
while building a program it asks clGetDeviceInfo for vendor-specific parameters Oclgrind does not know,
which OCLGRIND_CHECK_API reports as CL_INVALID_VALUE for 'param_name'.  test_detector_* prove, with broken
kernels of this file, that the detector sees each kind of report and that a clean kernel leaves nothing
behind once those probes are discounted.

Shapes are tiny (Oclgrind interprets every work-item).  Each case also checks its results against the
float64 reference, and test_every_kernel_ran makes sure every __kernel in kernels/ ran at least once.
"""

import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
import pytest

import clconv
from conftest import assert_close
from reference import conv1d_bias_grad_ref, conv1d_input_grad_ref, conv1d_ref, conv1d_weight_grad_ref

ROOT = Path(__file__).resolve().parent.parent

CHECKS = ("OCLGRIND_DATA_RACES", "OCLGRIND_UNINITIALIZED", "OCLGRIND_CHECK_API")
for _name in CHECKS:
    os.environ.setdefault(_name, "1")
REQUESTED = {name: os.environ[name] not in ("", "0") for name in CHECKS}


def _oclgrind_device():
    for d in clconv.devices():
        if "oclgrind" in f"{d.platform_name} {d.name}".lower():
            return d
    return None


OCLGRIND = _oclgrind_device()
pytestmark = pytest.mark.skipif(OCLGRIND is None, reason="Oclgrind device not visible (set OCL_ICD_VENDORS to a "
                                                          "folder with oclgrind.icd; see this file's docstring)")


def check_on(name):
    return REQUESTED[name]


def fresh_context(device, uninitialized):
    """A new pyopencl context on the Oclgrind device; Oclgrind reads its switches when a context is made."""
    old = os.environ.get("OCLGRIND_UNINITIALIZED")
    os.environ["OCLGRIND_UNINITIALIZED"] = "1" if uninitialized else "0"
    try:
        return cl.Context([device])
    finally:
        if old is None:
            del os.environ["OCLGRIND_UNINITIALIZED"]
        else:
            os.environ["OCLGRIND_UNINITIALIZED"] = old


def capture_stderr(fn):
    """Run fn() with file descriptor 2 sent to a temporary file; returns what was written there."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


# ---------------------------------------------------------------------------
# the detector
# ---------------------------------------------------------------------------

REPORT = re.compile(
    r"Invalid (read|write)|data race|Uninitiali[sz]ed|divergence|Unaligned|runtime error detected|FATAL"
    r"|^\s*Kernel:|Oclgrind|\berror\b",
    re.IGNORECASE | re.MULTILINE,
)

# pyopencl's probes of vendor-specific device info while it builds a program (see the module docstring)
_PROBE = re.compile(
    r"Oclgrind - OpenCL runtime error detected\s*\n"
    r"\s*Function: clGetDeviceInfo\s*\n"
    r"\s*Error:\s+CL_INVALID_VALUE\s*\n"
    r"\s*For argument 'param_name'\s*(\n|$)"
)


def oclgrind_reports(stderr):
    """The Oclgrind reports in `stderr` (blocks separated by blank lines), pyopencl's probes discounted."""
    rest = _PROBE.sub("\n", stderr)
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", rest)]
    return [b for b in blocks if b.strip() and REPORT.search(b)]


def assert_no_reports(capfd, device, what):
    device.queue.finish()
    _, err = capfd.readouterr()
    reports = oclgrind_reports(err)
    if reports:
        shown = "\n\n".join(reports[:6])
        raise AssertionError(f"{what}: {len(reports)} Oclgrind report(s), first ones:\n{shown}")


# Oclgrind 21.10 (Debian) meets LLVM's `freeze` instruction, which clang emits for an x / y and x % y pair
# on the same operands, with "OCLGRIND FATAL ERROR ... Unsupported instruction: freeze" from its
# uninitialized-value plugin, and abandons the work-item: the kernel's results are then garbage.  clconv's
# kernels have such pairs, so where the probe below shows this Oclgrind to be affected, clconv's context is
# made with that one check off (bounds, races and API checks stay on) and
# test_uninitialized_checks_cover_clconv says so (skipped, with the reason).
_DIVREM = """
__kernel void divrem(__global float *out, int w)
{ int i = get_global_id(0); int c = i / w, j = i % w; out[i] = c * 100 + j; }
"""
_UNINIT_STATUS = {}


def uninitialized_plugin_handles_freeze(device):
    if "ok" not in _UNINIT_STATUS:
        def run():
            ctx = fresh_context(device, uninitialized=True)
            queue = cl.CommandQueue(ctx)
            program = cl.Program(ctx, _DIVREM).build()
            out = cl.Buffer(ctx, cl.mem_flags.READ_WRITE, 16 * 4)
            program.divrem(queue, (16,), (4,), out, np.int32(5))
            queue.finish()

        err = capture_stderr(run)
        _UNINIT_STATUS["ok"] = "Unsupported instruction: freeze" not in err
        _UNINIT_STATUS["stderr"] = err
    return _UNINIT_STATUS["ok"]


@pytest.fixture(scope="module")
def ocl():
    """clconv's Oclgrind device, its context made with the checks REQUESTED (less an unusable one)."""
    if getattr(OCLGRIND, "_context", None) is None:
        usable = check_on("OCLGRIND_UNINITIALIZED") and uninitialized_plugin_handles_freeze(OCLGRIND.cl_device)
        old = os.environ.get("OCLGRIND_UNINITIALIZED")
        os.environ["OCLGRIND_UNINITIALIZED"] = "1" if usable else "0"
        try:
            OCLGRIND.queue  # creates the context and the queue
        finally:
            if old is None:
                del os.environ["OCLGRIND_UNINITIALIZED"]
            else:
                os.environ["OCLGRIND_UNINITIALIZED"] = old
    return OCLGRIND


def test_uninitialized_checks_cover_clconv(ocl):
    if not check_on("OCLGRIND_UNINITIALIZED"):
        pytest.skip("OCLGRIND_UNINITIALIZED is off")
    if not uninitialized_plugin_handles_freeze(ocl.cl_device):
        first = [line for line in _UNINIT_STATUS["stderr"].splitlines() if "freeze" in line][:1]
        pytest.skip("this Oclgrind's uninitialized-value plugin aborts on LLVM 'freeze' (x / y next to x % y), "
                    "which clconv's kernels contain: that check is off for clconv's kernels; bounds, data-race "
                    f"and API checks are on ({' '.join(first)})")


# broken kernels of this file, built with pyopencl directly on the Oclgrind device
_BROKEN = """
__kernel void clean(__global float *out) { out[get_global_id(0)] = 1.0f; }
__kernel void write_past_end(__global float *out, int n) { out[get_global_id(0) + n] = 1.0f; }
__kernel void read_past_end(__global const float *in, __global float *out, int n)
{ out[get_global_id(0)] = in[get_global_id(0) + n]; }
__kernel void local_race(__global float *out)
{
    __local float t[1];
    t[0] = (float)get_local_id(0);
    barrier(CLK_LOCAL_MEM_FENCE);
    out[get_global_id(0)] = t[0];
}
__kernel void copy(__global const float *in, __global float *out) { out[get_global_id(0)] = in[get_global_id(0)]; }
"""


@pytest.fixture
def broken(ocl):
    """A fresh context per test (Oclgrind keeps the shadow state of released buffers, so a new buffer at a
    reused address may look initialized) with the checks requested."""
    ctx = fresh_context(ocl.cl_device, check_on("OCLGRIND_UNINITIALIZED"))
    queue = cl.CommandQueue(ctx)
    program = cl.Program(ctx, _BROKEN).build()
    return queue, program


def _run_broken(capfd, queue, launch):
    capfd.readouterr()
    launch()
    queue.finish()
    _, err = capfd.readouterr()
    return err


def test_detector_clean_kernel_reports_nothing(ocl, broken, capfd):
    queue, program = broken
    out = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, 64 * 4)
    err = _run_broken(capfd, queue, lambda: program.clean(queue, (64,), (8,), out))
    assert oclgrind_reports(err) == [], err
    host = np.empty(64, np.float32)
    cl.enqueue_copy(queue, host, out)
    assert (host == 1).all()


def test_detector_sees_out_of_bounds_write(ocl, broken, capfd):
    queue, program = broken
    out = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, 16 * 4)
    err = _run_broken(capfd, queue, lambda: program.write_past_end(queue, (16,), (4,), out, np.int32(4)))
    reports = oclgrind_reports(err)
    assert reports and any("Invalid write" in r for r in reports), err


def test_detector_sees_out_of_bounds_read(ocl, broken, capfd):
    queue, program = broken
    src = cla.to_device(queue, np.ones(16, np.float32))
    out = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, 16 * 4)
    err = _run_broken(capfd, queue, lambda: program.read_past_end(queue, (16,), (4,), src.data, out, np.int32(4)))
    reports = oclgrind_reports(err)
    assert reports and any("Invalid read" in r for r in reports), err


def test_detector_sees_data_race(ocl, broken, capfd):
    if not check_on("OCLGRIND_DATA_RACES"):
        pytest.skip("OCLGRIND_DATA_RACES is off")
    queue, program = broken
    out = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, 16 * 4)
    err = _run_broken(capfd, queue, lambda: program.local_race(queue, (16,), (4,), out))
    reports = oclgrind_reports(err)
    assert reports and any("data race" in r for r in reports), err


def test_detector_sees_uninitialized_value(ocl, broken, capfd):
    if not check_on("OCLGRIND_UNINITIALIZED"):
        pytest.skip("OCLGRIND_UNINITIALIZED is off")
    queue, program = broken
    never_written = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, 16 * 4)
    out = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, 16 * 4)
    err = _run_broken(capfd, queue, lambda: program.copy(queue, (16,), (4,), never_written, out))
    reports = oclgrind_reports(err)
    assert reports and any("Uninitialized" in r for r in reports), err


def test_detector_sees_api_error(ocl, broken, capfd):
    if not check_on("OCLGRIND_CHECK_API"):
        pytest.skip("OCLGRIND_CHECK_API is off")
    queue, program = broken
    out = cl.Buffer(queue.context, cl.mem_flags.READ_WRITE, 16 * 4)

    def bad_launch():
        with pytest.raises(cl.Error):
            program.clean(queue, (15,), (4,), out)   # local size does not divide the global size

    err = _run_broken(capfd, queue, bad_launch)
    reports = oclgrind_reports(err)
    assert reports and any("runtime error detected" in r for r in reports), err


def test_detector_parses_known_report_text():
    """The detector on literal report text (as Oclgrind 21.10 prints it), independent of the device."""
    probe = ("\nOclgrind - OpenCL runtime error detected\n\tFunction: clGetDeviceInfo\n\tError:    CL_INVALID_VALUE\n"
             "\tFor argument 'param_name'\n\n")
    assert oclgrind_reports(probe * 3) == []
    race = ("\nWrite-write data race at local memory address 0x1000000000002\n\tKernel: race\n\t\n"
            "\tFirst entity:  Global(5,0,0) Local(1,0,0) Group(1,0,0)\n")
    assert len(oclgrind_reports(probe + race + probe)) == 1
    api = ("\nOclgrind - OpenCL runtime error detected\n\tFunction: clEnqueueNDRangeKernel\n"
           "\tError:    CL_INVALID_WORK_GROUP_SIZE\n")
    assert len(oclgrind_reports(api)) == 1
    fatal = "OCLGRIND FATAL ERROR (./src/plugins/Uninitialized.cpp:1805)\nUnsupported instruction: freeze\n"
    assert len(oclgrind_reports(fatal)) == 1


# ---------------------------------------------------------------------------
# clconv's kernels
# ---------------------------------------------------------------------------

def kernel_names():
    folders = [ROOT / "kernels", Path(clconv.__file__).resolve().parent / "kernels"]
    names = set()
    for folder in folders:
        for path in sorted(folder.glob("*.cl")):
            names.update(re.findall(r"__kernel\b.*?\bvoid\s+(\w+)\s*\(", path.read_text(), re.DOTALL))
        if names:
            break
    return names


_LAUNCHED = set()
_CASES_RUN = set()


@pytest.fixture
def launches(ocl, monkeypatch):
    """Record the names of the kernels clconv launches on the Oclgrind device."""
    launch = ocl.launch

    def recording(kernel, *args, **kwargs):
        _LAUNCHED.add(kernel.function_name)
        return launch(kernel, *args, **kwargs)

    monkeypatch.setattr(ocl, "launch", recording)
    return _LAUNCHED


# (id, Conv1d arguments, input shape, dtype, extra parameter overrides).  Channel counts that tiles do not
# divide, lengths that vectors do not divide, and forced small tiles put work-items on every edge.
CASES = [
    # small forced tiles: the input window of a tile (its halo) is wider than the tile itself
    ("halo-wider-than-tile", dict(cin=3, cout=4, k=5, dilation=3, padding=6), (2, 3, 23), "f32",
     dict(WG_L=2, TILE_L=1, WG_CO=1, TILE_CO=1, CI_TILE=1)),
    ("halo-wider-than-tile-strided", dict(cin=2, cout=3, k=4, stride=2, dilation=4, padding=5, mode="reflect"),
     (1, 2, 19), "f32", dict(WG_L=1, TILE_L=1, VEC=1)),
    ("lout-1", dict(cin=3, cout=4, k=3, dilation=2, padding=0), (2, 3, 5), "f32", {}),
    ("lout-1-strided-padded", dict(cin=2, cout=3, k=4, stride=3, padding=1, mode="reflect"), (1, 2, 3), "f32", {}),
    ("lout-1-k1", dict(cin=3, cout=2, k=1), (2, 3, 1), "f32", {}),
    ("depthwise", dict(cin=4, cout=4, k=3, groups=4, padding=1), (2, 4, 10), "f32", {}),
    ("depthwise-x2", dict(cin=4, cout=8, k=3, groups=4, padding=1, mode="replicate"), (2, 4, 13), "f32", {}),
    # the depthwise weight gradient (local strategy): taps in two tiles, the second past K, and chunks of
    # partial sums reduced in order
    ("depthwise-x2-tap-tiles", dict(cin=2, cout=4, k=19, dilation=2, padding=18, groups=2), (2, 2, 23), "f32",
     dict(RUN=16)),
    # conv1d_forward_depthwise_local (local strategy): a multiplier of 2 forward and its input gradient (two
    # input channels per group, weights flipped in place) with dilated combs over reflected edges; undilated
    # combs read as vectors, two tap windows (K = 19), spans past the row's end
    ("depthwise-local-dilated", dict(cin=3, cout=6, k=5, dilation=2, padding=4, groups=3, mode="reflect"), (2, 3, 29),
     "f32", {}),
    ("depthwise-local-k19", dict(cin=3, cout=3, k=19, padding=9, groups=3), (1, 3, 45), "f32", {}),
    ("stride-gt-kernel", dict(cin=3, cout=2, k=2, stride=3, padding=1), (2, 3, 17), "f32", {}),
    ("stride-gt-kernel-circular", dict(cin=2, cout=3, k=1, stride=4, padding=2, mode="circular"), (2, 2, 13), "f32", {}),
    ("zeros-grouped", dict(cin=4, cout=6, k=3, groups=2, padding=2, stride=2), (2, 4, 15), "f32", {}),
    ("zeros-odd-channels", dict(cin=5, cout=7, k=3, padding=1), (2, 5, 13), "f32",
     dict(TILE_CO=3, WG_CO=2, CI_TILE=2, VEC=2)),
    ("reflect-dilated", dict(cin=2, cout=3, k=3, dilation=2, padding=3, mode="reflect"), (2, 2, 11), "f32", {}),
    ("reflect-max-pad", dict(cin=2, cout=2, k=3, padding=4, mode="reflect"), (1, 2, 5), "f32", {}),
    ("replicate-no-bias", dict(cin=3, cout=3, k=4, padding=2, mode="replicate", bias=False), (1, 3, 9), "f32", {}),
    ("replicate-wide-pad", dict(cin=2, cout=3, k=2, padding=7, stride=2, mode="replicate"), (2, 2, 4), "f32", {}),
    ("circular-wrap-full", dict(cin=2, cout=2, k=3, padding=6, mode="circular"), (2, 2, 6), "f32", {}),
    ("same-unbatched", dict(cin=3, cout=5, k=4, padding="same", dilation=2, mode="circular"), (3, 14), "f32", {}),
    ("valid-long-kernel", dict(cin=2, cout=3, k=9, padding="valid"), (2, 2, 12), "f32", {}),
    ("weight-grad-small-blocks", dict(cin=3, cout=5, k=3, padding=1, stride=2), (3, 3, 21), "f32",
     dict(LB=4, RUN=8, TILE_K=2)),
    # the staged input copy (pad_rows.cl; split into stride phases) with several register tiles per work-item and chunks that do not
    # divide the channels; cache-block order with a partial last block, edges through the private window
    ("staged-tiles-reflect", dict(cin=5, cout=7, k=3, stride=2, padding=2, mode="reflect"), (2, 5, 29), "f32",
     dict(STAGE_MIN=1, STAGE_FLOPS=1, TILE_R=2, TILE_P=2, CI_CHUNK=2, TILE_CO=2, TILE_L=1, VEC=4)),
    ("staged-float16-circular", dict(cin=3, cout=4, k=3, padding=2, mode="circular"), (2, 3, 17), "f16",
     dict(STAGE_MIN=1, AS_FORWARD=True)),
    ("cache-blocks-edges", dict(cin=3, cout=5, k=4, dilation=2, padding=3), (2, 3, 41), "f32",
     dict(BLOCK_KB=1, TILE_CO=2, TILE_L=1, VEC=4, STAGE_MIN=None, AS_FORWARD=False)),
    ("input-grad-forward-form-grouped", dict(cin=4, cout=6, k=3, groups=2, padding=1), (2, 4, 19), "f32",
     dict(AS_FORWARD=True)),
    # weight gradient with lanes along channel blocks (pad_rows_blocked), the last block partly empty
    ("weight-channel-lanes-reflect", dict(cin=6, cout=5, k=3, stride=2, padding=2, mode="reflect", groups=1),
     (2, 6, 19), "f32", dict(CI_LANES_MIN=1, CI_LANES_ACC=6, VEC=4, STAGE_FLOPS=1, BLOCK_KB=1)),
    ("weight-channel-lanes-f16-grouped", dict(cin=10, cout=4, k=2, dilation=3, padding=1, groups=2),
     (2, 10, 15), "f16", dict(CI_LANES_MIN=1, CI_LANES_ACC=4, VEC=4, STAGE_FLOPS=1)),
    # ... for one tap, tiles of 3 channel blocks sliding back over 4, the last block partly empty
    ("weight-channel-blocks-k1", dict(cin=15, cout=5, k=1), (2, 15, 21), "f32",
     dict(CI_LANES_MIN=1, CI_LANES_ACC=6, CI_LANES_B=3, VEC=4, STAGE_FLOPS=1)),
    # input gradient accumulating whole rows: positions before the first and past the last dy, 3 segments
    ("data-rows-strided", dict(cin=2, cout=3, k=5, stride=3, dilation=2, padding=4), (2, 2, 40), "f32",
     dict(ROWS_CI=2, ROWS_CO=1, ROWS_SEG=4, AS_FORWARD=False, VEC=2)),
    # ... with its output channels in groups of 5 and a last group of 2, built for that many
    ("data-rows-last-group", dict(cin=2, cout=7, k=4, stride=2, padding=2), (2, 2, 30), "f32",
     dict(ROWS_CI=2, ROWS_CO=1, ROWS_SEG=8, AS_FORWARD=False, VEC=4)),
    # sliding tap tiles (register strategy): a forward of 3 outputs per group in tiles of 2 sliding back,
    # its input gradient (3 input channels into one), the weight gradient over its padded copy in chunks;
    # reflected edge tiles at both ends
    ("slide-taps", dict(cin=2, cout=6, k=21, padding=10, groups=2, mode="reflect"), (2, 2, 37), "f32",
     dict(SLIDE_K_MIN=12, SLIDE_CO=2, VEC=4, RUN=16)),
    ("nt-stores", dict(cin=3, cout=5, k=3, padding=1), (2, 3, 33), "f32", dict(NT_STORE_MIN=1, VEC=4)),
    ("aligned-runs", dict(cin=2, cout=5, k=3, stride=2, padding=1), (2, 2, 37), "f32",
     dict(NT_STORE_MIN=1, ALIGNED_TAPS=64, ALIGNED_CO=2, ALIGNED_RUN=8, VEC=4)),
    ("depthwise-rows", dict(cin=3, cout=3, k=5, padding=2, groups=3, padding_mode="reflect"), (4, 3, 37), "f32",
     dict(DW_ROWS=2, DW_TILE_L=2, DW_TILES=2, VEC=4)),
    # one input channel: the weight-gradient partials sum the bias gradient too (BIAS_SUM), over staged phases
    # whose rows end in a partial vector
    ("bias-from-weight-pass", dict(cin=1, cout=5, k=4, stride=3, padding=1), (2, 1, 29), "f32",
     dict(STAGE_FLOPS=1, VEC=4, TILE_CO=2)),
    # stride-1 staged rows, whose lines inside the row go over as one vector (float32, float64)
    ("staged-stride-1-lines", dict(cin=3, cout=4, k=3, padding=1), (2, 3, 37), "f32", dict(STAGE_MIN=1, VEC=4)),
    ("staged-stride-1-lines-f64", dict(cin=2, cout=3, k=3, padding=2, mode="reflect"), (1, 2, 21), "f64",
     dict(STAGE_MIN=1, VEC=4)),
    # strided rows split into phases, lines inside the row copied as vectors (strides 2 and 4 by shuffles, 3
    # lane by lane, float64 in lines of 8), read by several channel tiles per work-item, the last partial
    ("staged-phase-lines-s2", dict(cin=2, cout=5, k=3, stride=2, padding=1), (1, 2, 70), "f32",
     dict(STAGE_FLOPS=1, PHASE_TILE_R=2, TILE_CO=2, VEC=4)),
    ("staged-phase-lines-s4", dict(cin=2, cout=3, k=8, stride=4, padding=2), (1, 2, 140), "f32",
     dict(STAGE_FLOPS=1, PHASE_TILE_R=2, TILE_CO=2, VEC=4)),
    ("staged-phase-lines-s3-f64", dict(cin=2, cout=3, k=8, stride=3, padding=1), (1, 2, 60), "f64",
     dict(STAGE_FLOPS=1, VEC=4)),
    # channel blocks of 16 (one full, one partial) copied in transposed squares of 16 positions
    ("weight-channel-lanes-v16", dict(cin=17, cout=3, k=3, padding=1), (2, 17, 40), "f32",
     dict(CI_LANES_MIN=1, CI_LANES_ACC=6, VEC=16, STAGE_FLOPS=1)),
    # rows of a few outputs with lanes along output channels: 7 channels in a tile of 8, 15 positions across
    # samples in tiles of 4; the input gradient's forward form (flipped weights) in float16
    ("output-lanes-reflect-strided", dict(cin=6, cout=7, k=3, stride=2, padding=2, mode="reflect"), (3, 6, 7), "f32",
     dict(LANES_L_MAX=64, LANES_FLOPS_MIN=1, LANES_POS=4, LANES_CV=2, VEC=4)),
    ("output-lanes-f16-grouped", dict(cin=8, cout=8, k=4, dilation=2, padding=3, groups=2), (2, 8, 5), "f16",
     dict(LANES_L_MAX=64, LANES_FLOPS_MIN=1, LANES_POS=3, LANES_CV=1, VEC=4, AS_FORWARD=True)),
    # a large-stride input gradient in columns (pointwise forward, then overlap-add), windows overlapping
    # across strides, reflected padding folded back
    ("input-grad-columns-reflect", dict(cin=2, cout=8, k=12, stride=8, padding=3, mode="reflect"), (2, 2, 40), "f32",
     dict(COLS_STRIDE_MIN=8)),
    # short rows in columns: forwards as dot products with the input's columns (3-channel tiles sliding
    # back, rows ending inside a vector), weight gradients over those columns (pad_columns) in 2-vector panels,
    # the last partly past C_in_g x K, 3-channel tiles sliding back over the last channels, two tiles per
    # work-item; input-gradient columns from the weights, 4-position tiles (the last partial), the last entry
    # tile sliding back, then the overlap-add
    ("short-columns-reflect-strided", dict(cin=5, cout=7, k=3, stride=2, dilation=2, padding=3, mode="reflect"),
     (3, 5, 9), "f32", dict(COLS_L_MAX=64, COLS_CHANNELS_MIN=1, COLS_CO=3, COLS_RV=2, COLS_STEPS=2, COLS_POS=4,
                            VEC=4)),
    ("short-columns-f16-grouped", dict(cin=8, cout=6, k=4, padding=2, groups=2, mode="circular"), (2, 8, 6), "f16",
     dict(COLS_L_MAX=64, COLS_CHANNELS_MIN=1, COLS_CO=2, COLS_RV=1, VEC=4)),
    # a strided weight gradient of a long kernel as the stride-1 gradient of its phases (sliding taps over
    # the phases as channels, then unphase_weights dropping the phases' taps past K)
    ("weight-stride-phases", dict(cin=2, cout=3, k=11, stride=3, padding=2, mode="reflect"), (2, 2, 40), "f32",
     dict(SLIDE_K_MIN=3, SLIDE_CO=2, VEC=4, RUN=16)),
    ("float64-reflect-strided", dict(cin=2, cout=4, k=3, stride=2, padding=2, mode="reflect"), (2, 2, 12), "f64", {}),
    ("float16-zeros", dict(cin=3, cout=4, k=3, padding=1), (2, 3, 11), "f16", {}),
]
STRATS = ("register", "local")


def _module(ocl, kw, dtype, rng):
    m = clconv.Conv1d(kw["cin"], kw["cout"], kw["k"], stride=kw.get("stride", 1), padding=kw.get("padding", 0),
                      dilation=kw.get("dilation", 1), groups=kw.get("groups", 1), bias=kw.get("bias", True),
                      padding_mode=kw.get("mode", "zeros"), device=ocl, dtype=dtype)
    state = {"weight": rng.uniform(-1, 1, m.weight.shape).astype(dtype)}
    if m.bias is not None:
        state["bias"] = rng.uniform(-1, 1, m.bias.shape).astype(dtype)
    m.load_state_dict(state)
    return m, state


@pytest.mark.parametrize("strat", STRATS)
@pytest.mark.parametrize("case_id, kw, shape, dt, extra", CASES, ids=[c[0] for c in CASES])
def test_kernels_clean(ocl, launches, capfd, strat, case_id, kw, shape, dt, extra):
    dtype = {"f64": np.float64, "f32": np.float32, "f16": np.float16}[dt]
    if dtype == np.float64 and not ocl.has_fp64:
        pytest.skip("no fp64")
    rng = np.random.default_rng(sum(map(ord, case_id)))
    capfd.readouterr()
    m, state = _module(ocl, kw, dtype, rng)
    x = rng.uniform(-1, 1, shape).astype(dtype)
    s, d, g, mode = m.stride[0], m.dilation[0], m.groups, m.padding_mode
    p = m.padding if isinstance(m.padding, str) else m.padding[0]
    w = state["weight"].astype(np.float64)
    y_ref = conv1d_ref(x.astype(np.float64), w, state.get("bias"), s, p, d, g, mode)
    dy = rng.uniform(-1, 1, y_ref.shape).astype(dtype)
    with clconv.params.override(strategy=strat, **extra):
        y = m(x)
        assert_no_reports(capfd, ocl, f"{case_id} {strat} forward")
        dx = m.backward(dy)
        m.backward(dy, input_grad=False)          # accumulating weight and bias gradients
        assert_no_reports(capfd, ocl, f"{case_id} {strat} backward")
    assert_close(y, y_ref, dtype, "forward")
    assert_close(dx, conv1d_input_grad_ref(x.shape, w, dy, s, p, d, g, mode), dtype, "input grad")
    assert_close(m.weight.grad.get(), 2 * conv1d_weight_grad_ref(x, w.shape, dy, s, p, d, g, mode), dtype,
                 "weight grad")
    if m.bias is not None:
        assert_close(m.bias.grad.get(), 2 * conv1d_bias_grad_ref(dy), dtype, "bias grad")
    assert_no_reports(capfd, ocl, f"{case_id} {strat} after download")
    _CASES_RUN.add((case_id, strat))


@pytest.mark.parametrize("strat", STRATS)
def test_functional_and_transpose_clean(ocl, launches, capfd, strat):
    """grad.conv1d_input / conv1d_weight with device arrays, and conv_transpose1d with a bias."""
    rng = np.random.default_rng(7)
    q = ocl.queue
    x = rng.uniform(-1, 1, (2, 4, 11)).astype(np.float32)
    w = rng.uniform(-1, 1, (6, 2, 3)).astype(np.float32)
    b = rng.uniform(-1, 1, (6,)).astype(np.float32)
    capfd.readouterr()
    with clconv.params.override(strategy=strat):
        xd, wd, bd = (cla.to_device(q, a) for a in (x, w, b))
        y = clconv.conv1d(xd, wd, bd, 2, 1, 1, 2)
        dy = rng.uniform(-1, 1, y.shape).astype(np.float32)
        dyd = cla.to_device(q, dy)
        dx = clconv.grad.conv1d_input(x.shape, wd, dyd, 2, 1, 1, 2)
        dw = clconv.grad.conv1d_weight(xd, w.shape, dyd, 2, 1, 1, 2)
        wt = rng.uniform(-1, 1, (4, 3, 3)).astype(np.float32)
        bt = rng.uniform(-1, 1, (6,)).astype(np.float32)
        yt = clconv.conv_transpose1d(x, wt, bt, 2, 1, 1, 2, 1)
        assert_no_reports(capfd, ocl, f"functional {strat}")
    assert_close(y.get(), conv1d_ref(x, w, b, 2, 1, 1, 2), np.float32, "conv1d")
    assert_close(dx.get(), conv1d_input_grad_ref(x.shape, w, dy, 2, 1, 1, 2), np.float32, "conv1d_input")
    assert_close(dw.get(), conv1d_weight_grad_ref(x, w.shape, dy, 2, 1, 1, 2), np.float32, "conv1d_weight")
    from reference import conv_transpose1d_ref
    assert_close(yt, conv_transpose1d_ref(x, wt, bt, 2, 1, 1, 2, 1), np.float32, "conv_transpose1d")


@pytest.mark.parametrize("strat", STRATS)
@pytest.mark.parametrize("mode", ["zeros", "circular"])
@pytest.mark.parametrize("shape", [(4, 2, 20), (1, 2, 90)], ids=["batch-pieces", "length-pieces"])
def test_pieces_clean(ocl, launches, capfd, strat, mode, shape):
    """Host arrays beyond a (lowered) buffer limit: batch blocks, and length blocks with halos."""
    rng = np.random.default_rng(8)
    m, state = _module(ocl, dict(cin=2, cout=3, k=3, stride=2, dilation=2, padding=3, mode=mode), np.float32, rng)
    x = rng.uniform(-1, 1, shape).astype(np.float32)
    w = state["weight"].astype(np.float64)
    y_ref = conv1d_ref(x, w, state["bias"], 2, 3, 2, 1, mode)
    dy = rng.uniform(-1, 1, y_ref.shape).astype(np.float32)
    old = ocl.buffer_limit
    capfd.readouterr()
    try:
        ocl.buffer_limit = 256
        with clconv.params.override(strategy=strat):
            y = m(x)
            dx = m.backward(dy)
        assert_no_reports(capfd, ocl, f"pieces {mode} {strat}")
    finally:
        ocl.buffer_limit = old
    assert_close(y, y_ref, np.float32, "forward")
    assert_close(dx, conv1d_input_grad_ref(x.shape, w, dy, 2, 3, 2, 1, mode), np.float32, "input grad")
    assert_close(m.weight.grad.get(), conv1d_weight_grad_ref(x, w.shape, dy, 2, 3, 2, 1, mode), np.float32, "dw")


def test_detector_active_on_clconv_context(ocl, capfd):
    """The context clconv's cases ran in really has the checks on (placed after those cases so that its
    deliberate reports cannot count against Oclgrind's error limit for them)."""
    queue = ocl.queue
    program = cl.Program(ocl.context, _BROKEN).build()
    out = cl.Buffer(ocl.context, cl.mem_flags.READ_WRITE, 16 * 4)
    err = _run_broken(capfd, queue, lambda: program.write_past_end(queue, (4,), (4,), out, np.int32(16)))
    assert any("Invalid write" in r for r in oclgrind_reports(err)), err
    if check_on("OCLGRIND_DATA_RACES"):
        err = _run_broken(capfd, queue, lambda: program.local_race(queue, (4,), (4,), out))
        assert any("data race" in r for r in oclgrind_reports(err)), err


def _gpu_model():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_model", ROOT / "bench" / "gpu_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("pass_name", ["forward", "input-gradient", "weight-gradient"])
def test_gpu_class_cost_figures(pass_name):
    """The class this process runs (CLCONV_DEVICE_CLASS, one of the GPU vendors') keeps its dense layer's
    figures within bench/gpu_model.py's targets: counted instructions, deterministic, not timings."""
    gpu_model = _gpu_model()
    cls = os.environ.get("CLCONV_DEVICE_CLASS")
    if cls not in gpu_model.GPU_CLASSES:
        pytest.skip(f"CLCONV_DEVICE_CLASS={cls!r} is not a GPU vendor's class")
    figures = gpu_model.measure(cls, pass_name, gpu_model.SHAPES["dense"], gpu_model.icd_folder())
    assert figures["executed/needed"] == pytest.approx(1.0), figures
    over = {name: figures[name] for name, target in gpu_model.TARGETS.items() if figures[name] > target}
    assert not over, f"{cls} {pass_name}: over the targets {gpu_model.TARGETS}: {over}"


def test_gpu_model_reads_the_instruction_counter():
    """bench/gpu_model.py's reading of Oclgrind's counter output, on literal text as Oclgrind 21.10 prints it."""
    text = ("Instructions executed for kernel 'k':\n"
            "            1024 - call llvm.fmuladd.v4f32()\n"
            "             100 - call llvm.fmuladd.f32()\n"
            "              50 - fmul\n"
            "             300 - phi\n"
            "             200 - load local (4096 bytes)\n"
            "              64 - load local (256 bytes)\n"
            "              10 - load global (400 bytes)\n"
            "               7 - br\n")
    totals = _gpu_model().parse_counts(text)
    assert totals["fmas"] == 1024 * 4 + 100 + 50
    assert totals["instructions"] == 1024 * 4 + 100 + 50 + 200 + 64 + 10 + 7  # phi compiles to nothing
    assert totals["local_loads"] == 256 + 64  # 4096 bytes in 16-byte loads; scalar loads count one each
    assert totals["global_bytes"] == 400
    assert totals["kernels"] == ["k"]


def test_every_kernel_ran(launches):
    """Runs last in this file: the cases above launched every __kernel that kernels/ defines."""
    expected = {(c[0], strat) for c in CASES for strat in STRATS if c[3] != "f64" or OCLGRIND.has_fp64}
    if not expected <= _CASES_RUN:
        pytest.skip("only part of this file ran in this process (a selection, or pytest-xdist workers: run with "
                    f"-n 0 for the coverage check); not here: {sorted(expected - _CASES_RUN)[:4]}")
    names = kernel_names()
    assert names, "no kernel sources found"
    missing = sorted(names - launches)
    assert not missing, f"kernels never run under Oclgrind: {missing} (ran: {sorted(launches)})"
