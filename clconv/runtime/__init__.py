"""The OpenCL runtime: devices, their contexts and queues, the program cache and buffer pools.

Everything that touches pyopencl objects directly lives here, so that the rest of the package sees
plain Python errors and a handful of small methods. classes.py decides a device's class, pool.py holds
the CPU devices' host memory.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pyopencl as cl
import pyopencl.array as cla
import pyopencl.tools

from .classes import (DEVICE_CLASS_ENV, DEVICE_CLASSES, DeviceProperties, classify, forced_device_class,
                      target_cpu, vector_floats)
from .compiler import UNKNOWN_CPU_HINT, compiler_failure, probe_compiler
from .icd import register_pip_runtimes
from .pool import HostPool

__all__ = ["DEVICE_CLASSES", "DEVICE_CLASS_ENV", "Device", "DeviceProperties", "build_log", "cache_dir", "classify",
           "default_order", "devices", "forced_device_class", "get_device", "kernel_source", "target_cpu",
           "vector_floats"]

_HERE = Path(__file__).resolve().parent.parent  # the clconv package
# Installed wheels carry the kernels as the package `clconv.kernels`; a source checkout has them at top level.
_KERNEL_DIRS = (_HERE / "kernels", _HERE.parent / "kernels")

_NO_PLATFORM = (
    "No OpenCL platform found. Install one: `pip install pocl-binary-distribution` gives a CPU device "
    "on Linux x86-64; GPUs need their vendor's OpenCL driver (an ICD file under /etc/OpenCL/vendors)."
)

_DEVICE_TYPE_NAMES = {
    cl.device_type.GPU: "GPU",
    cl.device_type.ACCELERATOR: "ACCELERATOR",
    cl.device_type.CPU: "CPU",
}


_LOCAL_MEM_TYPES = {cl.device_local_mem_type.LOCAL: "local", cl.device_local_mem_type.GLOBAL: "global"}


def _device_info(cl_device: cl.Device, name: str, default):
    try:
        value = getattr(cl_device, name)
    except (cl.Error, AttributeError):  # a driver that does not know the query
        return default
    return default if value is None else value


def cache_dir() -> Path:
    """clconv's folder for the tuned-parameter cache and program binaries: CLCONV_CACHE_DIR, else the
    user's cache folder."""
    env = os.environ.get("CLCONV_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("clconv"))


def kernel_source(filename: str) -> str:
    for folder in _KERNEL_DIRS:
        path = folder / filename
        if path.is_file():
            return path.read_text()
    raise RuntimeError(f"clconv kernel source {filename!r} not found in {[str(d) for d in _KERNEL_DIRS]}")


class Device:
    """One OpenCL device with its context, one in-order queue, a buffer pool and a program cache.

    Obtained from clconv.get_device() or clconv.devices(), not constructed directly. Attributes: name,
    platform_name, type ("CPU", "GPU", "ACCELERATOR", "OTHER"), spec ("P:D"), index, driver_version,
    has_fp64, compute_units, global_mem_size, max_alloc, local_mem_size, max_work_group_size,
    host_unified_memory, device_class (see clconv.params), buffer_limit (host arrays above it run in pieces),
    context and queue (pyopencl objects). `to_device(numpy_array)` and `empty(shape, dtype)` make pyopencl
    arrays on it.

    The context and queue are created at first use. Launches go through `lock` so that one module can be
    shared by several Python threads: kernel objects carry their arguments and are not thread-safe.
    """

    def __init__(self, cl_device: cl.Device, index: int, platform_index: int, device_index: int):
        self.cl_device = cl_device
        self.index = index
        self.spec = f"{platform_index}:{device_index}"
        self.name = cl_device.name.strip()
        self.platform_name = cl_device.platform.name.strip()
        # What a name search looks through: PoCL calls its platform "Portable Computing Language".
        self._search_text = " ".join((self.name, self.platform_name, cl_device.platform.vendor,
                                      cl_device.platform.version, cl_device.vendor)).lower()
        self.type = next((n for t, n in _DEVICE_TYPE_NAMES.items() if cl_device.type & t), "OTHER")
        self.driver_version = cl_device.driver_version.strip()
        extensions = cl_device.extensions.split()
        self.has_fp64 = "cl_khr_fp64" in extensions
        self.max_work_group_size = cl_device.max_work_group_size
        self.compute_units = cl_device.max_compute_units
        self.local_mem_size = cl_device.local_mem_size
        self.max_alloc = cl_device.max_mem_alloc_size
        self.global_mem_size = cl_device.global_mem_size
        # CPU devices (and some integrated GPUs) address host memory itself: see host_array.
        self.host_unified_memory = bool(_device_info(cl_device, "host_unified_memory", False))
        # Host arrays whose buffers would exceed this are processed in pieces (clconv.pieces). Lower it, per
        # device or with CLCONV_MAX_BUFFER_BYTES, to exercise that path cheaply.
        env_limit = int(os.environ.get("CLCONV_MAX_BUFFER_BYTES", "0") or 0)
        self.buffer_limit = min(self.max_alloc, self.global_mem_size // 4, *([env_limit] if env_limit > 0 else []))
        self.lock = threading.RLock()
        self._context = None
        self._queue = None
        self._allocator = None
        self._programs: dict[tuple, cl.Program] = {}
        self._kernels: dict[tuple, cl.Kernel] = {}
        self._compile_error: str | None | bool = False  # False: not probed yet
        self.plans: dict[tuple, object] = {}  # memoised plans, at most 512, oldest out first: see passes/plan.planned
        self.properties = DeviceProperties(
            type=self.type,
            vendor_id=int(_device_info(cl_device, "vendor_id", 0)),
            native_vector_width_float=int(_device_info(cl_device, "native_vector_width_float", 0)),
            preferred_vector_width_float=int(_device_info(cl_device, "preferred_vector_width_float", 0)),
            local_mem_type=_LOCAL_MEM_TYPES.get(_device_info(cl_device, "local_mem_type", None), "none"),
            local_mem_size=self.local_mem_size,
            compute_units=self.compute_units,
            max_work_group_size=self.max_work_group_size,
            target_cpu=target_cpu(cl_device.version) if self.type == "CPU" else "",
        )
        self.vector_floats = vector_floats(self.properties)
        # The class this device's properties give; device_class is what the parameters use.
        self.detected_class = classify(self.properties)

    def __repr__(self):
        return f"Device({self.index}: {self.name!r} on {self.platform_name!r}, {self.type})"

    @property
    def device_class(self) -> str:
        """The class whose built-in parameter rows this device runs (one of DEVICE_CLASSES): the one its
        properties give (detected_class), unless CLCONV_DEVICE_CLASS forces another."""
        return forced_device_class() or self.detected_class

    @property
    def compile_error(self) -> str | None:
        """None when this device's compiler builds a trivial kernel (probed once per process), else why it
        cannot: get_device(None) passes over such a device and `python -m clconv` shows the reason."""
        if self._compile_error is False:
            with self.lock:
                if self._compile_error is False:
                    self._compile_error = probe_compiler(self.context)
        return self._compile_error

    @property
    def context(self) -> cl.Context:
        if self._context is None:
            with self.lock:
                if self._context is None:
                    self._context = cl.Context([self.cl_device])
        return self._context

    @property
    def queue(self) -> cl.CommandQueue:
        if self._queue is None:
            with self.lock:
                if self._queue is None:
                    self._queue = cl.CommandQueue(self.context)
        return self._queue

    @property
    def allocator(self):
        """The buffer pool: pyopencl's MemoryPool, under a pool of host memory on CPU devices that serves
        requests of 64 KiB and more from a held block up to two octaves larger (clconv.runtime.pool)."""
        if self._allocator is None:
            with self.lock:
                if self._allocator is None:
                    # Four size bins per octave (sizes rounded up by at most 25%), not sixteen: inputs of
                    # varying length then reuse held buffers instead of each new length allocating (and
                    # first touching) buffers of its own.
                    pool = cl.tools.MemoryPool(cl.tools.ImmediateAllocator(self.queue), leading_bits_in_bin_id=2)
                    self._allocator = HostPool(self.context, pool) if self.type == "CPU" else pool
        return self._allocator

    def empty(self, shape, dtype) -> cla.Array:
        shape, dtype = tuple(shape), np.dtype(dtype)
        for n in shape:
            if not isinstance(n, (int, np.integer)) or isinstance(n, (bool, np.bool_)):
                raise TypeError(f"array dimensions must be integers, got shape {list(shape)}")
            if n < 0:
                raise ValueError(f"negative dimensions are not allowed: {list(shape)}")
        shape = tuple(int(n) for n in shape)
        size = math.prod(shape)
        nbytes = size * dtype.itemsize
        if nbytes > self.max_alloc:
            raise MemoryError(f"{list(shape)} {dtype.name} needs {nbytes} bytes, more than the largest buffer "
                              f"{self.name} allows ({self.max_alloc} bytes)")
        strides, step = [], dtype.itemsize
        for n in reversed(shape):
            strides.append(step)
            step *= max(1, n)
        with self.lock:
            try:
                # pyopencl's fast constructor: the checked one spends ~30 us validating a shape we built.
                # A pyopencl without it (a TypeError) gets the checked one.
                try:
                    return cla.Array(None, shape, dtype, allocator=self.allocator, strides=tuple(reversed(strides)),
                                     _fast=True, _size=size, _context=self.context, _queue=self.queue)
                except TypeError:
                    return cla.empty(self.queue, shape, dtype, allocator=self.allocator)
            except cl.Error as exc:
                self.allocator.free_held()
                raise MemoryError(f"out of device memory on {self.name} allocating {list(shape)} "
                                  f"{np.dtype(dtype).name}: {exc}") from None

    def host_array(self, array: np.ndarray) -> cla.Array:
        """A read-only device array over a C-contiguous host array's own memory (CL_MEM_USE_HOST_PTR):
        no copy where the device shares host memory (host_unified_memory). The host array must stay alive
        and unchanged while kernels read it."""
        if not array.size:
            return self.empty(array.shape, array.dtype)
        buffer = cl.Buffer(self.context, cl.mem_flags.READ_ONLY | cl.mem_flags.USE_HOST_PTR, hostbuf=array)
        try:
            return cla.Array(None, array.shape, array.dtype, data=buffer, strides=array.strides, _fast=True,
                             _size=array.size, _context=self.context, _queue=self.queue)
        except TypeError:  # a pyopencl without the fast constructor (see empty)
            return cla.Array(self.queue, array.shape, array.dtype, data=buffer)

    def buffer(self, nbytes: int):
        """A scratch buffer from the pool, for temporaries that never reach the caller."""
        with self.lock:
            try:
                return self.allocator(max(1, nbytes))
            except cl.Error as exc:
                self.allocator.free_held()
                raise MemoryError(f"out of device memory on {self.name} allocating {nbytes} bytes: {exc}") from None

    def to_device(self, array: np.ndarray) -> cla.Array:
        out = self.empty(array.shape, array.dtype)
        if array.size:
            out.set(np.ascontiguousarray(array))
        return out

    def kernel(self, filename: str, name: str, defines: dict) -> cl.Kernel:
        """The kernel `name` of `filename` built with `-D` defines; one build per (source, options). The
        build defines KERNEL_<NAME> too: sources holding several kernels compile only the one so named."""
        defines = {**defines, f"KERNEL_{name.upper()}": 1}
        options = tuple(sorted(defines.items()))
        kernel = self._kernels.get((filename, name, options))
        if kernel is None:
            with self.lock:
                program = self._programs.get((filename, options))
                if program is None:
                    program = self._programs[(filename, options)] = self._build(filename, defines)
                try:
                    kernel = cl.Kernel(program, name)
                except cl.Error as exc:
                    raise RuntimeError(f"{filename} has no kernel {name!r}: {exc}") from None
                _declare_scalar_args(kernel)
                self._kernels[(filename, name, options)] = kernel
        return kernel

    def group_limit(self, kernel: cl.Kernel) -> int:
        """The largest work-group this kernel can run with on this device (its registers and local memory
        can make it smaller than the device's own limit)."""
        try:
            own = int(kernel.get_work_group_info(cl.kernel_work_group_info.WORK_GROUP_SIZE, self.cl_device))
        except cl.Error:
            own = self.max_work_group_size
        return min(own, self.max_work_group_size)

    def _build(self, filename: str, defines: dict) -> cl.Program:
        # OpenCL C 1.2 is what every driver in use speaks; building as 1.2 keeps the kernels honest.
        options = ["-cl-std=CL1.2", "-cl-kernel-arg-info"] + [f"-D{k}={int(v) if isinstance(v, (bool, np.bool_)) else v}"
                                       for k, v in sorted(defines.items())]
        source = kernel_source("common.cl") + "\n" + kernel_source(filename)
        binary_path = self._binary_path(source, options) if self._caches_binaries else None
        what = f"{filename} for {self.name} with options {' '.join(options)}"
        with build_log(what, self.cl_device) as keep:
            program = self._build_from_binary(binary_path, options) if binary_path else None
            keep(program)
        if program is not None:
            return program
        try:
            with build_log(what, self.cl_device) as keep:
                program = cl.Program(self.context, source).build(options=options)
                keep(program)
        except cl.Error as exc:
            reason = compiler_failure(exc)
            if reason == UNKNOWN_CPU_HINT:
                raise RuntimeError(f"clconv cannot build kernels on {self.name} ({self.platform_name}): "
                                   f"{reason}") from None
            raise RuntimeError(
                f"clconv failed to build {filename} for {self.name} with options {' '.join(options)}:\n{exc}"
            ) from None
        if binary_path:
            self._store_binary(binary_path, program)
        return program

    # Program binaries, cached on disk for the drivers whose own source cache pyopencl relies on (PoCL
    # among them; pyopencl caches binaries itself for the others): building from a binary takes ~5 ms on
    # PoCL, building from source ~50 ms even when PoCL's cache has the compiled kernel. The key holds the
    # source, the options and everything that names the compiler: platform, device (its version string
    # names the CPU PoCL compiles for), driver and clconv version.
    # Storing a binary costs PoCL a second compile of the program (about as long as the first); loading
    # one saves ~45 ms per program and process. CLCONV_BINARY_CACHE=0 turns the cache off.
    @property
    def _caches_binaries(self) -> bool:
        from pyopencl.characterize import has_src_build_cache

        return os.environ.get("CLCONV_BINARY_CACHE", "1") != "0" and bool(has_src_build_cache(self.cl_device))

    def _binary_path(self, source: str, options: list) -> Path:
        from ..version import __version__

        identity = "\0".join((self.platform_name, self.name, self.cl_device.version, self.driver_version,
                               __version__, " ".join(options), source))
        return cache_dir() / "binaries" / (hashlib.sha256(identity.encode()).hexdigest() + ".bin")

    def _build_from_binary(self, path: Path, options: list) -> cl.Program | None:
        try:
            binary = path.read_bytes()
        except OSError:
            return None
        try:
            return cl.Program(self.context, [self.cl_device], [binary]).build(options=options)
        except (cl.Error, ValueError):  # stale or damaged: build from source, which rewrites it
            return None

    def _store_binary(self, path: Path, program: cl.Program) -> None:
        try:
            binary = program.get_info(cl.program_info.BINARIES)[0]
            if not binary:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            partial.write_bytes(binary)
            partial.replace(path)
        except (OSError, cl.Error):  # a read-only cache folder or a driver without binaries: no cache
            pass

    def launch(self, kernel: cl.Kernel, global_size, local_size, *args, wait_for=None) -> cl.Event:
        with self.lock:
            try:
                kernel.set_args(*args)
                return cl.enqueue_nd_range_kernel(self.queue, kernel, global_size, local_size, wait_for=wait_for)
            except cl.MemoryError as exc:
                self.allocator.free_held()
                raise MemoryError(f"out of device memory on {self.name}: {exc}") from None
            except cl.Error as exc:
                raise RuntimeError(f"clconv kernel launch failed on {self.name}: {exc}") from None


logger = logging.getLogger("clconv")


@contextlib.contextmanager
def build_log(what: str, cl_device: cl.Device | None = None):
    """Program builds in this block send their driver's build log (pyopencl's CompilerWarning, e.g. Intel's
    "Kernel was 16-way vectorized") to the "clconv" logger: at DEBUG, or at WARNING with CLCONV_VERBOSE=1.
    The block may pass the program it built to the function it is given: the record then holds the
    program's whole log (pyopencl's warning holds it only with PYOPENCL_COMPILER_OUTPUT=1). Other warnings
    pass through; a failed build raises as before, with its log."""
    built = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", cl.CompilerWarning)
        yield built.append
    compiler = [w for w in caught if issubclass(w.category, cl.CompilerWarning)]
    for warning in caught:
        if warning not in compiler:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno,
                                   source=warning.source)
    if compiler:
        text = "\n".join(str(w.message) for w in compiler)
        if built and cl_device is not None:
            with contextlib.suppress(cl.Error):
                text = built[0].get_build_info(cl_device, cl.program_build_info.LOG).strip() or text
        level = logging.WARNING if os.environ.get("CLCONV_VERBOSE") == "1" else logging.DEBUG
        logger.log(level, "build log of %s:\n%s", what, text)


_SCALAR_TYPES = {"int": np.int32, "uint": np.uint32, "long": np.int64, "float": np.float32, "double": np.float64}


def _declare_scalar_args(kernel: cl.Kernel) -> None:
    """Tell pyopencl the kernel's scalar argument types: it then packs them directly, where an undeclared
    scalar costs some 15 us of probing per argument and call (most of a small convolution's host time)."""
    try:
        names = [kernel.get_arg_info(i, cl.kernel_arg_info.TYPE_NAME) for i in range(kernel.num_args)]
    except cl.Error:  # a driver without argument info: arguments stay undeclared, and slower
        return
    kernel.set_scalar_arg_dtypes([None if "*" in name else _SCALAR_TYPES[name.strip()] for name in names])


_devices: list[Device] | None = None
_devices_lock = threading.Lock()


def devices() -> list[Device]:
    """Every OpenCL device on every platform, in platform order (platform 0's devices first), as
    clconv.Device objects; the list is read once per process. Empty when no OpenCL platform is installed
    (get_device then raises a RuntimeError saying how to install one). `python -m clconv` prints it."""
    global _devices
    if _devices is None:
        with _devices_lock:
            if _devices is None:
                found = []
                # One vendors folder per environment: each names its own runtime libraries.
                environment = hashlib.sha256(sys.prefix.encode()).hexdigest()[:16]
                register_pip_runtimes(cache_dir() / "icd-vendors" / environment)
                try:
                    platforms = cl.get_platforms()
                except cl.Error:
                    platforms = []
                for p_index, platform in enumerate(platforms):
                    try:
                        platform_devices = platform.get_devices()
                    except cl.Error:
                        continue
                    for d_index, cl_device in enumerate(platform_devices):
                        found.append(Device(cl_device, len(found), p_index, d_index))
                _devices = found
    return _devices


_TYPE_PREFERENCE = {"GPU": 0, "ACCELERATOR": 1, "CPU": 2}


def default_order(device: Device) -> tuple:
    """How get_device(None) ranks devices: GPUs, then accelerators, then CPUs; among CPUs PoCL first (the
    runtime clconv installs, whatever order the ICD loader lists platforms in); then by index."""
    return (_TYPE_PREFERENCE.get(device.type, 3), device.type == "CPU" and "pocl" not in device._search_text,
            device.index)


def get_device(spec=None) -> Device:
    """The clconv.Device that `spec` names; every module and function takes its device through this.

    Args:
        spec: None (CLCONV_DEVICE when set, else the first GPU, then accelerator, then CPU whose compiler
            works, PoCL first among CPUs), a Device, an int index into devices(), a "P:D" platform:device
            string, a case-insensitive substring of the device or platform name, vendor or version ("pocl",
            "nvidia", "oclgrind"), or a pyopencl.Device.

    Returns:
        The Device: the same object for the same device in one process (its context, queue, buffer pool and
        program cache are shared).

    Raises:
        RuntimeError: no OpenCL platform, or (spec None) no device whose compiler works. ValueError: nothing
        matches (the message lists the devices), an index out of range. TypeError: another kind of spec.
    """
    if isinstance(spec, Device):
        return spec
    found = devices()
    if not found:
        raise RuntimeError(_NO_PLATFORM)
    if spec is None:
        env = os.environ.get("CLCONV_DEVICE")
        if env:
            return get_device(env)
        ranked = sorted(found, key=default_order)
        for device in ranked:
            if device.compile_error is None:
                return device
        reasons = "; ".join(f"{d.spec} {d.name!r} ({d.platform_name}): {d.compile_error}" for d in ranked)
        raise RuntimeError(f"no OpenCL device here can build kernels: {reasons}")
    if isinstance(spec, cl.Device):
        for device in found:
            if device.cl_device == spec:
                return device
        raise ValueError(f"pyopencl device {spec.name!r} is not among clconv.devices()")
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        if not 0 <= spec < len(found):
            raise ValueError(f"device index {spec} out of range: {len(found)} OpenCL device(s) found")
        return found[int(spec)]
    if isinstance(spec, str):
        text = spec.strip()
        if text.isdigit():
            return get_device(int(text))
        for device in found:
            if device.spec == text:
                return device
        lowered = text.lower()
        for device in found:
            if lowered in device._search_text:
                return device
        names = ", ".join(f"{d.spec} {d.name!r} ({d.platform_name})" for d in found)
        raise ValueError(f"no OpenCL device matches {spec!r}; available: {names}")
    raise TypeError(f"device must be None, an int, a str, a clconv.Device or a pyopencl.Device, got {type(spec).__name__}")
