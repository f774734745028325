"""`python -m clconv`: the OpenCL devices clconv sees, what it knows of each, and which one it picks.

For each device: its index and "P:D" spec (what device= accepts), name, platform, type and device class,
compute units, global memory, largest allocation, fp64 and fp16 support, driver version, and how many tuned
parameter entries the cache holds for it; then the device that device=None selects, and why.
"""
from __future__ import annotations

import os
import sys

from . import tuning_cache
from .version import __version__
from .runtime import _NO_PLATFORM, DEVICE_CLASS_ENV, devices, get_device


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def _why_default(found, chosen) -> str:
    env = os.environ.get("CLCONV_DEVICE")
    if env:
        return f"CLCONV_DEVICE={env!r} names it"
    working = [d for d in found if d.compile_error is None]
    passed_over = " (devices whose compiler fails are passed over)" if len(working) < len(found) else ""
    for kind, text in (("GPU", "the first GPU"), ("ACCELERATOR", "no GPU: the first accelerator"),
                       ("CPU", "no GPU or accelerator: the first CPU (PoCL ahead of other CPU runtimes)")):
        if chosen.type == kind:
            return text + passed_over
    return "no GPU, accelerator or CPU: the first device" + passed_over


def describe(device) -> list[str]:
    extensions = device.cl_device.extensions.split()
    detected = device.detected_class
    device_class = device.device_class
    if device_class != detected:
        device_class = f"{device_class} (forced by {DEVICE_CLASS_ENV}; detected {detected})"
    tuned = tuning_cache.entries(device)
    return [
        f"[{device.index}] {device.spec}  {device.name}",
        f"    platform:        {device.platform_name}",
        f"    type, class:     {device.type}, {device_class}",
        f"    compute units:   {device.compute_units}",
        f"    global memory:   {_size(device.global_mem_size)}",
        f"    max allocation:  {_size(device.max_alloc)} (host arrays above {_size(device.buffer_limit)} run in pieces)",
        f"    fp64, fp16:      {'yes' if device.has_fp64 else 'no'}, {'yes' if 'cl_khr_fp16' in extensions else 'no'}"
        " (float16 storage works without cl_khr_fp16)",
        f"    driver:          {device.driver_version}",
        f"    compiler:        {'works' if device.compile_error is None else 'FAILS: ' + device.compile_error}",
        f"    tuned params:    {f'{tuned} cached entries' if tuned else 'none cached (built-in rows for its class)'}",
    ]


def main() -> int:
    found = devices()
    print(f"clconv {__version__}: {len(found)} OpenCL device(s); tuned-parameter cache {tuning_cache.cache_path()}")
    if not found:
        print(_NO_PLATFORM)
        return 1
    for device in found:
        print("\n".join(describe(device)))
    try:
        chosen = get_device()
    except (ValueError, RuntimeError) as exc:
        print(f"default device: none ({exc})")
        return 1
    print(f"default device (device=None): [{chosen.index}] {chosen.name}: {_why_default(found, chosen)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
