"""Device classes: the keys of the built-in parameter rows (clconv.params), decided from a device's
OpenCL properties, or forced with CLCONV_DEVICE_CLASS."""
from __future__ import annotations

import os
import re
from typing import NamedTuple

# Device classes, the keys of the built-in parameter table (clconv.params), in one place. A device's class
# comes from its properties (classify); CLCONV_DEVICE_CLASS forces another class's built-in rows on it.
DEVICE_CLASSES = ("cpu-avx512", "cpu-avx2", "cpu", "cpu-implicit-simd", "nvidia-gpu", "amd-gpu", "intel-gpu", "gpu", "accelerator", "other")
DEVICE_CLASS_ENV = "CLCONV_DEVICE_CLASS"

# CL_DEVICE_VENDOR_ID of GPUs with a class of their own (PCI vendor ids).
_GPU_VENDOR_CLASSES = {0x10DE: "nvidia-gpu", 0x1002: "amd-gpu", 0x8086: "intel-gpu"}


class DeviceProperties(NamedTuple):
    """What a device's class is decided from (see classify), read once from the OpenCL device."""
    type: str                          # "CPU", "GPU", "ACCELERATOR" or "OTHER", as Device.type
    vendor_id: int                     # CL_DEVICE_VENDOR_ID
    native_vector_width_float: int     # floats per hardware vector: 16 with AVX-512, 8 with AVX2
    preferred_vector_width_float: int  # what the compiler prefers (Intel's CPU runtime says 1: it vectorises itself)
    local_mem_type: str                # "local" (dedicated), "global" (emulated in global memory) or "none"
    local_mem_size: int
    compute_units: int
    max_work_group_size: int
    target_cpu: str = ""               # the CPU model a CPU device's compiler generates code for, where it says ("znver3")


# LLVM's names of the x86 CPU models with AVX-512: code compiled for any other model uses vectors of at most
# 8 floats, whatever the host's own vectors are.
_AVX512_TARGETS = frozenset((
    "knl", "knm", "skx", "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
    "icelake-server", "rocketlake", "tigerlake", "sapphirerapids", "emeraldrapids", "graniterapids",
    "graniterapids-d", "diamondrapids", "znver4", "znver5", "x86-64-v4"))


def target_cpu(device_version: str) -> str:
    """The CPU model PoCL compiles for, from the host string of its device version ("OpenCL 3.0 PoCL HSTR:
    pthread-x86_64-unknown-linux-gnu-znver3" gives "znver3"); "" where the version names none. PoCL reports
    the host's vector width, but its LLVM may not know the host's CPU and compile for an older model: LLVM
    14 compiles for znver3 (AVX2) on an AVX-512 Zen 4."""
    match = re.search(r"HSTR: \S*-unknown-[a-z]+-[a-z0-9]+-(\S+)", device_version)
    return match.group(1) if match else ""


def vector_floats(props: DeviceProperties) -> int:
    """Floats per vector register in the code the device's compiler generates: the wider of the native and
    preferred widths, at most 8 where a CPU device compiles for a model without AVX-512 (target_cpu)."""
    lanes = max(props.native_vector_width_float, props.preferred_vector_width_float)
    if props.target_cpu and props.target_cpu not in _AVX512_TARGETS:
        lanes = min(lanes, 8)
    return lanes


def implicit_simd(props: DeviceProperties) -> bool:
    """A CPU runtime that vectorises across work-items itself (Intel's: preferred float width 1, "Kernel was
    16-way vectorized") on 16-float vectors. PoCL prefers its native width, so it never matches; with 8-float
    vectors such a runtime keeps the cpu-avx2 row (not measured on one)."""
    return props.type == "CPU" and props.preferred_vector_width_float == 1 and props.native_vector_width_float >= 16


def classify(props: DeviceProperties) -> str:
    """The device class of a device with these properties: one of DEVICE_CLASSES.

    CPUs whose runtime vectorises across work-items on 16-float vectors (implicit_simd) are
    "cpu-implicit-simd"; other CPUs by their float vector width, the wider of native and preferred (16
    floats: AVX-512, as PoCL on an AVX-512 CPU reports; 8: AVX2; narrower: "cpu"), at most 8 where the compiler
    targets a CPU model without AVX-512 (target_cpu); GPUs by vendor id; accelerators
    by type. Classes name what their rows were measured on, not a vendor: a CPU of another vendor with
    16-float vectors gets the AVX-512 row. A device of none of these types (CL_DEVICE_TYPE_CUSTOM) is
    "other", which has no row (the safe default).
    """
    if props.type == "CPU":
        if implicit_simd(props):
            return "cpu-implicit-simd"
        lanes = vector_floats(props)
        return "cpu-avx512" if lanes >= 16 else "cpu-avx2" if lanes >= 8 else "cpu"
    if props.type == "GPU":
        return _GPU_VENDOR_CLASSES.get(props.vendor_id, "gpu")
    if props.type == "ACCELERATOR":
        return "accelerator"
    return "other"


def forced_device_class() -> str | None:
    """The class CLCONV_DEVICE_CLASS forces on every device, or None; an unknown one is a ValueError."""
    text = os.environ.get(DEVICE_CLASS_ENV, "").strip()
    if not text:
        return None
    if text.lower() not in DEVICE_CLASSES:
        raise ValueError(f"{DEVICE_CLASS_ENV}={text!r} is not a device class; valid classes: {', '.join(DEVICE_CLASSES)}")
    return text.lower()
