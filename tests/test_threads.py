"""Thread safety: modules, the functional API and device arrays used from 8 Python threads at once.

Every thread has its own inputs (different values and lengths), starts at a barrier so that the calls
really overlap, and repeats its calls; every result is checked against the float64 reference.  Lengths
stay long enough that all threads share one kernel specialisation per pass (the first calls build it
concurrently).
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyopencl.array as cla
import pytest

import clconv
from conftest import assert_close
from reference import conv1d_bias_grad_ref, conv1d_input_grad_ref, conv1d_ref, conv1d_weight_grad_ref

THREADS = 8
REPEATS = 4


def run_threads(work):
    """work(i) in THREADS threads started together; returns the results in thread order."""
    barrier = threading.Barrier(THREADS)

    def start(i):
        barrier.wait(timeout=60)
        return work(i)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(start, i) for i in range(THREADS)]
        return [f.result(timeout=300) for f in futures]


def strategy_of(i):
    """Half the threads force the local strategy: the override is per thread and must not leak."""
    return "local" if i % 2 else "register"


def test_one_module_forward_from_threads(device):
    rng = np.random.default_rng(10)
    m = clconv.Conv1d(6, 10, 5, padding=2, groups=2, device=device)
    w = m.weight.numpy().astype(np.float64)
    b = m.bias.numpy().astype(np.float64)
    inputs = [rng.uniform(-1, 1, (1 + i % 3, 6, 90 + 11 * i)).astype(np.float32) for i in range(THREADS)]
    originals = [x.copy() for x in inputs]

    def work(i):
        outs = []
        for r in range(REPEATS):
            with clconv.params.override(strategy=strategy_of(i + r)):
                outs.append(m(inputs[i]))
        return outs

    for i, outs in enumerate(run_threads(work)):
        ref = conv1d_ref(originals[i], w, b, 1, 2, 1, 2)
        for r, y in enumerate(outs):
            assert isinstance(y, np.ndarray)
            assert_close(y, ref, np.float32, f"thread {i} call {r}")
        np.testing.assert_array_equal(inputs[i], originals[i])


def test_one_module_unbatched_and_batched_from_threads(device):
    """Mixed input ranks and padding mode through one module."""
    rng = np.random.default_rng(11)
    m = clconv.Conv1d(4, 4, 3, padding=3, dilation=2, groups=4, padding_mode="reflect", device=device)
    w = m.weight.numpy().astype(np.float64)
    b = m.bias.numpy().astype(np.float64)
    inputs = [rng.uniform(-1, 1, (4, 80 + 5 * i) if i % 2 else (2, 4, 80 + 5 * i)).astype(np.float32)
              for i in range(THREADS)]

    def work(i):
        return [m(inputs[i]) for _ in range(REPEATS)]

    for i, outs in enumerate(run_threads(work)):
        ref = conv1d_ref(inputs[i], w, b, 1, 3, 2, 4, "reflect")
        for y in outs:
            assert_close(y, ref, np.float32, f"thread {i}")


def test_functional_from_threads(device):
    rng = np.random.default_rng(12)
    cases = []
    for i in range(THREADS):
        x = rng.uniform(-1, 1, (2, 8, 100 + 9 * i)).astype(np.float32)
        w = rng.uniform(-1, 1, (12, 4, 3)).astype(np.float32)
        b = rng.uniform(-1, 1, (12,)).astype(np.float32)
        cases.append((x, w, b))

    def work(i):
        x, w, b = cases[i]
        out = []
        for r in range(REPEATS):
            with clconv.params.override(strategy=strategy_of(i + r)):
                y = clconv.conv1d(x, w, b, 2, 1, 1, 2)
                dy = np.ones_like(y) * (i + 1)
                dx = clconv.grad.conv1d_input(x.shape, w, dy, 2, 1, 1, 2)
                dw = clconv.grad.conv1d_weight(x, w.shape, dy, 2, 1, 1, 2)
            out.append((y, dy, dx, dw))
        return out

    for i, outs in enumerate(run_threads(work)):
        x, w, b = cases[i]
        ref = conv1d_ref(x, w, b, 2, 1, 1, 2)
        for y, dy, dx, dw in outs:
            assert_close(y, ref, np.float32, f"thread {i} conv1d")
            assert_close(dx, conv1d_input_grad_ref(x.shape, w, dy, 2, 1, 1, 2), np.float32, f"thread {i} dx")
            assert_close(dw, conv1d_weight_grad_ref(x, w.shape, dy, 2, 1, 1, 2), np.float32, f"thread {i} dw")


def test_device_arrays_from_threads(device):
    """pyopencl arrays in, pyopencl arrays out, each thread uploading and downloading its own."""
    rng = np.random.default_rng(13)
    m = clconv.Conv1d(6, 10, 5, padding=2, groups=2, device=device)
    w = m.weight.numpy().astype(np.float64)
    b = m.bias.numpy().astype(np.float64)
    inputs = [rng.uniform(-1, 1, (2, 6, 100 + 13 * i)).astype(np.float32) for i in range(THREADS)]
    wd = cla.to_device(device.queue, m.weight.numpy())
    bd = cla.to_device(device.queue, m.bias.numpy())

    def work(i):
        out = []
        for r in range(REPEATS):
            xd = cla.to_device(device.queue, inputs[i])
            with clconv.params.override(strategy=strategy_of(i + r)):
                y = m(xd)
                yf = clconv.conv1d(xd, wd, bd, 1, 2, 1, 2)
            assert isinstance(y, cla.Array) and isinstance(yf, cla.Array)
            out.append((y.get(), yf.get()))
        return out

    for i, outs in enumerate(run_threads(work)):
        ref = conv1d_ref(inputs[i], w, b, 1, 2, 1, 2)
        for y, yf in outs:
            assert_close(y, ref, np.float32, f"thread {i} module")
            assert_close(yf, ref, np.float32, f"thread {i} functional")


@pytest.mark.parametrize("kind", ["numpy", "device"])
def test_module_per_thread_forward_backward(device, kind):
    """Eight modules on one device, each trained from its own thread: forward, backward, gradients."""
    rng = np.random.default_rng(14)
    modules = [clconv.Conv1d(4, 6, 3, padding=1, groups=2, padding_mode="circular", device=device)
               for _ in range(THREADS)]
    inputs = [rng.uniform(-1, 1, (2, 4, 96 + 7 * i)).astype(np.float32) for i in range(THREADS)]

    def put(a):
        return cla.to_device(device.queue, a) if kind == "device" else a

    def get(a):
        return a.get() if isinstance(a, cla.Array) else a

    def work(i):
        m = modules[i]
        y = m(put(inputs[i]))
        dy = np.full(y.shape, 0.5 + i, np.float32)
        for _ in range(REPEATS - 1):
            m(put(inputs[i]))
            m.backward(put(dy), input_grad=False)
        dx = m.backward(put(dy))
        return get(y), dy, get(dx), m.weight.grad.get(), m.bias.grad.get()

    for i, (y, dy, dx, dw, db) in enumerate(run_threads(work)):
        m, x = modules[i], inputs[i]
        w = m.weight.numpy().astype(np.float64)
        b = m.bias.numpy().astype(np.float64)
        assert_close(y, conv1d_ref(x, w, b, 1, 1, 1, 2, "circular"), np.float32, f"thread {i} y")
        assert_close(dx, conv1d_input_grad_ref(x.shape, w, dy, 1, 1, 1, 2, "circular"), np.float32, f"thread {i} dx")
        # REPEATS backward calls accumulate
        assert_close(dw, REPEATS * conv1d_weight_grad_ref(x, w.shape, dy, 1, 1, 1, 2, "circular"), np.float32,
                     f"thread {i} dw")
        assert_close(db, REPEATS * conv1d_bias_grad_ref(dy), np.float32, f"thread {i} db")


def test_errors_in_threads_do_not_disturb_others(device):
    """Half the threads raise argument errors while the others compute."""
    rng = np.random.default_rng(15)
    m = clconv.Conv1d(6, 10, 5, padding=2, groups=2, device=device)
    w = m.weight.numpy().astype(np.float64)
    b = m.bias.numpy().astype(np.float64)
    inputs = [rng.uniform(-1, 1, (2, 6, 100 + i)).astype(np.float32) for i in range(THREADS)]

    def work(i):
        out = []
        for _ in range(REPEATS):
            if i % 2:
                with pytest.raises(RuntimeError):
                    m(inputs[i][:, :5])
                with pytest.raises(TypeError):
                    m(inputs[i].astype(np.int32))
            else:
                out.append(m(inputs[i]))
        return out

    for i, outs in enumerate(run_threads(work)):
        ref = conv1d_ref(inputs[i], w, b, 1, 2, 1, 2)
        for y in outs:
            assert_close(y, ref, np.float32, f"thread {i}")
