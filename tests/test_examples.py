"""Every script in examples/ runs (with few steps) and prints what it measured."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name, *args):
    # The checkout's clconv first, whether or not the package is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    out = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, f"{name} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def numbers(pattern, text):
    found = re.search(pattern, text)
    assert found, f"no match for {pattern!r} in:\n{text}"
    return [float(v) for v in found.groups()]


def test_every_example_is_tested():
    tested = {"keyword_spotting.py", "numpy_training.py", "compare_training_step.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_numpy_training_learns():
    text = run_example("numpy_training.py", "--steps", "120")
    first, last = numbers(r"loss: first \d+ steps ([\d.]+), last \d+ steps ([\d.]+)", text)
    accuracy, = numbers(r"held-out accuracy: ([\d.]+)", text)
    assert last < 0.85 * first and accuracy > 0.6, text


def test_keyword_spotting_trains_with_torch_optimiser():
    pytest.importorskip("torch")
    text = run_example("keyword_spotting.py", "--steps", "24", "--batch", "16")
    first, last = numbers(r"loss: first 10 steps ([\d.]+), last 10 steps ([\d.]+)", text)
    assert last < first, text
    numbers(r"held-out accuracy: ([\d.]+) \(chance 0.25\)", text)
    numbers(r"training step: median ([\d.]+) ms", text)


def test_compare_training_step_agrees_with_torch():
    pytest.importorskip("torch")
    text = run_example("compare_training_step.py", "--steps", "3", "--batch", "4")
    rows = re.findall(r"^(.+?)\s+([\d.]+)\s+([\d.]+)x\s+([\d.e+-]+)$", text, re.MULTILINE)
    import clconv

    assert len(rows) == 1 + sum(d.compile_error is None for d in clconv.devices()), text
    for name, ms, ratio, difference in rows:
        assert float(ms) > 0 and float(difference) < 1e-4, (name, text)
