"""What a new input length, and a new layer, cost in kernel builds.

  python bench/build_costs.py [--steps 40] [--memory-steps 10000]

With fresh program caches (clconv's and PoCL's, in a temporary folder) for each layer kind:
  * new lengths: a training step (forward, backward into input, weight and bias) warmed at two lengths,
    then steps at random new lengths; reports the worst extra time of a first step at a length over the
    next step at that same length, and how many programs the device built;
  * cold layers: the first training step of extreme layers (large strides, long kernels, wide dilations,
    patchify depthwise, 2048-channel pointwise), and the longest single build;
  * memory: resident memory and memoised plans over many steps at random lengths.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

os.environ["CLCONV_CACHE_DIR"] = tempfile.mkdtemp(prefix="clconv-build-costs-")
os.environ["POCL_CACHE_DIR"] = tempfile.mkdtemp(prefix="pocl-build-costs-")

import numpy as np  # noqa: E402

import clconv  # noqa: E402

LENGTH_KINDS = {  # layer kind: (Conv1d arguments, batch, range of input lengths)
    "single-channel": ((1, 128, 10), dict(stride=5), 4, (4000, 32000)),
    "dense": ((64, 64, 3), dict(padding=1), 8, (500, 8000)),
    "strided": ((128, 128, 3), dict(stride=2, padding=1), 8, (500, 8000)),
    "depthwise": ((128, 128, 15), dict(padding=7, groups=128), 8, (500, 8000)),
    "dilated": ((64, 64, 3), dict(padding=8, dilation=8), 8, (500, 8000)),
}
COLD_LAYERS = {
    "filterbank K400 hop 256": ((1, 80, 400), dict(stride=256), 2, 48000),
    "stride 128": ((8, 8, 3), dict(stride=128), 2, 20000),
    "stride 1000": ((8, 8, 3), dict(stride=1000), 2, 20000),
    "K 1001 same": ((4, 4, 1001), dict(padding="same"), 2, 8000),
    "dilation 500": ((4, 4, 3), dict(dilation=500), 2, 8000),
    "patchify depthwise K=stride=64": ((64, 64, 64), dict(stride=64, groups=64), 2, 16384),
    "pointwise 2048": ((2048, 2048, 1), dict(), 1, 256),
}


def step(module, x):
    y = module(x)
    module.backward(np.ones_like(y))
    module.zero_grad()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class BuildCounter:
    """Counts and times the programs a device builds (Device._build)."""

    def __init__(self, device):
        self.count, self.longest, build = 0, 0.0, device._build

        def counted(*args, **kwargs):
            start = time.perf_counter()
            program = build(*args, **kwargs)
            self.count += 1
            self.longest = max(self.longest, time.perf_counter() - start)
            return program
        device._build = counted


def new_lengths(device, steps: int, rng) -> None:
    print(f"## New lengths ({steps} random lengths per kind, after warming two)\n")
    print("| kind | worst first-step extra (ms) | median extra (ms) | programs built after warm-up |")
    print("|---|---|---|---|")
    for kind, (args, kwargs, batch, (lo, hi)) in LENGTH_KINDS.items():
        module = clconv.Conv1d(*args, **kwargs, device=device)
        for length in (lo, hi):
            step(module, rng.standard_normal((batch, args[0], length)).astype(np.float32))
        counter = BuildCounter(device)
        extras = []
        for length in rng.integers(lo, hi, steps):
            x = rng.standard_normal((batch, args[0], int(length))).astype(np.float32)
            first = timed(lambda: step(module, x))
            second = timed(lambda: step(module, x))
            extras.append(first - second)
        print(f"| {kind} | {max(extras) * 1e3:.0f} | {np.median(extras) * 1e3:.1f} | {counter.count} |")
        del device._build
    print()


def cold_layers(device, rng) -> None:
    print("## First training step of extreme layers (fresh caches)\n")
    print("| layer | first step (s) | programs | longest build (s) |")
    print("|---|---|---|---|")
    for name, (args, kwargs, batch, length) in COLD_LAYERS.items():
        counter = BuildCounter(device)
        module = clconv.Conv1d(*args, **kwargs, device=device)
        x = rng.standard_normal((batch, args[0], length)).astype(np.float32)
        print(f"| {name} | {timed(lambda: step(module, x)):.2f} | {counter.count} | {counter.longest:.2f} |", flush=True)
        del device._build
    print()


def memory(device, steps: int, rng) -> None:
    from clconv.passes.plan import PLAN_MEMO_SIZE
    module = clconv.Conv1d(16, 16, 3, padding=1, device=device)
    rss = []
    for i in range(steps):
        step(module, rng.standard_normal((2, 16, int(rng.integers(16, 4096)))).astype(np.float32))
        if i in (steps // 10, steps - 1):
            rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("## Memory over random lengths\n")
    print(f"{steps} training steps of Conv1d(16, 16, 3) at random lengths 16-4095: peak RSS {rss[0]:.0f} MiB "
          f"after {steps // 10} steps, {rss[1]:.0f} MiB after {steps}; {len(device.plans)} plans memoised "
          f"(at most {PLAN_MEMO_SIZE}).\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--memory-steps", type=int, default=10000)
    parser.add_argument("--only", choices=["lengths", "cold", "memory"], default=None)
    args = parser.parse_args(argv)
    device = clconv.get_device(args.device)
    rng = np.random.default_rng(0)
    print(f"# Build costs on {device.name} ({device.device_class})\n")
    if args.only in (None, "lengths"):
        new_lengths(device, args.steps, rng)
    if args.only in (None, "cold"):
        cold_layers(device, rng)
    if args.only in (None, "memory"):
        memory(device, args.memory_steps, rng)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
