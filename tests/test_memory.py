"""The buffer pool of CPU devices: a new input length reuses the held blocks of an earlier, longer one
instead of allocating (and first touching) host memory of its own."""
import gc

import numpy as np
import pytest

import clconv
from clconv.runtime.pool import block_size


def step(m, x):
    y = m(x)
    m.backward(np.ones(y.shape, np.float32))
    m.zero_grad()


@pytest.mark.parametrize("args, kwargs", [((16, 16, 3), dict(padding=1)), ((16, 16, 15), dict(padding=7, groups=16))],
                         ids=["dense", "depthwise"])
def test_shorter_length_allocates_nothing(args, kwargs, device, rng):
    if device.type != "CPU":
        pytest.skip("the host-memory pool is the CPU devices' (GPUs keep pyopencl's MemoryPool)")
    # Only this test's blocks in the pool: other tests' held blocks would change which block serves what.
    gc.collect()
    device.allocator.free_held()
    m = clconv.Conv1d(*args, **kwargs, device=device)
    for length in (3000, 2990):  # the first step's blocks, held again
        step(m, rng.uniform(-1, 1, (2, 16, length)).astype(np.float32))
    managed = device.allocator.host_bytes
    for length in (2500, 2000, 1600, 1100):  # other size bins, each within two octaves of the first
        step(m, rng.uniform(-1, 1, (2, 16, length)).astype(np.float32))
        assert device.allocator.host_bytes == managed, f"L={length} allocated new host blocks"


def test_block_sizes():
    assert block_size(1) == block_size(4096) == 4096
    assert block_size(4097) == 8192
    sizes = [block_size(n) for n in range((1 << 20) + 1, 1 << 21, 4099)]
    assert sorted(set(sizes)) == [5 << 18, 6 << 18, 7 << 18, 8 << 18]
    assert all(n <= s < 1.25 * n + 4096 for n, s in zip(range((1 << 20) + 1, 1 << 21, 4099), sizes))
