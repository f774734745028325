"""The wheel ships the kernels and works when installed, away from the source tree.

Slow (wheel build + venv): deselect with `-m "not slow"`.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

README_EXAMPLE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import clconv

    assert "site-packages" in clconv.__file__, clconv.__file__
    m = clconv.Conv1d(16, 33, 3, stride=2)
    x = np.random.default_rng(0).standard_normal((20, 16, 50)).astype(np.float32)
    y = m(x)
    assert y.shape == (20, 33, 24), y.shape
    assert y.dtype == np.float32
    w, b = m.weight.numpy().astype(np.float64), m.bias.numpy().astype(np.float64)
    ref = np.zeros((20, 33, 24)) + b[None, :, None]
    for k in range(3):
        ref += np.einsum("oc,nct->not", w[:, :, k], x[:, :, k:k + 2 * 23 + 1:2].astype(np.float64))
    err = np.abs(y - ref).max()
    assert err <= 1e-4 * (1 + np.abs(ref).max()), err
    print("OK", clconv.__file__)
    """
)


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Build the wheel from a copy of the source tree (keeps build/ and egg-info out of the checkout)."""
    src = tmp_path_factory.mktemp("src") / "clconv-src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", ".venv"))
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(out), str(src)])
    wheels = list(out.glob("clconv-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "clconv/kernels/conv1d_forward.cl" in names
    assert "clconv/__init__.py" in names
    # every kernel source of the checkout is shipped
    for cl_file in (ROOT / "kernels").glob("*.cl"):
        assert f"clconv/kernels/{cl_file.name}" in names, cl_file.name
    assert not any(n.startswith("tests/") for n in names)


def test_installed_wheel_runs_readme_example(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    py = venv / "bin" / "python"
    # A venv made from a venv sees the *base* interpreter's site-packages, not the test venv's:
    # expose the test venv's packages (numpy, pyopencl, pocl) through a .pth placed after the new
    # venv's own site-packages, so the installed clconv is found first.
    site = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    Path(site, "zz_test_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --force-reinstall: through the .pth pip may already see a clconv (the test venv's) and skip the wheel.
    _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--force-reinstall", "--disable-pip-version-check",
          str(wheel)])
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = _run([str(py), "-c", README_EXAMPLE], cwd=workdir, env=env)
    assert "OK" in proc.stdout
    assert str(venv) in proc.stdout, proc.stdout
