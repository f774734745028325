"""One module over several OpenCL devices of a host: the batch split across them, gradients summed.

Each device holds a replica of the module (its own parameter buffers, its own saved forward). A forward
sends every replica its block of samples, in one Python thread per replica (pyopencl releases the GIL
while a device works), and joins the outputs in batch order. A backward sends each replica the matching
block of grad_output and adds the replicas' parameter gradients, in replica order, into the module's.
"""
from __future__ import annotations

import copy
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..api.arrays import check_dtype_supported
from ..modules import Parameter, _ConvNd
from ..runtime import Device, get_device
from ..runtime import devices as all_devices

# Samples per second of a layer on a device, measured once per (device, layer, dtype) on the first input
# it runs: the ratio between devices is what matters, and it varies little with the length.
_throughput: dict[tuple, float] = {}
_throughput_lock = threading.Lock()

# Exceptions re-raised with the failing device named in the message, keeping their type; others become a
# RuntimeError.
_KEPT_TYPES = (TypeError, ValueError, MemoryError, RuntimeError)


class DataParallel:
    """Run `module` (a clconv.Conv1d or ConvTranspose1d) over several OpenCL devices at once.

    devices: None for every device of clconv.devices() whose compiler works, else a list of anything
    get_device accepts. A device may appear more than once: it then holds that many replicas, which share its queue.
    balance: "measured" splits each batch in proportion to each device's throughput on the layer,
    measured at the first forward and cached; "even" splits it evenly; a sequence of positive numbers,
    one per entry of devices, fixes the proportions.

    Input and output are numpy arrays, (N, C, L) or (C, L). The module keeps its parameters; the replicas
    copy them at their first use and again whenever they change, so an optimiser step on the module is
    seen by the next forward.
    """

    def __init__(self, module, devices=None, balance="measured"):
        if not isinstance(module, _ConvNd):
            raise TypeError(f"DataParallel wraps a clconv.Conv1d or ConvTranspose1d, got {type(module).__name__}")
        chosen = ([d for d in all_devices() if d.compile_error is None] if devices is None
                  else [get_device(d) for d in devices])
        if not chosen:
            if devices is None:
                get_device()  # raises: no platform, or no device that can build kernels
            raise ValueError("DataParallel needs at least one device")
        for device in chosen:
            check_dtype_supported(device, module.dtype)
        if isinstance(balance, str):
            if balance not in ("measured", "even"):
                raise ValueError(f"balance must be 'measured', 'even' or a sequence of weights, got {balance!r}")
        else:
            balance = tuple(float(w) for w in balance)
            if len(balance) != len(chosen):
                raise ValueError(f"balance has {len(balance)} weights for {len(chosen)} devices")
            if not all(math.isfinite(w) and w > 0 for w in balance):
                raise ValueError(f"balance weights must be positive and finite, got {list(balance)}")
        self.module = module
        self.devices: list[Device] = chosen
        self.balance = balance
        self._replicas: list[_ConvNd] | None = None
        self._snapshot: list[np.ndarray] | None = None  # the module's parameters as the replicas hold them
        self._pool: ThreadPoolExecutor | None = None
        self._latest = None  # (blocks of the latest forward, its output's shape and dtype, unbatched)

    def __repr__(self):
        names = ", ".join(f"{d.index}: {d.name!r}" for d in self.devices)
        return f"DataParallel({self.module!r}, devices=[{names}], balance={self.balance!r})"

    def __call__(self, input):
        return self.forward(input)

    def parameters(self) -> list[Parameter]:
        return self.module.parameters()

    def zero_grad(self) -> None:
        self.module.zero_grad()

    @property
    def replicas(self) -> list:
        """One module per entry of devices, built at first use, each with its own parameter buffers."""
        if self._replicas is None:
            self._replicas = [_replica(self.module, device) for device in self.devices]
        return self._replicas

    def shares(self, input) -> list[float]:
        """The fraction of a batch that each replica gets; balance='measured' measures the throughput on
        `input` where no measurement is cached (input must then be non-empty)."""
        if self.balance == "even":
            weights = [1.0] * len(self.devices)
        elif self.balance == "measured":
            weights = self._measured(_batched(input)[0])
        else:
            weights = list(self.balance)
        total = sum(weights)
        return [w / total for w in weights]

    def forward(self, input):
        x, unbatched = _batched(input)
        self._latest = None
        self._sync()
        if x.shape[0]:
            blocks = {i: (n0, n1) for i, (n0, n1) in enumerate(_split(x.shape[0], self.shares(x))) if n1 > n0}
        else:
            blocks = {0: (0, 0)}  # an empty batch still runs once: its checks, its output's shape
        outputs = self._run("forward", [(self.replicas[i], (x[n0:n1],)) for i, (n0, n1) in blocks.items()])
        y = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
        self._latest = (blocks, y.shape, y.dtype, unbatched)
        return y[0] if unbatched else y

    def backward(self, grad_output, input_grad: bool = True):
        """Gradients for the latest forward: the input gradient (None with input_grad=False), and each
        parameter's gradient added into the module's .grad, the replicas' parts summed in replica order.
        A device that fails leaves the module's gradients as they were."""
        if self._latest is None:
            raise RuntimeError("DataParallel.backward() called before any forward pass: run it on an input first")
        blocks, shape, dtype, unbatched = self._latest
        dy = _grad_output(grad_output, shape, dtype, unbatched)
        params = self.module.parameters()
        for i in blocks:
            for own, mine in zip(params, self.replicas[i].parameters()):
                mine.requires_grad, mine.grad = own.requires_grad, None
        input_grads = self._run("backward", [(self.replicas[i], (dy[n0:n1], input_grad)) for i, (n0, n1) in blocks.items()])
        # Every partial comes to the host before the module's gradients change, so a failure here also
        # leaves them as they were.
        sums = {k: _ordered_sum([self.replicas[i].parameters()[k].grad.get() for i in blocks])
                for k, param in enumerate(params) if param.requires_grad}
        for k, total in sums.items():
            param, total = params[k], total.astype(params[k].dtype)
            if param.grad is None:
                param.grad = self.module.device.to_device(total)
            else:
                param.grad.set(param.grad.get() + total)
        if not input_grad:
            return None
        dx = input_grads[0] if len(input_grads) == 1 else np.concatenate(input_grads)
        return dx[0] if unbatched else dx

    def _sync(self) -> None:
        """Copy the module's parameters to the replicas where they changed since the last copy (an
        optimiser step, load_state_dict, or a new .data array): one read of the parameters per call."""
        current = [p.numpy() for p in self.module.parameters()]
        if self._snapshot is not None and all(_same_bits(a, b) for a, b in zip(current, self._snapshot)):
            return
        for replica in self.replicas:
            for mine, value in zip(replica.parameters(), current):
                if value.size:
                    mine.data.set(value)
        self._snapshot = current

    def _measured(self, x: np.ndarray) -> list[float]:
        """Each replica's share of the measured throughput of its device (replicas of one device split it)."""
        if x.shape[0] == 0:
            raise ValueError("DataParallel measures throughput on a non-empty batch, got an empty one")
        self._sync()
        probe = x[:max(1, math.ceil(x.shape[0] / len(self.devices)))]
        rates = {}
        for replica in self.replicas:
            key = (replica.device.index, type(self.module).__name__, self.module.extra_repr(), self.module.dtype.name)
            with _throughput_lock:
                if key not in _throughput:
                    try:
                        _throughput[key] = _time_forward(replica, probe)
                    except Exception as exc:  # re-raised with the device named, as a failing forward is
                        raise self._failure("throughput measurement", replica, exc) from exc
            rates[replica.device.index] = _throughput[key]
        counts = {d.index: self.devices.count(d) for d in self.devices}
        return [rates[d.index] / counts[d.index] for d in self.devices]

    def _run(self, stage: str, work: list) -> list:
        """replica.<stage>(*args) for every (replica, args), in parallel; results in order. Every call ends
        before anything is raised; the first failure in replica order is raised, naming its device."""
        def call(item):
            replica, args = item
            try:
                return getattr(replica, stage)(*args), None
            except Exception as exc:  # re-raised below with the device named
                return None, exc

        if len(work) == 1:
            outcomes = [call(work[0])]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=len(self.devices), thread_name_prefix="clconv-dp")
            outcomes = list(self._pool.map(call, work))
        for (replica, _), (_, exc) in zip(work, outcomes):
            if exc is not None:
                raise self._failure(stage, replica, exc) from exc
        return [result for result, _ in outcomes]

    def _failure(self, stage: str, replica: _ConvNd, exc: Exception) -> Exception:
        """`exc` with the replica and its device named, of the same type where it is a builtin one."""
        device = replica.device
        message = (f"DataParallel {stage} failed on replica {self.replicas.index(replica)}, device {device.index} "
                   f"{device.name!r} ({device.platform_name}): {exc}")
        return (type(exc) if type(exc) in _KEPT_TYPES else RuntimeError)(message)


def _replica(module: _ConvNd, device: Device) -> _ConvNd:
    """A copy of `module` on `device` with parameter buffers of its own (filled by DataParallel._sync)."""
    replica = copy.copy(module)
    replica.device = device
    replica._saved = None
    replica.weight = Parameter(device.empty(module.weight.shape, module.dtype))
    replica.bias = None if module.bias is None else Parameter(device.empty(module.bias.shape, module.dtype))
    return replica


def _batched(input) -> tuple[np.ndarray, bool]:
    if not isinstance(input, np.ndarray):
        raise TypeError(f"DataParallel takes numpy arrays (its devices each get a block of the batch), "
                        f"got {type(input).__module__}.{type(input).__name__}")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"Expected 2D (unbatched) or 3D (batched) input, but got input of size: {list(input.shape)}")
    return (input[None], True) if input.ndim == 2 else (input, False)


def _grad_output(grad_output, shape, dtype, unbatched: bool) -> np.ndarray:
    if not isinstance(grad_output, np.ndarray):
        raise TypeError(f"DataParallel.backward takes a numpy grad_output, got {type(grad_output).__module__}."
                        f"{type(grad_output).__name__}")
    expected = shape[1:] if unbatched else shape
    if grad_output.shape != tuple(expected):
        raise RuntimeError(f"grad_output has size {list(grad_output.shape)}, but the convolution's output has size {list(expected)}")
    if grad_output.dtype != dtype:
        raise RuntimeError(f"grad_output has dtype {grad_output.dtype}, the output {np.dtype(dtype)}")
    return grad_output[None] if unbatched else grad_output


def _split(batch: int, shares: list[float]) -> list[tuple[int, int]]:
    """Consecutive blocks [n0, n1) of the batch, sized by `shares` (largest remainders round up, ties to
    the earlier replica)."""
    exact = [batch * s for s in shares]
    counts = [math.floor(e) for e in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[:batch - sum(counts)]:
        counts[i] += 1
    ends = np.cumsum(counts).tolist()
    return [(end - count, end) for count, end in zip(counts, ends)]


def _time_forward(replica: _ConvNd, probe: np.ndarray, rounds: int = 3) -> float:
    """Samples per second of replica's forward on `probe`: the fastest of `rounds` calls (the least
    disturbed by other work on the host), after an untimed call that builds its kernels."""
    replica.forward(probe)
    fastest = math.inf
    for _ in range(rounds):
        start = time.perf_counter()
        replica.forward(probe)
        fastest = min(fastest, time.perf_counter() - start)
    return probe.shape[0] / max(fastest, 1e-9)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


def _ordered_sum(parts: list[np.ndarray]) -> np.ndarray:
    """The parts summed one after another in float64: the same order, so the same bits, every call."""
    total = np.zeros(parts[0].shape, np.float64)
    for part in parts:
        total += part
    return total
