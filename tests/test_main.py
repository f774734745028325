"""`python -m clconv` lists the devices, what clconv knows of them, and the default choice."""

import os
import subprocess
import sys
from pathlib import Path

import clconv
from clconv import tuning_cache

ROOT = Path(__file__).resolve().parent.parent


def run_main(**env):
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-m", "clconv"], capture_output=True, text=True, cwd=ROOT, env=full_env,
                          timeout=120)


def test_lists_every_device_and_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path))
    tuning_cache.reload()
    first = clconv.devices()[0]
    tuning_cache.store(first, "forward", (1, 2, 3), {"strategy": "register"})
    tuning_cache.reload()
    out = run_main(CLCONV_CACHE_DIR=str(tmp_path))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for device in clconv.devices():
        block = text.split(f"[{device.index}] {device.spec}  {device.name}")[1].split("\n[")[0]
        assert f"compute units:   {device.compute_units}\n" in block
        assert f"type, class:     {device.type}, {device.device_class}" in block
        assert f"fp64, fp16:      {'yes' if device.has_fp64 else 'no'}," in block
        assert f"driver:          {device.driver_version}" in block
        assert ("1 cached entries" in block) == (device is first)
    chosen = clconv.get_device()
    assert f"default device (device=None): [{chosen.index}] {chosen.name}: " in text


def test_default_named_by_environment(monkeypatch):
    device = clconv.devices()[-1]
    out = run_main(CLCONV_DEVICE=device.spec)
    assert out.returncode == 0, out.stderr
    assert f"[{device.index}] {device.name}: CLCONV_DEVICE='{device.spec}' names it" in out.stdout


def test_unknown_default_device_fails():
    out = run_main(CLCONV_DEVICE="no-such-device-anywhere")
    assert out.returncode == 1
    assert "default device: none (no OpenCL device matches 'no-such-device-anywhere'" in out.stdout
