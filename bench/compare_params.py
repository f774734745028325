"""One pass of one layer under two or more sets of parameter overrides, each timed in a process of its own.

    python bench/compare_params.py --shape 32,720,5,720,5,1,2 --pass weight '{}' '{"COLS_L_MAX": null}'

Variants run one after the other in fresh processes, the whole round repeated --rounds times, and each
process reports the median of its calls after a warm-up. A variant timed in the same process right after
another (or after torch's threads) runs slower than alone on a small machine, by more than many of the
differences worth measuring; separate processes, alternated, leave each variant the same conditions. The
shape is N,C_IN,L,C_OUT,K[,stride,pad,dilation,groups] as in `python -m clconv.tune`; the overrides are
JSON objects of parameter fields (`clconv.params.override`), `{}` for the built-in parameters.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

PASSES = ("forward", "input", "weight")


def parse_shape(text: str) -> tuple[int, ...]:
    """(n, c_in, length, c_out, k, stride, pad, dilation, groups) from N,C_IN,L,C_OUT,K[,stride,pad,dil,groups]."""
    values = [int(v) for v in text.split(",")]
    if not 5 <= len(values) <= 9:
        raise argparse.ArgumentTypeError(f"expected N,C_IN,L,C_OUT,K[,stride,pad,dilation,groups], got {text!r}")
    return tuple(values[:5]) + tuple((values[5:] + [1, 0, 1, 1][len(values) - 5:])[:4])


def time_variant(shape: tuple[int, ...], pass_name: str, overrides: dict, device: str | None, calls: int,
                 warmup: int) -> float:
    """Median seconds of `calls` calls of the pass after `warmup` calls, under the overrides (this process)."""
    import clconv
    from clconv.grad import conv1d_input, conv1d_weight

    dev = clconv.get_device(device)
    n, c_in, length, c_out, k, stride, pad, dilation, groups = shape
    rng = np.random.default_rng(0)
    x = dev.to_device(rng.standard_normal((n, c_in, length), dtype=np.float32))
    w = dev.to_device(rng.standard_normal((c_out, c_in // groups, k), dtype=np.float32))
    length_out = (length + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    dy = dev.to_device(rng.standard_normal((n, c_out, length_out), dtype=np.float32))
    run = {"forward": lambda: clconv.functional.conv1d(x, w, None, stride, pad, dilation, groups),
           "input": lambda: conv1d_input((n, c_in, length), w, dy, stride, pad, dilation, groups),
           "weight": lambda: conv1d_weight(x, (c_out, c_in // groups, k), dy, stride, pad, dilation, groups)}[pass_name]
    samples = []
    with clconv.params.override(**overrides):
        for i in range(warmup + calls):
            start = time.perf_counter()
            run()
            dev.queue.finish()
            if i >= warmup:
                samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=parse_shape, required=True, metavar="N,C_IN,L,C_OUT,K[,stride,pad,dil,groups]")
    parser.add_argument("--pass", dest="pass_name", choices=PASSES, default="forward")
    parser.add_argument("--device", default=None, help="OpenCL device (index, P:D or name substring)")
    parser.add_argument("--rounds", type=int, default=4, help="processes per variant, alternated (default 4)")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per process (default 20)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("variants", nargs="+", metavar="OVERRIDES", help="JSON object of parameter overrides")
    args = parser.parse_args(argv)
    try:
        variants = [json.loads(text) for text in args.variants]
    except json.JSONDecodeError as error:
        parser.error(f"an override is not JSON: {error}")
    if not all(isinstance(v, dict) for v in variants):
        parser.error("each override must be a JSON object, e.g. '{}' or '{\"TILE_CO\": 8}'")
    if args.rounds < 1 or args.calls < 1 or args.warmup < 0:
        parser.error("--rounds and --calls must be at least 1, --warmup at least 0")
    from clconv.api.checks import conv_geometry

    n, c_in, length, c_out, k, stride, pad, dilation, groups = args.shape
    try:
        conv_geometry((n, c_in, length), (c_out, c_in // max(groups, 1), k), None, stride, pad, pad, dilation, groups)
    except (ValueError, RuntimeError) as error:
        parser.error(f"--shape: {error}")
    if args.child:
        print(time_variant(args.shape, args.pass_name, variants[0], args.device, args.calls, args.warmup))
        return
    shape_text = ",".join(map(str, args.shape))
    common = [sys.executable, __file__, "--child", "--shape", shape_text, "--pass", args.pass_name,
              "--calls", str(args.calls), "--warmup", str(args.warmup)] + (["--device", args.device] if args.device else [])
    medians = [[] for _ in variants]
    for _ in range(args.rounds):
        for text, times in zip(args.variants, medians):
            done = subprocess.run(common + [text], capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"variant {text} failed:\n{done.stderr.strip()}")
            times.append(float(done.stdout.split()[-1]))
    print(f"{shape_text} {args.pass_name}, {args.rounds} process(es) per variant, median of {args.calls} calls each:")
    base = statistics.median(medians[0])
    for text, times in zip(args.variants, medians):
        ms = " ".join(f"{t * 1e3:.3f}" for t in times)
        print(f"  {text}: {ms} ms; median {statistics.median(times) * 1e3:.3f} ms, "
              f"{base / statistics.median(times):.2f}x the first")


if __name__ == "__main__":
    main()
