"""A 1-D CNN keyword-spotting classifier trained with torch's optimiser, its convolutions on OpenCL.

    python examples/keyword_spotting.py [--device pocl] [--steps 120]

The "keywords" are synthetic one-second clips at 1 kHz, four classes: a rising chirp, a falling chirp, two
short beeps, and a steady tone, each at a random pitch, position and loudness, in noise. The model is an
ordinary torch model (strided convolutions, a depthwise convolution with reflect padding, pooling and a
linear head); clconv.torch.convert moves its Conv1d layers onto the OpenCL device, and torch's Adam trains
it. It prints the loss as it goes, the held-out accuracy and the time per training step.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import clconv
import clconv.torch

RATE = 1000
LENGTH = RATE  # one second
CLASSES = ("rising", "falling", "two beeps", "tone")


def make_clips(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n clips (n, 1, LENGTH) float32 and their labels."""
    labels = rng.integers(0, len(CLASSES), n)
    t = np.arange(LENGTH) / RATE
    clips = 0.3 * rng.standard_normal((n, LENGTH))
    for i, label in enumerate(labels):
        start = rng.uniform(0.0, 0.4)
        duration = rng.uniform(0.3, 0.5)
        f0 = rng.uniform(50, 150)
        local = np.clip((t - start) / duration, 0.0, 1.0)
        inside = (t >= start) & (t < start + duration)
        if label == 0:
            phase = 2 * np.pi * (f0 * local + 0.5 * f0 * local ** 2) * duration
        elif label == 1:
            phase = 2 * np.pi * (2 * f0 * local - 0.5 * f0 * local ** 2) * duration
        else:
            phase = 2 * np.pi * f0 * t
        if label == 2:
            inside &= ((local < 0.3) | (local > 0.7))
        clips[i] += rng.uniform(0.5, 1.5) * inside * np.sin(phase)
    return torch.from_numpy(clips[:, None, :].astype(np.float32)), torch.from_numpy(labels)


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(1, 16, 16, stride=4, padding=6), nn.ReLU(),
        nn.Conv1d(16, 32, 9, stride=4, padding=4), nn.ReLU(),
        nn.Conv1d(32, 32, 9, padding="same", groups=32, padding_mode="reflect"), nn.ReLU(),
        nn.Conv1d(32, 32, 1), nn.ReLU(),
        nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(32, len(CLASSES)),
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="OpenCL device: index, P:D or name substring")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    device = clconv.get_device(args.device)
    model = clconv.torch.convert(make_model(), cl_device=device)
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-3)
    print(f"convolutions on {device.name} ({device.platform_name}); {args.steps} steps of {args.batch} clips")

    step_times, losses = [], []
    for step in range(args.steps):
        x, labels = make_clips(args.batch, rng)
        start = time.perf_counter()
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimiser.step()
        step_times.append(time.perf_counter() - start)
        losses.append(loss.item())
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}")

    model.eval()
    x, labels = make_clips(400, np.random.default_rng(args.seed + 1000))
    with torch.no_grad():
        accuracy = (model(x).argmax(dim=1) == labels).float().mean().item()
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    print(f"loss: first 10 steps {first:.3f}, last 10 steps {last:.3f}")
    print(f"held-out accuracy: {accuracy:.3f} (chance {1 / len(CLASSES):.2f})")
    print(f"training step: median {1e3 * np.median(step_times):.1f} ms")


if __name__ == "__main__":
    main()
