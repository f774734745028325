"""Which device get_device(None) picks when some compilers fail, and how runtimes from PyPI are registered
with the ICD loader (clconv/runtime/icd.py). No kernel runs here: compilers and ICD folders are stand-ins."""
import os

import pyopencl as cl
import pytest

import clconv
from clconv.runtime import default_order, icd
from clconv.runtime.compiler import compiler_failure


@pytest.fixture
def compile_errors(monkeypatch):
    """Set devices' probed compiler state for one test: {device index: reason or None}."""
    monkeypatch.delenv("CLCONV_DEVICE", raising=False)

    def set_errors(errors):
        for device in clconv.devices():
            monkeypatch.setattr(device, "_compile_error", errors.get(device.index, None))

    return set_errors


def test_default_device_passes_over_a_failing_compiler(compile_errors):
    ranked = sorted(clconv.devices(), key=default_order)
    if len(ranked) < 2:
        pytest.skip("needs two OpenCL devices")
    compile_errors({ranked[0].index: "the build failed"})
    assert clconv.get_device() is ranked[1]
    compile_errors({})
    assert clconv.get_device() is ranked[0]


def test_no_working_compiler_is_a_runtime_error(compile_errors):
    compile_errors({d.index: f"reason-{d.index}" for d in clconv.devices()})
    with pytest.raises(RuntimeError, match="no OpenCL device here can build kernels: .*reason-0"):
        clconv.get_device()


def test_default_order_puts_pocl_first_among_cpus():
    cpus = sorted((d for d in clconv.devices() if d.type == "CPU"), key=default_order)
    pocl = [d for d in cpus if "portable computing language" in d.platform_name.lower()]
    if not pocl or len(cpus) < 2:
        pytest.skip("needs PoCL and a second CPU runtime")
    assert cpus[0] is pocl[0]


def test_unknown_target_cpu_gets_advice():
    reason = compiler_failure(cl.Error("clBuildProgram failed: BUILD_PROGRAM_FAILURE\n"
                                        "error: unknown target CPU 'generic'"))
    assert "pip install 'clconv[intel-cpu]'" in reason
    plain = compiler_failure(cl.Error("clBuildProgram failed\n<source>:1:3: error: use of undeclared identifier"))
    assert plain == "<source>:1:3: error: use of undeclared identifier"


@pytest.fixture
def icd_world(tmp_path, monkeypatch):
    """A system vendors folder with one GPU driver, a runtime 'installed from PyPI', OCL_ICD_VENDORS unset."""
    system = tmp_path / "system"
    system.mkdir()
    (system / "gpu.icd").write_text("libgpu-driver.so\n")
    library = tmp_path / "env" / "lib" / "libintelocl.so"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"")
    monkeypatch.setattr(icd, "_SYSTEM_VENDORS", system)
    monkeypatch.setattr(icd, "_installed_library", lambda distribution, name: library)
    monkeypatch.delenv(icd.ICD_VENDORS_ENV, raising=False)
    return system, library, tmp_path / "vendors"


def test_pip_runtime_joins_the_system_icds(icd_world, monkeypatch):
    system, library, folder = icd_world
    (folder).mkdir()
    (folder / "gone.icd").write_text("libold.so\n")
    assert icd.register_pip_runtimes(folder) == folder
    assert os.environ[icd.ICD_VENDORS_ENV] == str(folder)
    files = {p.name: p.read_text() for p in folder.glob("*.icd")}
    assert files == {"gpu.icd": "libgpu-driver.so\n", "intel-opencl-rt.icd": f"{library}\n"}


def test_a_set_icd_vendors_is_left_alone(icd_world, monkeypatch):
    _, _, folder = icd_world
    monkeypatch.setenv(icd.ICD_VENDORS_ENV, "/somewhere/else")
    assert icd.register_pip_runtimes(folder) is None
    assert os.environ[icd.ICD_VENDORS_ENV] == "/somewhere/else"
    assert not folder.exists()


def test_a_runtime_the_system_registers_is_not_added_twice(icd_world, monkeypatch):
    system, _, folder = icd_world
    (system / "intel.icd").write_text("/opt/intel/lib/libintelocl.so\n")
    assert icd.register_pip_runtimes(folder) is None
    assert icd.ICD_VENDORS_ENV not in os.environ


def test_nothing_installed_changes_nothing(icd_world, monkeypatch):
    _, _, folder = icd_world
    monkeypatch.setattr(icd, "_installed_library", lambda distribution, name: None)
    assert icd.register_pip_runtimes(folder) is None
    assert icd.ICD_VENDORS_ENV not in os.environ
