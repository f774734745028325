"""Whether a device's OpenCL C compiler works, and what a failed build says in one line.

PoCL 3.0 as installed from PyPI compiles with LLVM 14, which does not know CPUs newer than itself (AMD
Zen 5, CPU family 26): LLVM names the host CPU 'generic', the compiler rejects that target and every build
fails. A one-line probe kernel finds such a device before any real build does.
"""
from __future__ import annotations

import warnings

import pyopencl as cl

_PROBE_SOURCE = "__kernel void probe(__global float *x) { x[get_global_id(0)] += 1.0f; }"
UNKNOWN_CPU_HINT = (
    "this runtime's compiler does not know this CPU, so it builds no kernel here (PoCL 3.0 compiles with "
    "LLVM 14, which predates AMD Zen 5 and rejects the fallback target 'generic'). Install Intel's OpenCL "
    "CPU runtime, which clconv registers by itself: pip install 'clconv[intel-cpu]'; or a PoCL built with a "
    "newer LLVM"
)


def compiler_failure(exc: cl.Error) -> str:
    """What a failed build says, in one line, with advice where the cause is known."""
    text = str(exc)
    if "unknown target CPU" in text:
        return UNKNOWN_CPU_HINT
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower()]
    if lines:
        return lines[-1]
    return text.strip().splitlines()[0] if text.strip() else "the build failed"


def probe_compiler(context: cl.Context) -> str | None:
    """None when the context's compiler builds a trivial kernel, else why it does not."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cl.Program(context, _PROBE_SOURCE).build(options=["-cl-std=CL1.2"])
    except cl.Error as exc:
        return compiler_failure(exc)
    return None
