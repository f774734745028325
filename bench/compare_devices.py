#!/usr/bin/env python3
"""Time clconv's Conv1d on every OpenCL device against PyTorch's convolution.

For each benchmark shape and each pass (forward, backward-data, backward-weight, and forward+backward: a
training step) the script times clconv on every OpenCL device it finds and, when torch is importable, torch
on the CPU ("torch-cpu") and, when torch sees CUDA, cuDNN through torch ("torch-cuda").

    python bench/compare_devices.py                          # every named shape, every device
    python bench/compare_devices.py --quick                  # smoke run on scaled-down shapes
    python bench/compare_devices.py --shapes dense,depthwise --devices pocl --rounds 20
    python bench/compare_devices.py --random 30 --seed 1     # 30 layers sampled from realistic ranges
    python bench/compare_devices.py --scale --shapes scale-mid,scale-n1,scale-n256  # scale shapes (off by default)

Method: every column first runs each pass untimed (kernel compilation, caches, cuDNN's algorithm search),
then the timed rounds visit the columns round-robin, in a rotating order, so that noise on a shared machine
hits them alike (the scale shapes share their rounds too, and the report gives their throughput against
scale-mid). Arrays stay resident (device arrays for OpenCL, tensors for torch): nothing is copied to or
from the host while the clock runs; `queue.finish()` closes every timed OpenCL call and
`torch.cuda.synchronize()` every CUDA one. A sample repeats a call that takes under MIN_SAMPLE_S until the
sample lasts that long, and reports the mean per call; a sample of calls under LEAD_IN_BELOW_S starts with
one untimed call, because thread pools (torch's and PoCL's) that parked while the other columns ran can
take milliseconds to wake on a shared machine. The table gives the median and the interquartile range over
the rounds, GFLOP/s counted as 2*N*C_out*L_out*(C_in/groups)*K per convolution (three for
forward+backward), the speedup against torch, and the largest difference from torch-cpu's result relative
to its largest value (the weight gradient's for forward+backward).

The backward passes call clconv.grad.conv1d_input / conv1d_weight and torch.nn.grad's functions of the
same names, and are skipped while clconv.grad is missing. Those functions know only symmetric zero
padding, so for a shape with another padding_mode, or padding='same' with an even receptive field, both
libraries differentiate the convolution of the explicitly padded input (the padding itself, a copy, is left
out of the timing). forward+backward is what a training step asks of the layer, padding included: clconv's
Conv1d forward then backward (input, weight and bias gradients), against torch's module forward and
autograd backward on an input that requires its gradient, gradients reset before each step on both sides.

Peak: float32 multiply-adds from registers (bench/fma_peak.cl), measured on each OpenCL device before the
run and again, briefly, before the first round and after every round of every row. Each sample's share of
the peak is taken against the higher of the two peaks measured either side of its round; a sample that
beats that peak has it measured again, and one that still beats it is left out of the share and flags the
row. torch-cpu is held against the CPU device's peak, torch-cuda against the GPU device's.

Trust: a row whose samples spread more than SPREAD_LIMIT (slowest over fastest) is flagged, and so is
every speedup computed from it. The load average is recorded through the run with, where /proc/stat
exists, the cores other processes kept busy; the report and the console warn when the load at the start
exceeds half the cores, when other work took more than half the cores during the run, or when a device's
peak moved by more than PEAK_MOVE_LIMIT.

Writes results.json, results.md and, when matplotlib is installed, results.png into --out.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import re
import resource
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, NamedTuple
from pathlib import Path

import numpy as np
import pyopencl as cl

import clconv

PASSES = ("forward", "backward-data", "backward-weight", "forward+backward")
GRAD_FUNCTIONS = {"backward-data": "conv1d_input", "backward-weight": "conv1d_weight"}
# A training step (forward, then the input, weight and bias gradients) counts three convolutions.
PASS_CONVOLUTIONS = {"forward+backward": 3}
# torch columns: label -> the torch device they run on
TORCH_DEVICES = {"torch-cpu": "cpu", "torch-cuda": "cuda"}
TORCH_LABEL = "torch-cpu"
DEFAULT_ROUNDS = 10
QUICK_ROUNDS = 3  # enough to see a spread
WARMUP_CALLS = 2
MIN_SAMPLE_S = 0.01
LEAD_IN_BELOW_S = 0.25
MAX_REPEATS = 100
DTYPE = np.dtype(np.float32)
SPREAD_LIMIT = 2.0  # slowest over fastest sample of a row beyond which the row is flagged
PEAK_MOVE_LIMIT = 1.5  # highest over lowest peak sample of a device beyond which the report warns
PEAK_REMEASURES = 2  # extra peak measurements for a sample that beats the peaks either side of its round
FLAG = "!"


@dataclass(frozen=True)
class Shape:
    """A Conv1d configuration with its input: (n, c_in, length) -> c_out. padding is an int or, as in
    torch, 'same' or 'valid'."""

    name: str
    n: int
    c_in: int
    length: int
    c_out: int
    k: int
    stride: int = 1
    padding: int | str = 0
    dilation: int = 1
    groups: int = 1
    padding_mode: str = "zeros"

    @property
    def pads(self) -> tuple[int, int]:
        """(left, right) padding; 'same' puts the odd one on the right, as torch does."""
        if self.padding == "valid":
            return 0, 0
        if self.padding == "same":
            total = self.dilation * (self.k - 1)
            return total // 2, total - total // 2
        return self.padding, self.padding

    @property
    def length_out(self) -> int:
        return (self.length + sum(self.pads) - self.dilation * (self.k - 1) - 1) // self.stride + 1

    @property
    def flops(self) -> float:
        return 2.0 * self.n * self.c_out * self.length_out * (self.c_in // self.groups) * self.k

    def pass_flops(self, pass_name: str) -> float:
        return self.flops * PASS_CONVOLUTIONS.get(pass_name, 1)

    def describe(self) -> str:
        text = f"({self.n},{self.c_in},{self.length})->{self.c_out} K{self.k}"
        for tag, value, default in (("s", self.stride, 1), ("p", self.padding, 0), ("d", self.dilation, 1),
                                    ("g", self.groups, 1)):
            if value != default:
                text += f" {tag}{value}" if isinstance(value, int) else f" p={value}"
        return text if self.padding_mode == "zeros" else f"{text} {self.padding_mode}"


SHAPES = (
    Shape("example", 20, 16, 50, 33, 3, stride=2),
    Shape("dense", 32, 512, 1000, 512, 3, padding=1),
    Shape("depthwise", 16, 256, 4000, 256, 31, padding=15, groups=256),
    Shape("wav2vec", 8, 1, 16000, 512, 10, stride=5),
    Shape("tcn", 16, 64, 8192, 64, 3, padding=8, dilation=8),
    Shape("grouped", 32, 128, 2048, 128, 5, padding=2, groups=4),
    Shape("dense-reflect", 32, 512, 1000, 512, 3, padding=1, padding_mode="reflect"),
    Shape("strided", 8, 256, 4000, 256, 3, stride=2, padding=1),
    Shape("strided4", 8, 128, 8000, 256, 8, stride=4, padding=2),
    Shape("multiplier", 8, 128, 2000, 256, 31, padding=15, groups=128),
    Shape("filterbank", 8, 1, 16000, 80, 251, padding="same"),
    Shape("mid", 16, 192, 1000, 192, 5, padding=2),
    Shape("batch1", 1, 384, 500, 384, 3, padding=1),
    Shape("pointwise", 16, 256, 1000, 512, 1),
)

# Scale: a 64-channel dense layer at a mid size, on one sequence of 10^6 samples, and on a batch of 256.
SCALE_SHAPES = (
    Shape("scale-mid", 16, 64, 16384, 64, 3, padding=1),
    Shape("scale-n1", 1, 64, 10**6, 64, 3, padding=1),
    Shape("scale-n256", 256, 64, 4096, 64, 3, padding=1),
)
RANDOM_PREFIX = "random-"


def shape_set(name: str) -> str:
    """'random', 'scale' or 'named': the summaries give each set its own geometric mean."""
    return "random" if name.startswith(RANDOM_PREFIX) else "scale" if name.startswith("scale-") else "named"


def shrink(shape: Shape) -> Shape:
    """A tiny version of a shape for --quick: same kernel, stride, padding and dilation."""
    factor = max(1, max(shape.c_in, shape.c_out) // 16)
    c_in, c_out = max(1, shape.c_in // factor), max(1, shape.c_out // factor)
    # long enough for one output, and for reflect padding, which must be shorter than the input
    needed = max(shape.dilation * (shape.k - 1) + 1 - sum(shape.pads), max(shape.pads) + 1)
    return replace(shape, n=min(shape.n, 2), c_in=c_in, c_out=c_out, length=min(shape.length, max(128, needed)),
                   groups=math.gcd(shape.groups, c_in, c_out))


# --- random layers --------------------------------------------------------------------------------

RANDOM_GFLOP = (0.02, 1.0)  # a sampled layer's forward work, log-uniform in this range (GFLOP)
RANDOM_MAX_BYTES = 32 << 20  # its input and output together
RANDOM_MAX_LENGTH = 65536
RANDOM_LONG_KERNELS = 0.1  # share of layers with 65-512 taps (filterbanks, long depthwise filters)


def random_shapes(count: int, seed: int) -> list[Shape]:
    """`count` valid Conv1d layers drawn from realistic ranges, the same ones for the same seed."""
    rng = np.random.default_rng(seed)
    shapes = []
    while len(shapes) < count:
        shape = random_shape(rng, f"{RANDOM_PREFIX}{len(shapes) + 1:02d}")
        if shape is not None:
            shapes.append(shape)
    return shapes


def random_shape(rng: np.random.Generator, name: str) -> Shape | None:
    """One draw: channels 1-1024, mostly 8 or more (the output a quarter to four times the input), K 1-64
    (a few 65-512), stride 1-4, dilation 1-8; dense, grouped, depthwise (channel multiplier 1, 2 or 4) and
    single-channel filterbanks; the length set from a target work and capped by memory. None when the draw
    cannot make a layer within the caps (the caller draws again)."""

    def log_int(low: int, high: int) -> int:
        return int(round(math.exp(rng.uniform(math.log(low), math.log(high + 0.5) - 1e-9))))

    def channels(low: int, high: int) -> int:
        """Log-uniform, mostly from 8 (a few narrow ones, as raw signals are), and mostly a multiple of 8
        above 16, as layers are built."""
        c = log_int(low, 7) if low < 8 and rng.random() < 0.1 else log_int(max(low, 8), high)
        return 8 * round(c / 8) if c > 16 and rng.random() < 0.7 else c

    def widened(c: int) -> int:
        """An output width near the input's: a quarter to four times it."""
        return max(1, round(c * 2.0 ** int(rng.choice([-2, -1, 0, 0, 1, 2]))))

    long_kernel = rng.random() < RANDOM_LONG_KERNELS
    k = log_int(65, 512) if long_kernel else log_int(1, 64)
    kind = rng.choice(["filterbank", "depthwise"]) if long_kernel else \
        rng.choice(["dense", "grouped", "depthwise"], p=[0.55, 0.2, 0.25])
    if kind == "filterbank":
        c_in, c_out, groups = 1, channels(16, 256), 1
    elif kind == "depthwise":
        c_in = channels(1, 1024)
        groups, c_out = c_in, c_in * int(rng.choice([1, 1, 2, 4]))
    elif kind == "grouped":
        groups = int(rng.choice([2, 4, 8, 16, 32]))
        per_group = log_int(1, 1024 // groups)
        c_in, c_out = groups * per_group, groups * widened(per_group)
    else:
        c_in, groups = channels(1, 1024), 1
        c_out = widened(c_in)
    if max(c_in, c_out) > 1024:
        return None
    stride = int(rng.choice([1, 2, 3, 4], p=[0.55, 0.25, 0.05, 0.15]))
    dilation = log_int(2, 8) if k > 1 and not long_kernel and rng.random() < 0.3 else 1
    span = dilation * (k - 1)
    paddings = {"none": 0, "half": span // 2} | ({"same": "same"} if stride == 1 else {})
    padding = paddings[str(rng.choice(list(paddings)))]
    padding_mode = "zeros"
    if padding not in (0, "same") and rng.random() < 0.15:
        padding_mode = str(rng.choice(["reflect", "replicate", "circular"]))
    n = int(rng.choice([1, 2, 4, 8, 16, 32]))
    per_output = 2.0 * n * c_out * (c_in // groups) * k
    target = math.exp(rng.uniform(*np.log(RANDOM_GFLOP))) * 1e9
    by_memory = RANDOM_MAX_BYTES // (DTYPE.itemsize * n * (c_in * stride + c_out))
    length_out = min(int(target // per_output), by_memory, RANDOM_MAX_LENGTH)
    if length_out < 1:
        return None
    shape = Shape(name, n, c_in, 0, c_out, k, stride=stride, padding=padding, dilation=dilation, groups=groups,
                  padding_mode=padding_mode)
    length = (length_out - 1) * stride + span + 1 - sum(shape.pads)
    shape = replace(shape, length=length)
    if length < 1 or max(shape.pads) >= length:  # reflect and circular padding must be shorter than the input
        return None
    if DTYPE.itemsize * n * (c_in * length + c_out * length_out) > RANDOM_MAX_BYTES:
        return None
    return shape


# --- inputs ---------------------------------------------------------------------------------------

@dataclass
class Inputs:
    """Host arrays shared by every column; x_bw and padding_bw are what the backward passes see."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    grad_output: np.ndarray
    x_bw: np.ndarray
    padding_bw: int


def make_inputs(shape: Shape, rng: np.random.Generator) -> Inputs:
    def normal(*dims):
        return rng.standard_normal(dims, dtype=DTYPE)

    x = normal(shape.n, shape.c_in, shape.length)
    bound = 1.0 / math.sqrt(shape.c_in // shape.groups * shape.k)
    weight = rng.uniform(-bound, bound, (shape.c_out, shape.c_in // shape.groups, shape.k)).astype(DTYPE)
    bias = rng.uniform(-bound, bound, shape.c_out).astype(DTYPE)
    grad_output = normal(shape.n, shape.c_out, shape.length_out)
    left, right = shape.pads
    if shape.padding_mode == "zeros" and left == right:
        return Inputs(x, weight, bias, grad_output, x, left)
    numpy_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}[shape.padding_mode]
    x_padded = np.pad(x, ((0, 0), (0, 0), (left, right)), mode=numpy_mode)
    return Inputs(x, weight, bias, grad_output, x_padded, 0)


def buffer_bytes(shape: Shape) -> tuple[int, int]:
    """(largest array, all arrays resident at once) in bytes for one column of one shape."""
    x = shape.n * shape.c_in * (shape.length + sum(shape.pads)) * DTYPE.itemsize
    y = shape.n * shape.c_out * shape.length_out * DTYPE.itemsize
    weight = shape.c_out * (shape.c_in // shape.groups) * shape.k * DTYPE.itemsize
    return max(x, y), 3 * x + 2 * y + 2 * weight


def host_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo; None where there is none (no check is made then)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def device_room(device, shape: Shape) -> str | None:
    """Why `shape` cannot run on `device`, or None when its arrays fit."""
    largest, total = buffer_bytes(shape)
    if largest > device.max_alloc:
        return f"needs a {gib(largest)} array; {device.name} allocates at most {gib(device.max_alloc)}"
    if total > device.global_mem_size:
        return f"needs {gib(total)}; {device.name} has {gib(device.global_mem_size)}"
    return None


def host_room(shape: Shape) -> str | None:
    """Why the host arrays of `shape` (inputs, torch's arrays, fetched results) do not fit, or None."""
    _, total = buffer_bytes(shape)
    available = host_available_bytes()
    if available is not None and 2 * total > available:
        return f"needs about {gib(2 * total)} of host memory; {gib(available)} available"
    return None


# --- peak -----------------------------------------------------------------------------------------

PEAK_SOURCE = Path(__file__).with_name("fma_peak.cl")
PEAK_ACC = 12
PEAK_SECONDS = 0.1
PEAK_SAMPLE_S = 0.02  # one peak sample between rounds: as long as a timed sample, so it sees the same load


class PeakMeter:
    """fma_peak.cl on one OpenCL device (float32 multiply-adds from registers): a careful measurement
    before the run and short samples between the rounds."""

    def __init__(self, label: str, device):
        self.label = label
        context = device.context
        program = cl.Program(context, PEAK_SOURCE.read_text()).build(options=[f"-DACC={PEAK_ACC}"])
        self.kernel = program.fma_peak
        cpu = device.type == "CPU"
        self.items = device.cl_device.max_compute_units * (4 if cpu else 2048)
        self.local = (1,) if cpu else None
        self.out = cl.Buffer(context, cl.mem_flags.WRITE_ONLY, 4 * self.items)
        self.queue = cl.CommandQueue(context)
        self.before_gflops: float | None = None
        self.sample_iters = 16

    def seconds(self, iters: int) -> float:
        start = time.perf_counter()
        self.kernel(self.queue, (self.items,), self.local, self.out, np.int32(iters), np.float32(0.999999),
                    np.float32(1e-6))
        self.queue.finish()
        return time.perf_counter() - start

    def gflops(self, iters: int, seconds: float) -> float:
        return 2 * 16 * PEAK_ACC * iters * self.items / seconds / 1e9

    def measure(self) -> float:
        """GFLOP/s before the run: median of 3 runs of at least PEAK_SECONDS each."""
        iters = 16
        self.seconds(iters)
        while (seconds := self.seconds(iters)) < PEAK_SECONDS and iters < 1 << 30:
            iters *= 2
        seconds = statistics.median([seconds, self.seconds(iters), self.seconds(iters)])
        self.sample_iters = max(1, int(iters * PEAK_SAMPLE_S / seconds))
        self.before_gflops = self.gflops(iters, seconds)
        return self.before_gflops

    def sample(self) -> float:
        """GFLOP/s of one run of about PEAK_SAMPLE_S."""
        return self.gflops(self.sample_iters, self.seconds(self.sample_iters))


def held_peak(gflops: float, neighbours: list, remeasure: Callable[[], float],
              tries: int = PEAK_REMEASURES) -> tuple[float, list]:
    """The peak a sample is held against: the higher of the peaks measured either side of its round (load
    only ever lowers a peak measurement), measured again up to `tries` times while the sample beats it.
    Returns that peak and the measurements taken again."""
    peak, again = max(neighbours), []
    while gflops > peak and len(again) < tries:
        again.append(remeasure())
        peak = max(peak, again[-1])
    return peak, again


def share_of_peak(gflops: float, peak: float) -> float | None:
    """gflops / peak, or None for a sample that beats the peak (it cannot be placed against it)."""
    return gflops / peak if gflops <= peak else None


# --- columns --------------------------------------------------------------------------------------

@dataclass
class Column:
    """One timed implementation: an OpenCL device through clconv, or torch on one of its devices."""

    label: str
    device: object = None  # clconv.Device for an OpenCL column
    torch_device: object = None  # torch.device for a torch column
    synchronize: Callable[[], None] = lambda: None  # waits for the column's queued work
    peak: PeakMeter | None = None  # the meter of the device this column's shares are held against

    @property
    def kind(self) -> str:
        return "opencl" if self.device is not None else "torch"

    def finish(self) -> None:
        self.synchronize()

    def fetch(self, result) -> np.ndarray:
        return result.get() if self.device is not None else result.detach().cpu().numpy()

    def info(self) -> dict:
        peak = {"peak_gflops": self.peak.before_gflops if self.peak else None,
                "peak_device": self.peak.label if self.peak else None}
        if self.device is None:
            return {"label": self.label, "kind": "torch", "torch_device": str(self.torch_device), **peak}
        d = self.device
        return {"label": self.label, "kind": "opencl", "name": d.name, "platform": d.platform_name,
                "type": d.type, "driver": d.driver_version, "spec": d.spec,
                "compute_units": d.cl_device.max_compute_units, **peak}


def opencl_column(label: str, device) -> Column:
    return Column(label, device=device, synchronize=device.queue.finish)


def torch_columns(torch) -> list[Column]:
    """torch-cpu, and torch-cuda (cuDNN) when torch sees CUDA."""
    labels = [TORCH_LABEL] + (["torch-cuda"] if torch.cuda.is_available() else [])
    columns = []
    for label in labels:
        device = torch.device(TORCH_DEVICES[label])
        if device.type == "cuda":
            # cuDNN picks each layer's fastest algorithm during the warm-up calls; float32 as clconv
            # computes, not TF32
            torch.backends.cudnn.benchmark = True
            torch.backends.cudnn.allow_tf32 = False
            columns.append(Column(label, torch_device=device, synchronize=torch.cuda.synchronize))
        else:
            columns.append(Column(label, torch_device=device))
    return columns


def assign_peaks(columns: list[Column], meters: dict) -> None:
    """An OpenCL column is held against its own device's peak; torch-cpu against the fastest CPU device's,
    a torch CUDA column against the fastest GPU device's (none where there is no such device)."""
    for column in columns:
        if column.device is not None:
            column.peak = meters.get(column.label)
            continue
        wanted = "GPU" if column.torch_device.type == "cuda" else "CPU"
        candidates = [meters[c.label] for c in columns
                      if c.device is not None and c.device.type == wanted and c.label in meters]
        column.peak = max(candidates, key=lambda m: m.before_gflops, default=None)


def speedup_references(info: dict, labels: list[str]) -> list[str]:
    """The torch columns an OpenCL column (its info()) is compared with: torch-cpu, and torch-cuda for a GPU
    device."""
    if info["kind"] != "opencl":
        return []
    wanted = [TORCH_LABEL] + (["torch-cuda"] if info["type"] == "GPU" else [])
    return [label for label in wanted if label in labels]
def device_label(device, taken: set) -> str:
    lowered = device.platform_name.lower()
    vendor = "pocl" if "portable computing language" in lowered else re.sub(r"[^a-z0-9]", "", lowered.split()[0])
    label = f"{vendor or 'cl'}-{device.type.lower()}"
    return label if label not in taken else f"{label}{device.index}"


def select_devices(filters: str | None) -> list:
    """clconv.devices() matching any comma-separated filter: an index, a "P:D" spec, or a substring
    of the column label, device name or platform name (case-insensitive)."""
    found = clconv.devices()
    tokens = [t.strip().lower() for t in (filters or "").split(",") if t.strip()]
    labels = column_labels(found)

    def wanted(device, label):
        hay = f"{label} {device.name} {device.platform_name}".lower()
        return not tokens or any(t in (str(device.index), device.spec) or t in hay for t in tokens)

    chosen = []
    for device, label in zip(found, labels):
        if not wanted(device, label):
            continue
        if device.compile_error is not None:
            warn(f"no {label} column: {device.name} ({device.platform_name}) cannot build kernels: "
                 f"{device.compile_error}")
            continue
        chosen.append(device)
    return chosen


def column_labels(found: list) -> list[str]:
    labels = []
    for device in found:
        labels.append(device_label(device, set(labels)))
    return labels


def clconv_runners(device, grad, shape: Shape, inputs: Inputs) -> dict:
    """pass -> a call that enqueues the pass on `device` and returns its (device-array) result."""
    m = clconv.Conv1d(shape.c_in, shape.c_out, shape.k, stride=shape.stride, padding=shape.padding,
                      dilation=shape.dilation, groups=shape.groups, padding_mode=shape.padding_mode,
                      device=device)
    m.load_state_dict({"weight": inputs.weight, "bias": inputs.bias})
    x, grad_output = device.to_device(inputs.x), device.to_device(inputs.grad_output)

    def training_step():
        m.zero_grad()
        m(x)
        m.backward(grad_output)
        return m.weight.grad

    runners = {"forward": lambda: m(x), "forward+backward": training_step}
    if grad is None:
        return runners
    weight = m.weight.data
    x_bw = x if inputs.x_bw is inputs.x else device.to_device(inputs.x_bw)
    options = dict(stride=shape.stride, padding=inputs.padding_bw, dilation=shape.dilation, groups=shape.groups)
    if hasattr(grad, "conv1d_input"):
        runners["backward-data"] = lambda: grad.conv1d_input(x_bw.shape, weight, grad_output, **options)
    if hasattr(grad, "conv1d_weight"):
        runners["backward-weight"] = lambda: grad.conv1d_weight(x_bw, weight.shape, grad_output, **options)
    return runners


def torch_runners(torch, column: Column, shape: Shape, inputs: Inputs) -> dict:
    """pass -> a call that runs the pass with torch on the column's device and returns its tensor."""
    device = column.torch_device
    conv = torch.nn.Conv1d(shape.c_in, shape.c_out, shape.k, stride=shape.stride, padding=shape.padding,
                           dilation=shape.dilation, groups=shape.groups, padding_mode=shape.padding_mode,
                           device=device)

    def tensor(array):
        return torch.from_numpy(array).to(device)

    weight, bias = tensor(inputs.weight), tensor(inputs.bias)
    with torch.no_grad():
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
    x, grad_output = tensor(inputs.x), tensor(inputs.grad_output)
    x_bw = x if inputs.x_bw is inputs.x else tensor(inputs.x_bw)
    options = dict(stride=shape.stride, padding=inputs.padding_bw, dilation=shape.dilation, groups=shape.groups)

    x_train = x.clone().requires_grad_(True)

    def forward():
        with torch.no_grad():
            return conv(x)

    def training_step():
        conv.zero_grad(set_to_none=True)
        x_train.grad = None
        conv(x_train).backward(grad_output)
        return conv.weight.grad

    return {
        "forward": forward,
        "backward-data": lambda: torch.nn.grad.conv1d_input(x_bw.shape, weight, grad_output, **options),
        "backward-weight": lambda: torch.nn.grad.conv1d_weight(x_bw, weight.shape, grad_output, **options),
        "forward+backward": training_step,
    }


# --- measurement ----------------------------------------------------------------------------------

def timed_sample(run, column: Column, repeats: int, lead_in: bool) -> float:
    """Seconds per call, averaged over `repeats` calls that each end with the column's finish()."""
    if lead_in:
        run()
        column.finish()
    start = time.perf_counter()
    for _ in range(repeats):
        run()
        column.finish()
    return (time.perf_counter() - start) / repeats


def warm_up(run, column: Column, calls: int) -> tuple[np.ndarray, int, bool]:
    """Run untimed calls; return the first result on the host, the repeats a sample needs and whether
    samples need a lead-in call."""
    result = run()
    column.finish()
    first = column.fetch(result)
    del result
    seconds = min(timed_sample(run, column, 1, False) for _ in range(calls - 1)) if calls > 1 else MIN_SAMPLE_S
    return first, max(1, min(MAX_REPEATS, int(MIN_SAMPLE_S / max(seconds, 1e-9)))), seconds < LEAD_IN_BELOW_S


def relative_error(result: np.ndarray, reference: np.ndarray) -> float:
    """max|result - reference| / max|reference| (0 for empty arrays)."""
    if reference.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(reference))), 1e-30)
    return float(np.max(np.abs(result.astype(np.float64) - reference))) / scale


def sample_statistics(seconds: list, flops: float, shares: list) -> dict:
    """A column's result on one row from its samples (seconds per call) and their shares of the peak
    (None for a sample that beat the peak even measured again): median, interquartile range, spread and
    the row's flags."""
    p25, median, p75 = np.percentile(seconds, [25, 50, 75])
    spread = max(seconds) / min(seconds)
    placed = [s for s in shares if s is not None]
    flags = []
    if len(seconds) < 2:
        flags.append("one sample: its spread is unknown")
    elif spread > SPREAD_LIMIT:
        flags.append(f"samples spread {spread:.1f}x (slowest over fastest of {len(seconds)})")
    if len(placed) < len(shares):
        flags.append(f"{len(shares) - len(placed)} of {len(shares)} samples beat the peak measured beside "
                     f"them, measured again {PEAK_REMEASURES} times: left out of the share")
    return {"median_ms": median * 1e3, "p25_ms": p25 * 1e3, "p75_ms": p75 * 1e3, "min_ms": min(seconds) * 1e3,
            "max_ms": max(seconds) * 1e3, "spread": spread, "gflops": flops / median / 1e9,
            "share_of_peak": statistics.median(placed) if placed else None,
            "over_peak": len(shares) - len(placed), "flags": flags, "times_ms": [t * 1e3 for t in seconds]}


def add_speedups(rows: list[dict], columns: list[dict]) -> None:
    """Each OpenCL column's speedup over the torch columns it is compared with (speedup_references), as
    the ratio of the medians; a speedup from a flagged result on either side is flagged."""
    labels = [c["label"] for c in columns]
    for row in rows:
        for info in columns:
            result = row["results"].get(info["label"])
            if result is None:
                continue
            for reference in speedup_references(info, labels):
                other = row["results"].get(reference)
                if other is not None:
                    result.setdefault("speedup_vs", {})[reference] = other["median_ms"] / result["median_ms"]
                    result.setdefault("speedup_flagged", {})[reference] = bool(result["flags"] or other["flags"])


class Entry(NamedTuple):
    """One shape of a group timed together: its runners per column label and the columns that run it."""
    shape: Shape
    runners: dict
    columns: list


def measure_group(entries: list, pass_name: str, rounds: int, warmup: int) -> list[dict]:
    """One row of results per entry: per column its timings, or the error that stopped it. Every round
    samples each (entry, column) pair once, in a rotating order, so that noise on a shared machine hits
    them alike: columns against each other, and the shapes of a group (the scale shapes) too. The peak of
    every device a column is held against is sampled before the first round and after each round."""
    rows, pairs, plans, outputs = [], [], {}, {}
    for e, entry in enumerate(entries):
        shape = entry.shape
        row = {"shape": shape.name, "dims": asdict(shape), "describe": shape.describe(), "pass": pass_name,
               "gflop": shape.pass_flops(pass_name) / 1e9, "results": {}, "errors": {}, "peaks": {}}
        rows.append(row)
        for column in entry.columns:
            run = entry.runners.get(column.label, {}).get(pass_name)
            if run is None:
                continue
            try:
                outputs[e, column.label], *plans[e, column.label] = warm_up(run, column, warmup)
            except Exception as exc:  # one failing column must not lose the others' results
                row["errors"][column.label] = f"{type(exc).__name__}: {exc}"
                continue
            pairs.append((e, column))
    meters = list({id(c.peak): c.peak for _, c in pairs if c.peak is not None}.values())
    peaks = {m.label: [m.sample()] for m in meters}
    again = {m.label: [] for m in meters}
    times = {(e, c.label): [] for e, c in pairs}
    held = {(e, c.label): [] for e, c in pairs}
    shares = {(e, c.label): [] for e, c in pairs}
    for r in range(rounds):
        for i in range(len(pairs)):
            e, column = pairs[(r + i) % len(pairs)]
            times[e, column.label].append(timed_sample(entries[e].runners[column.label][pass_name], column,
                                                       *plans[e, column.label]))
        for m in meters:
            peaks[m.label].append(m.sample())
        for e, column in pairs:
            if column.peak is None:
                continue
            gflops = entries[e].shape.pass_flops(pass_name) / times[e, column.label][-1] / 1e9
            peak, measured = held_peak(gflops, peaks[column.peak.label][-2:], column.peak.sample)
            again[column.peak.label] += measured
            held[e, column.label].append(peak)
            shares[e, column.label].append(share_of_peak(gflops, peak))
    for e, column in pairs:
        samples, key = times[e, column.label], (e, column.label)
        result = sample_statistics(samples, entries[e].shape.pass_flops(pass_name), shares[key])
        result.update(repeats=plans[key][0], held_peaks_gflops=held[key] or None)
        reference = outputs.get((e, TORCH_LABEL))
        if reference is not None and column.label != TORCH_LABEL:
            result["max_rel_err"] = relative_error(outputs[key], reference.astype(np.float64))
        rows[e]["results"][column.label] = result
    for row in rows:
        row["peaks"] = {label: {"between_rounds_gflops": values, "measured_again_gflops": again[label]}
                        for label, values in peaks.items()}
    return rows


# --- load -----------------------------------------------------------------------------------------

MIN_LOAD_INTERVAL_S = 1.0  # shorter intervals make /proc/stat's clock-tick counts too coarse


def load_average() -> list | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes have run since boot (/proc/stat), None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    except (OSError, ValueError):
        return None
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class LoadMonitor:
    """The machine's load through the run: the load averages at each sample and, where /proc/stat exists,
    the cores other processes kept busy since the previous sample (every CPU's busy time less this
    process's)."""

    def __init__(self):
        self.started = time.monotonic()
        self.samples: list[dict] = []
        self.last = (self.started, busy_cpu_seconds(), own_cpu_seconds())
        self.samples.append({"at": "start", "elapsed_s": 0.0, "load_average": load_average(), "other_cores": None})

    def sample(self, at: str, final: bool = False) -> None:
        """Record a sample; one less than MIN_LOAD_INTERVAL_S after the previous is skipped, unless final."""
        now, busy, own = time.monotonic(), busy_cpu_seconds(), own_cpu_seconds()
        then, busy_then, own_then = self.last
        if now - then < MIN_LOAD_INTERVAL_S and not final:
            return
        other = None
        if busy is not None and busy_then is not None and now - then >= MIN_LOAD_INTERVAL_S:
            other = round(max(0.0, (busy - busy_then - (own - own_then)) / (now - then)), 2)
        self.samples.append({"at": at, "elapsed_s": round(now - self.started, 1), "load_average": load_average(),
                             "other_cores": other})
        self.last = (now, busy, own)


def load_warnings(samples: list[dict], cores: int) -> list[str]:
    """Why the timings may not hold, from LoadMonitor's samples: the 1-minute load average at the start
    above half the cores; other processes keeping more than half the cores busy between two samples; or,
    without that count, the 1-minute load average rising more than half the cores above the cores this
    benchmark keeps busy itself."""
    warnings = []
    start = samples[0]["load_average"]
    if start and start[0] > cores / 2:
        warnings.append(f"load average {start[0]:.2f} at the start exceeds half the {cores} cores: "
                        "other work is running")
    later = samples[1:]
    counted = [s for s in later if s["other_cores"] is not None]
    busy = [s for s in counted if s["other_cores"] > cores / 2]
    if busy:
        worst = max(busy, key=lambda s: s["other_cores"])
        warnings.append(f"the load moved during the run: other processes kept up to {worst['other_cores']:.1f} of "
                        f"the {cores} cores busy ({len(busy)} of {len(counted)} intervals above half; "
                        f"worst up to {worst['elapsed_s']:.0f} s)")
    elif not counted:
        risen = [s for s in later if s["load_average"] and s["load_average"][0] > cores * 1.5]
        if risen:
            warnings.append(f"the load moved during the run: load average up to "
                            f"{max(s['load_average'][0] for s in risen):.2f} on {cores} cores")
    return warnings


def peak_warnings(peaks: dict) -> list[str]:
    """A warning per device whose peak samples (label -> GFLOP/s) moved by more than PEAK_MOVE_LIMIT."""
    return [f"the peak of {label} moved between {fmt(min(values))} and {fmt(max(values))} GFLOP/s during the run"
            for label, values in peaks.items() if values and max(values) > PEAK_MOVE_LIMIT * min(values)]
class Progress:
    """A tqdm bar when tqdm is installed, plain prints otherwise; one line per finished step."""

    def __init__(self, total: int):
        try:
            from tqdm import tqdm
        except ImportError:
            self.bar = None
        else:
            self.bar = tqdm(total=total, unit="pass", file=sys.stdout)
        self.total, self.done = total, 0

    def step(self, message: str) -> None:
        self.done += 1
        line = f"[{self.done}/{self.total}] {message}"
        if self.bar is None:
            print(line, flush=True)
        else:
            self.bar.write(line)
            self.bar.update(1)

    def note(self, message: str) -> None:
        (print if self.bar is None else self.bar.write)(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summary(row: dict) -> str:
    parts = []
    for label, r in row["results"].items():
        part = f"{label} {r['median_ms']:.3f} ms"
        reasons = [f"{r['spread']:.1f}x spread" if r["spread"] > SPREAD_LIMIT else None,
                   "beat the peak" if r["over_peak"] else None, "one sample" if len(r["times_ms"]) < 2 else None]
        if r["flags"]:
            part += f" {FLAG}" + ", ".join(reason for reason in reasons if reason)
        for reference, ratio in r.get("speedup_vs", {}).items():
            part += f" ({ratio:.2f}x vs {reference}{' ' + FLAG if r['speedup_flagged'][reference] else ''})"
        parts.append(part)
    parts += [f"{label} FAILED" for label in row["errors"]]
    parts += [f"{label} skipped" for label in row.get("skipped", {})]
    return f"{row['shape']} {row['pass']}: " + ", ".join(parts)


def shape_groups(shapes: list) -> list[list]:
    """Shapes timed together: the scale shapes share their rounds, so that drift of the machine over the run
    hits them alike and their ratios to scale-mid hold; every other shape is timed on its own."""
    scale = [s for s in shapes if shape_set(s.name) == "scale"]
    return [[s] for s in shapes if s not in scale] + ([scale] if scale else [])


def run_benchmark(shapes: list, columns: list, grad, torch, rounds: int, warmup: int,
                  monitor: LoadMonitor) -> list[dict]:
    passes = [p for p in PASSES if p not in GRAD_FUNCTIONS or (grad is not None and hasattr(grad, GRAD_FUNCTIONS[p]))]
    progress = Progress(len(shapes) * len(passes))
    infos = [c.info() for c in columns]
    rows = []
    rng = np.random.default_rng(0)
    for group in shape_groups(shapes):
        entries, skips, setup_errors = [], [], []
        for shape in group:
            skipped = {c.label: device_room(c.device, shape) for c in columns if c.device is not None}
            host_reason = host_room(shape)
            if host_reason:
                skipped = {c.label: host_reason for c in columns}
            skipped = {label: why for label, why in skipped.items() if why}
            runnable = [c for c in columns if c.label not in skipped]
            inputs = make_inputs(shape, rng) if runnable else None
            for label, why in skipped.items():
                progress.note(f"{shape.name}: {label} skipped: {why}")
            runners, errors = {}, {}
            for column in runnable:
                try:
                    runners[column.label] = (torch_runners(torch, column, shape, inputs) if column.device is None
                                             else clconv_runners(column.device, grad, shape, inputs))
                except Exception as exc:
                    errors[column.label] = f"{type(exc).__name__}: {exc}"
            entries.append(Entry(shape, runners, runnable))
            skips.append(skipped)
            setup_errors.append(errors)
            del inputs
        group_rows = []
        for pass_name in passes:
            measured = measure_group(entries, pass_name, rounds, warmup)
            add_speedups(measured, infos)
            monitor.sample(f"{group[0].name} {pass_name}")
            for row, skipped, errors in zip(measured, skips, setup_errors):
                row["errors"].update(errors)
                row["skipped"] = skipped
                group_rows.append(row)
                progress.step(summary(row))
                for label, message in row["errors"].items():
                    progress.note(f"    {label} failed: {message}")
        order = [shape.name for shape in group]
        rows += sorted(group_rows, key=lambda row: (order.index(row["shape"]), PASSES.index(row["pass"])))
        del entries
        for column in columns:
            if column.device is not None:
                column.device.allocator.free_held()
    progress.close()
    return rows


# --- reports --------------------------------------------------------------------------------------

def machine_info(torch, columns: list[Column]) -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(), "cpu": cpu_model(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "pyopencl": cl.VERSION_TEXT, "clconv": clconv.__version__}
    if torch is not None:
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        if any(c.torch_device is not None and c.torch_device.type == "cuda" for c in columns):
            info.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                        cuda_device=torch.cuda.get_device_name())
    return info


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return ""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if value >= 1 else f"{value:.3g}"


def fmt_ratio(ratio: float, flagged: bool) -> str:
    return f"{ratio:.2f}x" + (f" {FLAG}" if flagged else "")
def scale_lines(report: dict) -> list[str]:
    """Throughput of the scale shapes against scale-mid's, per column and pass (they share their rounds)."""
    by_key = {(row["shape"], row["pass"]): row["results"] for row in report["rows"]}
    others = [name for name in ("scale-n1", "scale-n256") if any(shape == name for shape, _ in by_key)]
    if not others or not any(shape == "scale-mid" for shape, _ in by_key):
        return []
    lines = ["| column | pass | " + " | ".join(others) + " |", "|---|---|" + "---|" * len(others)]
    for column in report["columns"]:
        label = column["label"]
        for pass_name in PASSES:
            mid = by_key.get(("scale-mid", pass_name), {}).get(label)
            if mid is None:
                continue
            cells = []
            for name in others:
                r = by_key.get((name, pass_name), {}).get(label)
                cells.append(f"{r['gflops'] / mid['gflops'] - 1:+.0%} ({fmt(r['gflops'])} vs {fmt(mid['gflops'])})"
                             if r else "")
            lines.append(f"| {label} | {pass_name} | " + " | ".join(cells) + " |")
    return ["", "Scale: GFLOP/s against scale-mid's, timed in the same rounds:", "", *lines]


SUMMARY_PASSES = ("forward", "forward+backward")


def speedup_summaries(rows: list[dict], columns: list[dict]) -> list[dict]:
    """Per shape set (named, random), OpenCL column, torch column and pass (forward, forward+backward):
    the geometric mean of the speedups over the layers, and the worst layer, with how many were flagged."""
    labels = [c["label"] for c in columns]
    summaries = []
    for set_name in ("named", "random"):
        for info in columns:
            for reference in speedup_references(info, labels):
                for pass_name in SUMMARY_PASSES:
                    found = [(row["shape"], row["results"][info["label"]]) for row in rows
                             if shape_set(row["shape"]) == set_name and row["pass"] == pass_name
                             and reference in row["results"].get(info["label"], {}).get("speedup_vs", {})]
                    if not found:
                        continue
                    ratios = [r["speedup_vs"][reference] for _, r in found]
                    flagged = [r["speedup_flagged"][reference] for _, r in found]
                    worst = min(range(len(found)), key=ratios.__getitem__)
                    summaries.append({"set": set_name, "column": info["label"], "reference": reference,
                                      "pass": pass_name, "layers": len(found), "flagged": sum(flagged),
                                      "geomean": math.exp(statistics.fmean(math.log(x) for x in ratios)),
                                      "worst": {"shape": found[worst][0], "speedup": ratios[worst],
                                                "flagged": flagged[worst]}})
    return summaries


def summary_lines(summaries: list[dict]) -> list[str]:
    if not summaries:
        return []
    lines = ["| layers | column | vs | pass | geometric mean | worst layer |", "|---|---|---|---|---|---|"]
    for s in summaries:
        count = f"{s['set']} ({s['layers']}" + (f", {s['flagged']} flagged {FLAG})" if s["flagged"] else ")")
        worst = s["worst"]
        lines.append(f"| {count} | {s['column']} | {s['reference']} | {s['pass']} | "
                     f"{fmt_ratio(s['geomean'], bool(s['flagged']))} | "
                     f"{fmt_ratio(worst['speedup'], worst['flagged'])} {worst['shape']} |")
    return ["", "Speedups over torch: geometric mean over the layers of each set, and the worst layer "
            f"(a mean that includes a flagged row carries {FLAG}):", "", *lines]


def markdown(report: dict) -> str:
    infos = report["columns"]
    labels = [c["label"] for c in infos]
    has_peak = {c["label"]: c.get("peak_gflops") is not None for c in infos}
    references = {c["label"]: speedup_references(c, labels) for c in infos}
    header = ["shape", "pass", "GFLOP"]
    for label in labels:
        header += [f"{label} ms", f"{label} IQR ms", f"{label} GFLOP/s"] + ([f"{label} % peak"] if has_peak[label] else [])
        header += [f"{label} vs {reference}" for reference in references[label]]
    if TORCH_LABEL in labels and len(labels) > 1:
        header.append("max rel err")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    flag_notes = []
    for row in report["rows"]:
        cells = [f"{row['shape']} {row['describe']}", row["pass"], fmt(row["gflop"], 2)]
        for label in labels:
            r = row["results"].get(label)
            missing = "skipped" if label in row["skipped"] else "failed" if label in row["errors"] else "n/a"
            if r:
                mark = f" {FLAG}" if r["flags"] else ""
                cells += [fmt(r["median_ms"], 2) + mark, f"{fmt(r['p25_ms'], 2)}-{fmt(r['p75_ms'], 2)}", fmt(r["gflops"])]
                flag_notes += [f"- {row['shape']} {row['pass']} {label}: {flag}" for flag in r["flags"]]
            else:
                cells += [missing, "", ""]
            if has_peak[label]:
                if r and r["share_of_peak"] is not None:
                    cells.append(f"{100 * r['share_of_peak']:.0f}%" + (f" {FLAG}" if r["flags"] else ""))
                else:  # no sample placed: flagged where every one beat the peak, blank where none was held
                    cells.append(FLAG if r and r["over_peak"] else "")
            for reference in references[label]:
                cells.append(fmt_ratio(r["speedup_vs"][reference], r["speedup_flagged"][reference])
                             if r and reference in r.get("speedup_vs", {}) else "")
        if TORCH_LABEL in labels and len(labels) > 1:
            errors = [r["max_rel_err"] for r in row["results"].values() if "max_rel_err" in r]
            cells.append(f"{max(errors):.1e}" if errors else "")
        lines.append("| " + " | ".join(cells) + " |")

    machine, settings, load = report["machine"], report["settings"], report["load"]
    start, end = load["samples"][0]["load_average"], load["samples"][-1]["load_average"]
    counted = [s["other_cores"] for s in load["samples"] if s["other_cores"] is not None]
    out = ["# clconv Conv1d vs PyTorch", "",
           f"{machine['cpu']}, {machine['cpu_count']} cores; {machine['platform']}; python {machine['python']}, "
           f"pyopencl {machine['pyopencl']}, clconv {machine['clconv']}"
           + (f", torch {machine['torch']} ({machine['torch_threads']} threads)" if "torch" in machine else "")
           + (f", CUDA {machine['cuda']}, cuDNN {machine['cudnn']} on {machine['cuda_device']}"
              if "cuda" in machine else "") + ".", ""]
    out += [f"**Warning: {w}.**" for w in report["warnings"]] + ([""] if report["warnings"] else [])
    if start:
        out.append(f"Load average (1, 5, 15 min): {start} at the start, {end} at the end, 1-minute between "
                   f"{min(s['load_average'][0] for s in load['samples'])} and "
                   f"{max(s['load_average'][0] for s in load['samples'])} over {len(load['samples'])} samples"
                   + (f"; other processes kept {min(counted):.1f}-{max(counted):.1f} cores busy" if counted else "")
                   + ".")
    out += ["", "Columns:"]
    for c in infos:
        peak = c.get("peak_gflops")
        what = {"opencl": lambda: f"{c['name']} on {c['platform']} ({c['type']}, driver {c['driver']})",
                "torch": lambda: f"PyTorch on {c['torch_device']}" + (" (cuDNN)" if c["torch_device"].startswith("cuda")
                                                                     else "")}[c["kind"]]()
        out.append(f"- `{c['label']}`: {what}" + (f"; peak {fmt(peak)} GFLOP/s before the run"
                                                  + (f" (of {c['peak_device']})" if c["kind"] == "torch" else "")
                                                  if peak else ""))
    out.append("- peak: float32 multiply-adds from registers (bench/fma_peak.cl) on each OpenCL device, before the "
               "run and between rounds; each sample's share is against the higher of the peaks measured either "
               "side of its round, and % peak is the median share")
    out += ["", f"Median and interquartile range over {settings['rounds']} round(s) after {settings['warmup']} "
            "warm-up call(s), float32" + (", quick mode (scaled-down shapes)" if settings["quick"] else "") + ". "
            "GFLOP/s = 2*N*C_out*L_out*(C_in/groups)*K per convolution / median time (forward+backward: three). "
            f"{FLAG}: a flagged result (listed below); a speedup from it carries the flag too. max rel err: largest "
            "|result - torch-cpu| over the largest |torch-cpu| among the other columns.", "",
            *lines, *summary_lines(report["summaries"]), *scale_lines(report)]
    if flag_notes:
        out += ["", f"Flagged ({FLAG}):", *flag_notes]
    problems = {f"- {row['shape']} {label}: skipped, {why}" for row in report["rows"] for label, why in row["skipped"].items()}
    problems = sorted(problems) + [f"- {row['shape']} {row['pass']} {label}: {message}"
                                   for row in report["rows"] for label, message in row["errors"].items()]
    if problems:
        out += ["", "Skipped or failed:", *problems]
    if report.get("random"):
        out += ["", f"Random layers (--random {report['random']['count']} --seed {report['random']['seed']}):",
                *[f"- {s['name']}: {Shape(**s).describe()}" for s in report["random"]["layers"]]]
    return "\n".join(out) + "\n"
def write_chart(path: Path, report: dict) -> bool:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib not installed: chart skipped")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, labels = report["rows"], [c["label"] for c in report["columns"]]
    width = 0.8 / len(labels)
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * len(rows) * len(labels)), 5))
    for i, label in enumerate(labels):
        values = [row["results"][label]["gflops"] if label in row["results"] else float("nan") for row in rows]
        ax.bar([j + (i - (len(labels) - 1) / 2) * width for j in range(len(rows))], values, width, label=label)
    ax.set_xticks(range(len(rows)), [f"{row['shape']}\n{row['pass']}" for row in rows], rotation=60,
                  ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("GFLOP/s (higher is better)")
    ax.set_title("clconv Conv1d per OpenCL device vs torch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# --- command line ---------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"smoke run: tiny versions of the shapes, {QUICK_ROUNDS} rounds")
    parser.add_argument("--rounds", type=int, help=f"timed rounds (default {DEFAULT_ROUNDS}; {QUICK_ROUNDS} with --quick)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for results.* (default: .)")
    parser.add_argument("--shapes", help="comma-separated shape names (default: all, or none with --random); "
                        "names: " + ", ".join(s.name for s in SHAPES + SCALE_SHAPES))
    parser.add_argument("--random", type=int, default=0, metavar="N",
                        help="N layers sampled from realistic ranges (instead of the named shapes, unless "
                        "--shapes names some)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --random layers (default 0)")
    parser.add_argument("--devices", help="comma-separated filters: index, 'P:D', or a substring of the "
                        "label, device or platform name (default: all OpenCL devices)")
    parser.add_argument("--scale", action="store_true", help="add the scale shapes " +
                        ", ".join(s.name for s in SCALE_SHAPES))
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.random < 0:
        parser.error("--random must be at least 0")
    return args


def pick_shapes(args) -> list[Shape]:
    pool = SHAPES + (SCALE_SHAPES if args.scale else ())
    if args.shapes:
        names = [n.strip() for n in args.shapes.split(",") if n.strip()]
        unknown = [n for n in names if n not in {s.name for s in pool}]
        if unknown:
            hint = " (the scale shapes need --scale)" if any(s.name in unknown for s in SCALE_SHAPES) else ""
            sys.exit(f"unknown shape(s) {', '.join(unknown)}{hint}; choose from {', '.join(s.name for s in pool)}")
        pool = tuple(s for s in pool if s.name in names)
    elif args.random:
        pool = SCALE_SHAPES if args.scale else ()
    shapes = list(pool) + random_shapes(args.random, args.seed)
    return [shrink(s) for s in shapes] if args.quick else shapes


def import_optional(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def warn(message: str) -> None:
    print(f"WARNING: {message}", flush=True)


def main(argv=None) -> int:
    monitor = LoadMonitor()
    args = parse_args(argv)
    shapes = pick_shapes(args)
    found = select_devices(args.devices)
    if not found:
        sys.exit("no OpenCL device found" + (f" matching --devices {args.devices!r}" if args.devices else "")
                 + f"; available: {clconv.devices() or 'none (install pocl-binary-distribution for a CPU device)'}")
    cores = os.cpu_count() or 1
    for message in load_warnings(monitor.samples, cores):
        warn(message)
    columns = [opencl_column(label, device) for label, device in zip(column_labels(found), found)]
    torch = import_optional("torch")
    if torch is None:
        print("torch not importable: no torch columns")
    else:
        torch.set_num_threads(cores)
        columns += torch_columns(torch)
    meters = {}
    for column in columns:
        if column.device is not None:
            try:
                meter = PeakMeter(column.label, column.device)
                meter.measure()
                meters[column.label] = meter
            except cl.Error as exc:
                print(f"{column.label}: peak not measured: {exc}")
    assign_peaks(columns, meters)
    grad = import_optional("clconv.grad")
    if grad is None:
        print("clconv.grad not available: forward pass only")
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else DEFAULT_ROUNDS)
    warmup = 1 if args.quick else WARMUP_CALLS
    random_layers = [s for s in shapes if shape_set(s.name) == "random"]
    if random_layers:
        print(f"--random {args.random} --seed {args.seed}:" + "".join(f"\n  {s.name}: {s.describe()}" for s in random_layers))
    print(f"{len(shapes)} shape(s), columns: {', '.join(c.label for c in columns)}; {rounds} round(s)", flush=True)

    machine = machine_info(torch, columns)
    started = time.time()
    rows = run_benchmark(shapes, columns, grad, torch, rounds, warmup, monitor)
    monitor.sample("end", final=True)
    infos = [c.info() for c in columns]
    peak_samples = {}
    for row in rows:
        for label, peaks in row["peaks"].items():
            peak_samples.setdefault(label, []).extend(peaks["between_rounds_gflops"])
    report = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "machine": machine,
        "settings": {"rounds": rounds, "warmup": warmup, "quick": args.quick, "dtype": DTYPE.name,
                     "min_sample_s": MIN_SAMPLE_S, "peak_sample_s": PEAK_SAMPLE_S, "spread_limit": SPREAD_LIMIT,
                     "peak_move_limit": PEAK_MOVE_LIMIT, "seconds": round(time.time() - started, 1)},
        "load": {"samples": monitor.samples},
        "warnings": load_warnings(monitor.samples, cores) + peak_warnings(peak_samples),
        "random": {"count": args.random, "seed": args.seed, "layers": [asdict(s) for s in random_layers]}
        if random_layers else None,
        "columns": infos,
        "rows": rows,
        "summaries": speedup_summaries(rows, infos),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    (args.out / "results.md").write_text(table)
    print("\n" + table)
    for message in report["warnings"]:
        warn(message)
    written = ["results.json", "results.md"] + (["results.png"] if write_chart(args.out / "results.png", report) else [])
    print(f"wrote {', '.join(str(args.out / name) for name in written)}")
    return 1 if any(row["errors"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
