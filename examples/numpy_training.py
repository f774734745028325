"""The README's numpy-only training loop, self-contained: two clconv convolutions and a numpy head learn to
tell noisy sine, square and sawtooth waves apart, without torch.

    python examples/numpy_training.py [--device pocl] [--steps 200]

The convolutions (forward and backward) run on the OpenCL device; ReLU, the mean over length, the linear
head, softmax cross-entropy and their gradients are numpy. Parameters are updated on the device with plain
SGD, the learning rate decaying linearly to 0. It prints the loss as it goes and the held-out accuracy.
"""
from __future__ import annotations

import argparse

import numpy as np

import clconv

LENGTH = 64


def make_waves(n, rng, length=LENGTH, noise=0.2):
    """n noisy waves, (n, 1, length) float32, and their labels: 0 sine, 1 square, 2 sawtooth."""
    labels = rng.integers(0, 3, size=n)
    cycles = rng.uniform(2.0, 6.0, size=(n, 1))
    phase = rng.uniform(0.0, 1.0, size=(n, 1))
    u = (cycles * np.arange(length) / length + phase) % 1.0  # position within the period, [0, 1)
    waves = np.stack([np.sin(2 * np.pi * u), np.where(u < 0.5, 1.0, -1.0), 2.0 * u - 1.0])
    x = waves[labels, np.arange(n)] + noise * rng.standard_normal((n, length))
    return x[:, None, :].astype(np.float32), labels


def softmax_cross_entropy(logits, labels):
    """(mean loss, d loss / d logits)."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    loss = -np.mean(np.log(p[rows, labels]))
    p[rows, labels] -= 1.0
    return float(loss), p / len(labels)


class Net:
    """Conv1d(1, 8, 5) -> ReLU -> Conv1d(8, 16, 5, stride 2, dilation 2) -> ReLU -> mean -> linear head."""

    def __init__(self, device=None, seed=0):
        clconv.manual_seed(seed)
        self.conv1 = clconv.Conv1d(1, 8, 5, padding=2, device=device)
        self.conv2 = clconv.Conv1d(8, 16, 5, stride=2, dilation=2, device=device)
        rng = np.random.default_rng(seed)
        self.W = (0.25 * rng.standard_normal((16, 3))).astype(np.float32)
        self.b = np.zeros(3, np.float32)

    def predict(self, x):
        h2 = np.maximum(self.conv2(np.maximum(self.conv1(x), 0)), 0)
        return (h2.mean(axis=2) @ self.W + self.b).argmax(axis=1)

    def train_step(self, x, labels, lr):
        """One SGD step on a batch; returns the batch's loss before the step."""
        h1 = np.maximum(self.conv1(x), 0)                     # convolutions on the OpenCL device
        h2 = np.maximum(self.conv2(h1), 0)
        feat = h2.mean(axis=2)
        loss, dz = softmax_cross_entropy(feat @ self.W + self.b, labels)
        dfeat = dz @ self.W.T
        self.W -= lr * feat.T @ dz
        self.b -= lr * dz.sum(axis=0)
        dh1 = self.conv2.backward(dfeat[:, :, None] / h2.shape[2] * (h2 > 0)) * (h1 > 0)
        self.conv1.backward(dh1, input_grad=False)            # the data needs no gradient
        for conv in (self.conv1, self.conv2):
            for param in conv.parameters():
                param.data -= lr * param.grad                 # pyopencl arrays, updated on the device
            conv.zero_grad()
        return loss


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="OpenCL device: index, P:D or name substring")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.25)
    args = parser.parse_args(argv)

    net = Net(device=args.device)
    print(f"convolutions on {net.conv1.device.name}; {args.steps} steps of {args.batch} waves")
    rng = np.random.default_rng(1)
    losses = []
    for step in range(args.steps):
        x, labels = make_waves(args.batch, rng)
        losses.append(net.train_step(x, labels, args.lr * (1 - step / args.steps)))
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {losses[-1]:.3f}")
    x, labels = make_waves(600, np.random.default_rng(12345))
    accuracy = np.mean(net.predict(x) == labels)
    window = max(1, min(20, args.steps // 4))
    print(f"loss: first {window} steps {np.mean(losses[:window]):.3f}, last {window} steps {np.mean(losses[-window:]):.3f}")
    print(f"held-out accuracy: {accuracy:.3f} (chance 0.33)")


if __name__ == "__main__":
    main()
