"""The buffer pool of CPU devices: blocks of host memory that buffers are made over, held for reuse.

pyopencl's MemoryPool reuses a held block only for a request of the same size bin, so each new input
length allocates blocks of its own; on a CPU device every new block is fresh host memory whose first
touch costs page faults (hundreds of milliseconds for a large layer) and whose pages stay resident. This
pool hands out a held block up to two octaves larger (REACH bins above the request's) before it allocates;
requests below SMALL bytes go to a MemoryPool.
"""
from __future__ import annotations

import threading

import numpy as np
import pyopencl as cl

PAGE = 4096  # block alignment and smallest block: zero-copy buffers over host memory want whole pages
REACH = 8    # bins above a request's own that may serve it: four bins per octave, two octaves
# Requests below SMALL take pyopencl's MemoryPool: a buffer made over a block costs some 3 us more than a
# pooled one, more than first touching a small buffer does, and small buffers' bins hold little memory.
SMALL = 64 << 10


def block_size(nbytes: int) -> int:
    """The size bin of a request: rounded up to a page, above four pages to one of four sizes per octave
    (at most 25% more)."""
    if nbytes <= PAGE:
        return PAGE
    step = 1 << max(12, (nbytes - 1).bit_length() - 3)
    return -(-nbytes // step) * step


class HostBuffer(cl.Buffer):
    """A buffer over a pool block (CL_MEM_USE_HOST_PTR); when it dies its block goes back to the pool.
    Queued kernels that still use it run before any later user of the block: the device has one in-order
    queue."""

    def __init__(self, pool: "HostPool", block: np.ndarray):
        super().__init__(pool.context, cl.mem_flags.READ_WRITE | cl.mem_flags.USE_HOST_PTR, hostbuf=block)
        self._home = (pool, block)

    def __del__(self):
        home = getattr(self, "_home", None)
        if home is not None:
            home[0]._put(home[1])


class HostPool:
    """Called with a byte count, gives a buffer, as pyopencl's MemoryPool (which GPUs keep), and managed_bytes
    and free_held as there. host_bytes and held_bytes: the blocks' bytes, all and held."""

    def __init__(self, context: cl.Context, small):
        self.context = context
        self.small = small  # the MemoryPool of requests below SMALL
        self._held: dict[int, list] = {}  # block size: held blocks
        self._lock = threading.RLock()
        self.held_bytes = 0
        self.host_bytes = 0

    @property
    def managed_bytes(self) -> int:
        return self.host_bytes + self.small.managed_bytes

    def __call__(self, nbytes: int):
        if nbytes < SMALL:
            return self.small(nbytes)
        size = block_size(int(nbytes))
        with self._lock:
            for _ in range(REACH + 1):
                blocks = self._held.get(size)
                if blocks:
                    block = blocks.pop()
                    self.held_bytes -= block.nbytes
                    return HostBuffer(self, block)
                size = block_size(size + 1)
        return HostBuffer(self, self._new_block(block_size(int(nbytes))))

    allocate = __call__

    def _new_block(self, size: int) -> np.ndarray:
        try:
            raw = np.empty(size + PAGE, np.uint8)
        except MemoryError:
            self.free_held()
            raw = np.empty(size + PAGE, np.uint8)
        start = -raw.ctypes.data % PAGE
        with self._lock:
            self.host_bytes += size
        return raw[start:start + size]

    def _put(self, block: np.ndarray) -> None:
        with self._lock:
            self._held.setdefault(block.nbytes, []).append(block)
            self.held_bytes += block.nbytes

    def free_held(self) -> None:
        self.small.free_held()
        with self._lock:
            self.host_bytes -= self.held_bytes
            self.held_bytes = 0
            self._held.clear()
