"""Scale-out: the wav2vec front end over a long made-up signal on 1 and 2 Dask workers, DataParallel over
the host's OpenCL devices against one device, and Zarr in and out under a worker memory limit.

  python bench/scale_out.py [--seconds 3600] [--chunk-seconds 10] [--workers 1,2] [--batch 16]
                            [--rounds 5] [--zarr-mib 2048] [--memory-limit-mib 1024] [--skip dask,parallel,zarr]
                            [--out DIR]

Dask: Conv1d(1, 512, 10, stride=5) over `--seconds` of 16 kHz audio (random numbers, generated on the
workers and held in their memory before the clock starts) chunked into `--chunk-seconds` pieces; each
output block (512 features per 5 samples) is averaged over its length on its worker, so an hour's 23.6 GB
of features is computed but never collected. Every worker process gets an equal share of the cores
(POCL_MAX_PTHREAD_COUNT), and builds its kernels on a short warm-up signal chunked the same way. From
the task stream: the time workers spent computing, receiving data from each other, and the rest of
workers x wall time (scheduling, serialisation, idle).

DataParallel: the same layer on a batch of `--batch` one-second clips, numpy in and out, on each device
alone and split across all of them; plus, per device, the host copies alone (input up, output down).

Zarr: a `--zarr-mib` signal written to a Zarr store by the workers, then read, convolved by a filter bank
(Conv1d(1, 16, 400, stride=160): 25 ms windows every 10 ms) and written to another store, on 2 workers
limited to `--memory-limit-mib` each; reports each worker's peak resident memory.

Writes scale_out.json and scale_out.md to --out (default: the current folder).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import clconv

RATE = 16000  # samples per second of the made-up audio
LAYER = dict(in_channels=1, out_channels=512, kernel_size=10, stride=5)


def layer_gflop(samples: int, batch: int = 1) -> float:
    outputs = (samples - LAYER["kernel_size"]) // LAYER["stride"] + 1
    return 2.0 * batch * LAYER["out_channels"] * outputs * LAYER["kernel_size"] / 1e9


def peak_rss_mib() -> float | None:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, it starts afresh at exec, so a worker
    does not inherit the peak of the process that started it); None where /proc is missing."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return next(int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:"))


def cluster(n_workers: int, **kwargs):
    from distributed import Client, LocalCluster

    threads = str(max(1, (os.cpu_count() or 1) // n_workers))
    local = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                         env={"POCL_MAX_PTHREAD_COUNT": threads}, **kwargs)
    return local, Client(local)


def pooled_features(x):
    """The front end's output averaged over each block's length: (N, 512, blocks)."""
    import clconv.dask

    clconv.manual_seed(0)
    y = clconv.dask.apply(clconv.Conv1d(**LAYER), x)
    return y.map_blocks(lambda block: block.mean(axis=2, keepdims=True), dtype=y.dtype,
                        chunks=(y.chunks[0], y.chunks[1], (1,) * len(y.chunks[2])))


def task_stream_totals(records) -> dict:
    totals = {}
    for record in records:
        for part in record.get("startstops", ()):
            totals[part["action"]] = totals.get(part["action"], 0.0) + part["stop"] - part["start"]
    return totals


def run_dask(n_workers: int, seconds: float, chunk_seconds: float) -> dict:
    import dask.array as da
    from distributed import get_task_stream, wait

    samples, chunk = int(seconds * RATE), int(chunk_seconds * RATE)
    local, client = cluster(n_workers)
    with local, client:
        rng = da.random.default_rng(0)
        x = client.persist(rng.standard_normal((1, 1, samples), chunks=(1, 1, chunk), dtype=np.float32))
        wait(x)
        warm = x[:, :, :3 * chunk] if samples > 3 * chunk else x
        pooled_features(warm).compute()  # kernels for the blocks inside and at the end
        start = time.perf_counter()
        with get_task_stream(client) as stream:
            features = pooled_features(x).compute()
        wall = time.perf_counter() - start
        totals = task_stream_totals(stream.data)
    assert features.shape == (1, 512, -(-samples // chunk)) and np.isfinite(features).all()
    compute, transfer = totals.get("compute", 0.0), totals.get("transfer", 0.0)
    return {"workers": n_workers, "seconds": seconds, "chunk_seconds": chunk_seconds, "wall_s": wall,
            "audio_s_per_s": seconds / wall, "gflops": layer_gflop(samples) / wall,
            "compute_s": compute, "transfer_s": transfer,
            "other_s": n_workers * wall - sum(totals.values()), "actions": totals}


def median_time(fn, rounds: int) -> float:
    fn()  # kernels, buffers, measurement of the split
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run_parallel(batch: int, rounds: int) -> dict:
    x = np.random.default_rng(1).standard_normal((batch, 1, RATE)).astype(np.float32)
    gflop = layer_gflop(RATE, batch)
    devices = [d for d in clconv.devices() if d.compile_error is None]
    rows = []
    for device in devices:
        clconv.manual_seed(0)
        module = clconv.Conv1d(**LAYER, device=device)
        seconds = median_time(lambda: module(x), rounds)
        y_dev = module(device.to_device(x))
        copies = median_time(lambda: (device.to_device(x), y_dev.get()), rounds)
        rows.append({"columns": f"{device.index}: {device.name} ({device.platform_name})", "devices": 1,
                     "seconds": seconds, "gflops": gflop / seconds, "host_copies_s": copies})
    for balance in ("measured", "even"):
        clconv.manual_seed(0)
        dp = clconv.DataParallel(clconv.Conv1d(**LAYER, device=devices[0]), devices=devices, balance=balance)
        seconds = median_time(lambda: dp(x), rounds)
        rows.append({"columns": f"DataParallel, balance={balance}", "devices": len(devices), "seconds": seconds,
                     "gflops": gflop / seconds, "shares": dp.shares(x)})
    best = min(r["seconds"] for r in rows if r["devices"] == 1)
    ideal = 1 / sum(1 / r["seconds"] for r in rows if r["devices"] == 1)
    for row in rows:
        row["speedup_over_best_device"] = best / row["seconds"]
        row["efficiency"] = ideal / row["seconds"] if row["devices"] > 1 else None
    return {"batch": batch, "rounds": rounds, "gflop": gflop, "rows": rows}


def run_zarr(mib: int, limit_mib: int, chunk_seconds: float) -> dict:
    import dask.array as da
    from distributed import wait

    import clconv.dask

    samples, chunk = mib * 2 ** 20 // 4, int(chunk_seconds * RATE)
    folder = Path(tempfile.mkdtemp(prefix="clconv-scale-out-"))
    local, client = cluster(2, memory_limit=f"{limit_mib}MiB")
    try:
        with local, client:
            start = time.perf_counter()
            rng = da.random.default_rng(2)
            wait(client.compute(rng.standard_normal((1, 1, samples), chunks=(1, 1, chunk), dtype=np.float32)
                                .to_zarr(str(folder / "signal.zarr"), compute=False)))
            written = time.perf_counter() - start
            clconv.manual_seed(0)
            bank = clconv.Conv1d(1, 16, 400, stride=160)
            start = time.perf_counter()
            features = clconv.dask.apply(bank, da.from_zarr(str(folder / "signal.zarr")))
            wait(client.compute(features.rechunk((1, 16, chunk // 160)).to_zarr(str(folder / "features.zarr"),
                                                                               compute=False)))
            convolved = time.perf_counter() - start
            peaks = client.run(peak_rss_mib)
        sizes = {name: sum(f.stat().st_size for f in (folder / name).rglob("*") if f.is_file()) / 2 ** 20
                 for name in ("signal.zarr", "features.zarr")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"signal_mib": mib, "worker_memory_limit_mib": limit_mib, "workers": 2, "write_signal_s": written,
            "convolve_s": convolved, "audio_hours": samples / RATE / 3600, "store_mib": sizes,
            "worker_peak_rss_mib": sorted(peaks.values())}


def markdown(report: dict) -> str:
    lines = [f"Machine: {report['machine']['cpu_count']} cores, load average {report['machine']['load_before']} "
             f"before, {report['machine']['load_after']} after; devices: {report['machine']['devices']}", ""]
    if "dask" in report:
        lines += ["| Dask workers | wall s | audio s per s | GFLOP/s | scaling efficiency | compute s | transfer s | other s |",
                  "|---|---|---|---|---|---|---|---|"]
        one = next((r for r in report["dask"] if r["workers"] == 1), None)
        for r in report["dask"]:
            eff = f"{one['wall_s'] / (r['workers'] * r['wall_s']):.2f}" if one else "-"
            lines.append(f"| {r['workers']} | {r['wall_s']:.1f} | {r['audio_s_per_s']:.0f} | {r['gflops']:.1f} | {eff} "
                         f"| {r['compute_s']:.1f} | {r['transfer_s']:.2f} | {r['other_s']:.1f} |")
        lines.append("")
    if "parallel" in report:
        p = report["parallel"]
        lines += [f"DataParallel, Conv1d(1, 512, 10, stride=5) on ({p['batch']}, 1, 16000), numpy in and out, "
                  f"median of {p['rounds']}:", "",
                  "| run on | ms | GFLOP/s | speedup over the best device | efficiency | host copies ms | shares |",
                  "|---|---|---|---|---|---|---|"]
        for r in p["rows"]:
            eff = "-" if r["efficiency"] is None else f"{r['efficiency']:.2f}"
            copies = f"{1e3 * r['host_copies_s']:.1f}" if "host_copies_s" in r else "-"
            shares = ", ".join(f"{s:.2f}" for s in r["shares"]) if "shares" in r else "-"
            lines.append(f"| {r['columns']} | {1e3 * r['seconds']:.1f} | {r['gflops']:.1f} | "
                         f"{r['speedup_over_best_device']:.2f} | {eff} | {copies} | {shares} |")
        lines.append("")
    if "zarr" in report:
        z = report["zarr"]
        lines += [f"Zarr: {z['store_mib']['signal.zarr']:.0f} MiB signal ({z['audio_hours']:.1f} h) -> "
                  f"{z['store_mib']['features.zarr']:.0f} MiB of features on {z['workers']} workers limited to "
                  f"{z['worker_memory_limit_mib']} MiB each: written in {z['write_signal_s']:.1f} s, convolved in "
                  f"{z['convolve_s']:.1f} s; worker peak resident memory "
                  f"{', '.join(f'{m:.0f}' for m in z['worker_peak_rss_mib'])} MiB", ""]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3600, help="signal length for Dask (default 3600)")
    parser.add_argument("--chunk-seconds", type=float, default=10, help="length chunk (default 10)")
    parser.add_argument("--workers", default="1,2", help="Dask worker counts (default 1,2)")
    parser.add_argument("--batch", type=int, default=16, help="DataParallel batch of 1-s clips (default 16)")
    parser.add_argument("--rounds", type=int, default=5, help="DataParallel timed rounds (default 5)")
    parser.add_argument("--zarr-mib", type=int, default=2048, help="Zarr signal size in MiB (default 2048)")
    parser.add_argument("--memory-limit-mib", type=int, default=1024, help="Zarr worker memory limit (default 1024)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: dask, parallel, zarr")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for scale_out.json and scale_out.md (default: .)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    report = {"machine": {"cpu_count": os.cpu_count(), "load_before": round(os.getloadavg()[0], 2),
                          "devices": [f"{d.name} ({d.platform_name})" for d in clconv.devices()]},
              "settings": vars(args) | {"out": str(args.out)}}
    if "dask" not in skip:
        report["dask"] = []
        for n in (int(w) for w in args.workers.split(",")):
            report["dask"].append(run_dask(n, args.seconds, args.chunk_seconds))
            print(json.dumps(report["dask"][-1]), flush=True)
    if "parallel" not in skip:
        report["parallel"] = run_parallel(args.batch, args.rounds)
        print(json.dumps(report["parallel"]), flush=True)
    if "zarr" not in skip:
        report["zarr"] = run_zarr(args.zarr_mib, args.memory_limit_mib, args.chunk_seconds)
        print(json.dumps(report["zarr"]), flush=True)
    report["machine"]["load_after"] = round(os.getloadavg()[0], 2)
    report["machine"]["bench_peak_rss_mib"] = peak_rss_mib()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale_out.json").write_text(json.dumps(report, indent=1))
    table = markdown(report)
    (args.out / "scale_out.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
