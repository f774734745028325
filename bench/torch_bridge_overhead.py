"""Per-call overhead of clconv.torch against the bare clconv numpy call, on a small layer.

    python bench/torch_bridge_overhead.py [--device pocl] [--calls 2000]

Times, as medians over many calls on one layer (default (8, 16, 128) -> 32, K 5, padding 2, float32):
the forward through clconv.conv1d on numpy arrays, through clconv.torch.conv1d on tensors (without and
with autograd recording), and a training step (forward and backward into input, weight and bias) of
clconv.Conv1d on numpy arrays against clconv.torch.Conv1d with autograd. The differences are what the
bridge adds per call.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import clconv
import clconv.torch


def medians_us(first, second, calls: int) -> tuple[float, float]:
    """Median times of two calls, alternated so that other work on the machine hits both alike."""
    for _ in range(min(50, calls)):
        first()
        second()
    samples = ([], [])
    for _ in range(calls):
        for fn, times in ((first, samples[0]), (second, samples[1])):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(samples[0]) * 1e6, statistics.median(samples[1]) * 1e6


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="OpenCL device (index, P:D or name substring)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--shape", default="8,16,128,32,5", help="N,C_IN,L,C_OUT,K (padding K//2)")
    args = parser.parse_args(argv)
    n, c_in, length, c_out, k = (int(v) for v in args.shape.split(","))
    device = clconv.get_device(args.device)
    torch.set_num_threads(1)  # torch's own work here is bookkeeping: keep it off the OpenCL device's cores

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c_in, length)).astype(np.float32)
    numpy_layer = clconv.Conv1d(c_in, c_out, k, padding=k // 2, device=device)
    torch_layer = clconv.torch.Conv1d(c_in, c_out, k, padding=k // 2, cl_device=device)
    torch_layer.load_state_dict({name: torch.from_numpy(v) for name, v in numpy_layer.state_dict().items()})
    w, b = numpy_layer.weight.numpy(), numpy_layer.bias.numpy()
    xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
    xt_grad = xt.clone().requires_grad_()
    dy = np.ones((n, c_out, length), np.float32)

    def numpy_step():
        numpy_layer(x)
        numpy_layer.backward(dy)
        numpy_layer.zero_grad()

    def torch_step():
        torch_layer(xt_grad).sum().backward()
        torch_layer.zero_grad(set_to_none=True)
        xt_grad.grad = None

    def torch_forward_no_grad():
        with torch.no_grad():
            clconv.torch.conv1d(xt, wt, bt, padding=k // 2, cl_device=device)

    def numpy_forward():
        clconv.conv1d(x, w, b, padding=k // 2)

    rows = [
        ("forward", *medians_us(numpy_forward, torch_forward_no_grad, args.calls),
         "clconv.torch.conv1d under torch.no_grad()"),
        ("forward, recorded", *medians_us(numpy_forward, lambda: torch_layer(xt_grad), args.calls),
         "clconv.torch.Conv1d, input requires grad"),
        ("training step", *medians_us(numpy_step, torch_step, args.calls),
         "forward + backward into input, weight, bias (torch: .sum().backward(), gradients downloaded)"),
    ]
    print(f"device: {device.name} ({device.platform_name}); layer ({n}, {c_in}, {length}) -> {c_out}, K {k}, "
          f"float32; median of {args.calls} calls")
    print(f"{'what':<20} {'numpy us':>10} {'torch us':>10} {'overhead us':>12}  torch side")
    for what, numpy_us, torch_us, note in rows:
        print(f"{what:<20} {numpy_us:>10.1f} {torch_us:>10.1f} {torch_us - numpy_us:>12.1f}  {note}")


if __name__ == "__main__":
    main()
