"""One model's training step on every OpenCL device, and in torch: time per step and agreement.

    python examples/compare_training_step.py [--steps 20] [--batch 16] [--devices pocl,1]

The model is a small 1-D CNN (the keyword-spotting example's). Each column trains its own copy from the
same initial weights on the same batches: `torch` is the model as it is, each OpenCL device's column has
its Conv1d layers converted with clconv.torch.convert. It prints the median time of a training step
(forward, backward, Adam step) per column, its speed relative to torch, and the largest difference of
its final loss from torch's.
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from torch import nn

import clconv
import clconv.torch
from keyword_spotting import make_clips, make_model


def train(model, batches) -> tuple[list[float], list[float]]:
    """(step times, losses) of Adam on `batches`."""
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    times, losses = [], []
    for x, labels in batches:
        start = time.perf_counter()
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
    return times, losses


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--devices", default=None,
                        help="comma-separated OpenCL devices (index, P:D or name substring); default: all")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    initial = make_model()
    rng = np.random.default_rng(0)
    batches = [make_clips(args.batch, rng) for _ in range(args.steps + 1)]
    devices = ([clconv.get_device(s) for s in args.devices.split(",")] if args.devices
               else [d for d in clconv.devices() if d.compile_error is None])

    columns = [("torch", copy.deepcopy(initial))]
    columns += [(f"{d.name} ({d.platform_name})", clconv.torch.convert(copy.deepcopy(initial), cl_device=d))
                for d in devices]
    results = {}
    for name, model in columns:
        train(model, batches[:1])  # warm-up: kernel builds are not timed
        times, losses = train(model, batches[1:])
        results[name] = (1e3 * float(np.median(times)), losses)
        print(f"{name}: median {results[name][0]:.1f} ms per step")

    torch_ms, torch_losses = results["torch"]
    print(f"\nbatch {args.batch}, {args.steps} timed steps after one warm-up step; torch threads: "
          f"{torch.get_num_threads()}")
    print(f"{'column':<60} {'ms/step':>8} {'vs torch':>9} {'max |loss - torch|':>19}")
    for name, (ms, losses) in results.items():
        difference = max(abs(a - b) for a, b in zip(losses, torch_losses))
        print(f"{name:<60} {ms:>8.1f} {torch_ms / ms:>8.2f}x {difference:>19.2e}")


if __name__ == "__main__":
    main()
