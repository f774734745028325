"""Conv1d over Dask arrays (N, C, L) chunked along the batch and the length, run on the workers' devices.

The graph has one task per output block. Output blocks follow the input's length chunks: output t goes
with the chunk holding the first input position it reads (t * stride - pad_left), so output chunks start
at multiples of the stride in input coordinates. A block reads its own input chunk plus the next
dilation * (K - 1) positions (the halo), which arrive as slices of the following chunks, so only halos
travel between workers. Blocks at the two ends of the signal also read the padding: those positions are
mapped to their sources through the padding mode (reflect, replicate and circular read real samples,
possibly from the far end of the signal) exactly as the single-device pieces do, so every padding mode
applies at the true ends only. The weights are one key of the graph, fetched once by each worker that
needs them.

Every worker computes on its default device (CLCONV_DEVICE in its environment, or UseDevice), and builds
each kernel once: devices and their programs are per process.
"""
from __future__ import annotations

import bisect
import operator
import os

import numpy as np

try:
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph
    from dask.task_spec import DataNode, List, Task, TaskRef
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as exc:
    raise ImportError(f"clconv.dask needs dask[distributed] 2025.1 or later ({exc}): pip install 'clconv[dask]'") from exc

from .. import functional
from ..api.arrays import is_device_array
from ..api.checks import PADDING_MODES, ConvGeometry, check_same_dtype, conv_arguments, conv_geometry
from ..api.pieces import input_window
from ..modules import Conv1d
from ..params import ceil_div
from ..runtime import get_device

__all__ = ["UseDevice", "apply", "conv1d"]


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """torch's conv1d with a padding mode, on a Dask array x (N, C, L) chunked along N and L.

    weight (C_out, C_in/groups, K) and bias (C_out,): numpy arrays (pyopencl arrays are read back once).
    Returns a lazy Dask array (N, C_out, L_out) with x's batch chunks and one length chunk per input
    length chunk (empty ones dropped); a channel-chunked x is first rechunked to one channel chunk.
    """
    if not isinstance(x, da.Array):
        raise TypeError(f"clconv.dask.conv1d takes a dask.array.Array, got {type(x).__module__}.{type(x).__name__}; "
                        "for numpy arrays use clconv.conv1d, or wrap them with dask.array.from_array")
    if x.ndim != 3:
        raise ValueError(f"clconv.dask.conv1d expects x of shape (N, C, L), got {x.ndim} dimensions {list(x.shape)}")
    weight = weight.get() if is_device_array(weight) else np.asarray(weight)
    bias = None if bias is None else bias.get() if is_device_array(bias) else np.asarray(bias)
    if weight.ndim != 3:
        raise RuntimeError(f"weight should have at least three dimensions, but got weight of size {list(weight.shape)}")
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {list(PADDING_MODES)}, but got padding_mode='{padding_mode}'")
    if any(np.isnan(n) for n in x.shape):
        raise ValueError("clconv.dask.conv1d needs known chunk sizes: call x.compute_chunk_sizes() first")
    stride, pad_left, pad_right, dilation, groups = conv_arguments(weight.shape[2], stride, padding, dilation, groups)
    geo = conv_geometry(x.shape, weight.shape, None if bias is None else bias.shape, stride, pad_left, pad_right,
                        dilation, groups, padding_mode)
    check_same_dtype(x, weight, bias)
    if len(x.chunks[1]) > 1:
        x = x.rechunk({1: -1})
    return _graph(x, weight, bias, geo)


def apply(module, x):
    """module(x) for a clconv.Conv1d `module` and a Dask array x (N, C, L): conv1d with its parameters
    (read once, when the graph is built) and its stride, padding, dilation, groups and padding mode."""
    if not isinstance(module, Conv1d):
        raise TypeError(f"clconv.dask.apply takes a clconv.Conv1d, got {type(module).__name__}")
    return conv1d(x, module.weight.numpy(), None if module.bias is None else module.bias.numpy(), module.stride,
                  module.padding if isinstance(module.padding, str) else module.padding[0], module.dilation,
                  module.groups, module.padding_mode)


class UseDevice(WorkerPlugin):
    """A worker plugin that picks the OpenCL device clconv uses on each worker: `device` is a device spec
    as CLCONV_DEVICE takes it (an index, "P:D" or a name substring), or a function of the worker returning
    one (e.g. one GPU per worker by its name). Register it with client.register_plugin(UseDevice(...)); it sets CLCONV_DEVICE in the worker's
    process and resolves the device at once, so a spec that matches nothing fails at registration."""

    def __init__(self, device):
        self.device = device

    def setup(self, worker):
        spec = self.device(worker) if callable(self.device) else self.device
        os.environ["CLCONV_DEVICE"] = str(spec)
        get_device()


def _output_ranges(geo: ConvGeometry, length_chunks: tuple) -> list[tuple[int, int]]:
    """Output blocks [o0, o1): the outputs whose first input position falls in each length chunk (the
    first and last blocks also take the outputs that start in the padding); empty blocks dropped."""
    starts = np.cumsum((0,) + tuple(length_chunks)).tolist()
    bounds = [0] + [min(max(ceil_div(a + geo.pad_left, geo.stride), 0), geo.length_out) for a in starts[1:-1]]
    bounds.append(geo.length_out)
    return [(o0, o1) for o0, o1 in zip(bounds, bounds[1:]) if o1 > o0]


def _sources(geo: ConvGeometry, o0: int, o1: int) -> tuple[list[tuple[int, int]], bool]:
    """The runs [start, end) of input positions that outputs [o0, o1) read, in order, and whether they read
    padding (circular padding reads both ends of the signal: two runs)."""
    q0 = o0 * geo.stride - geo.pad_left
    q1 = (o1 - 1) * geo.stride - geo.pad_left + (geo.kernel_size - 1) * geo.dilation + 1
    if q0 >= 0 and q1 <= geo.length_in:
        return [(q0, q1)], False
    index, valid = input_window(geo, o0, o1)
    read = np.unique(index[valid])
    breaks = np.flatnonzero(np.diff(read) > 1) + 1
    return [(int(run[0]), int(run[-1]) + 1) for run in np.split(read, breaks) if run.size], True


def _reads(geo: ConvGeometry, chunk_starts: list[int], o0: int, o1: int) -> tuple[list[tuple[int, int, int]], bool]:
    """The input that outputs [o0, o1) read, as (chunk, first, end) slices of length chunks in order, and
    whether they read padding."""
    runs, padded = _sources(geo, o0, o1)
    reads = []
    for first, end in runs:
        k = bisect.bisect_right(chunk_starts, first) - 1
        while k < len(chunk_starts) - 1 and chunk_starts[k] < end:
            start = chunk_starts[k]
            reads.append((k, max(first, start) - start, min(end, chunk_starts[k + 1]) - start))
            k += 1
    return reads, padded


def _graph(x: da.Array, weight: np.ndarray, bias: np.ndarray | None, geo: ConvGeometry) -> da.Array:
    token = tokenize(x, weight, bias, geo)
    name, halo_name, weights_key = f"clconv-conv1d-{token}", f"clconv-halo-{token}", f"clconv-weights-{token}"
    chunk_starts = np.cumsum((0,) + x.chunks[2]).tolist()
    ranges = _output_ranges(geo, x.chunks[2])
    reads = [_reads(geo, chunk_starts, o0, o1) for o0, o1 in ranges]
    dsk = {weights_key: DataNode(weights_key, (weight, bias))}
    for i, rows in enumerate(x.chunks[0]):
        for j, ((o0, o1), (slices, padded)) in enumerate(zip(ranges, reads)):
            parts = []
            for k, lo, hi in slices:
                block = (x.name, i, 0, k)
                if (lo, hi) == (0, x.chunks[2][k]):
                    parts.append(TaskRef(block))
                else:
                    key = (halo_name, i, k, lo, hi)
                    dsk[key] = Task(key, operator.getitem, TaskRef(block), (slice(None), slice(None), slice(lo, hi)))
                    parts.append(TaskRef(key))
            part_starts = tuple(chunk_starts[k] + lo for k, lo, _ in slices)
            key = (name, i, 0, j)
            dsk[key] = Task(key, _conv_block, List(*parts), part_starts, TaskRef(weights_key), geo, o0, o1, padded,
                            (rows, geo.in_channels), x.dtype)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[x])
    chunks = (x.chunks[0], (geo.out_channels,), tuple(o1 - o0 for o0, o1 in ranges))
    return da.Array(graph, name, chunks, meta=np.empty((0, 0, 0), x.dtype))


def _conv_block(parts, part_starts, weights, geo: ConvGeometry, o0: int, o1: int, padded: bool, shape, dtype):
    """Outputs [o0, o1) of one batch block, from the input positions in `parts` (part i starting at input
    position part_starts[i]), on this process's default device."""
    weight, bias = weights
    window = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0] if parts else None
    if padded:
        index, valid = input_window(geo, o0, o1)
        gathered = np.zeros((*shape, index.size), dtype)
        if window is not None:
            part_offsets = np.cumsum([0] + [p.shape[2] for p in parts[:-1]])
            which = np.searchsorted(part_starts, index[valid], side="right") - 1
            gathered[:, :, valid] = window[:, :, part_offsets[which] + index[valid] - np.asarray(part_starts)[which]]
        window = gathered
    return functional.conv1d(np.ascontiguousarray(window), weight, bias, geo.stride, 0, geo.dilation, geo.groups)
