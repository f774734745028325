"""Making OpenCL runtimes installed from PyPI visible to the ICD loader.

Intel's OpenCL CPU runtime (`pip install 'clconv[intel-cpu]'`, packages intel-opencl-rt and
intel-cmplr-lib-rt) installs its library into the environment, but the ICD file it ships names a path from
its build machine, so no ICD loader finds it. It matters most where PoCL cannot compile: PoCL's LLVM 14
does not know CPUs newer than it (AMD Zen 5, for one) and fails every build there.

Before the first platform query, when OCL_ICD_VENDORS is unset, register_pip_runtimes() writes a vendors
folder in clconv's cache that holds the system's ICD files (so GPU drivers stay visible) and one for the
runtime found, and points OCL_ICD_VENDORS at it. A set OCL_ICD_VENDORS is the user's choice and is left
alone; so is a system that registers Intel's runtime itself.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

ICD_VENDORS_ENV = "OCL_ICD_VENDORS"
_SYSTEM_VENDORS = Path(os.environ.get("OPENCL_VENDOR_PATH") or "/etc/OpenCL/vendors")
# (distribution, library) for each OpenCL runtime on PyPI whose own ICD file cannot be used as installed.
_PIP_RUNTIMES = (("intel-opencl-rt", "libintelocl.so"),)


def _installed_library(distribution: str, library: str) -> Path | None:
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == library:
            path = Path(file.locate()).resolve()
            return path if path.is_file() else None
    return None


def _system_icds() -> dict[str, str]:
    """{file name: content} of the system's ICD files."""
    found = {}
    try:
        entries = sorted(_SYSTEM_VENDORS.iterdir())
    except OSError:
        return found
    for entry in entries:
        if entry.suffix == ".icd":
            try:
                found[entry.name] = entry.read_text()
            except OSError:
                continue
    return found


def register_pip_runtimes(folder: Path) -> Path | None:
    """Point OCL_ICD_VENDORS at `folder`, filled with the system's ICD files and one per runtime from PyPI
    that the system does not register. Returns the folder, or None when nothing was changed."""
    if os.environ.get(ICD_VENDORS_ENV):
        return None
    system = _system_icds()
    extra = {}
    for distribution, library in _PIP_RUNTIMES:
        path = _installed_library(distribution, library)
        if path is not None and not any(library in content for content in system.values()):
            extra[f"{distribution}.icd"] = f"{path}\n"
    if not extra:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {**system, **extra}
        for stale in folder.glob("*.icd"):
            if stale.name not in wanted:
                stale.unlink()
        for name, content in wanted.items():
            target = folder / name
            if not target.is_file() or target.read_text() != content:
                partial = folder / f"{name}.{os.getpid()}.tmp"
                partial.write_text(content)
                partial.replace(target)
    except OSError:  # a read-only cache: the runtime stays invisible, as without clconv
        return None
    os.environ[ICD_VENDORS_ENV] = str(folder)
    return folder
