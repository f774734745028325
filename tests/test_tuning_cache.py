"""The tuned-parameter cache file: several processes storing at once keep every entry, a reader never sees
a partial file, and entries of another format or another device class are not read."""
import json
import multiprocessing
import os
from types import SimpleNamespace

import pytest

from clconv import tuning_cache

PROCESSES = 4
STORES = 10


def fake_device(detected_class="cpu-avx512"):
    return SimpleNamespace(platform_name="Fake Platform", name="Fake CPU", driver_version="1.0",
                           detected_class=detected_class)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CLCONV_CACHE_DIR", str(tmp_path))
    tuning_cache.reload()
    yield tmp_path
    monkeypatch.undo()
    tuning_cache.reload()


def _store_many(folder, worker, barrier):
    """One writer process: STORES entries of its own, all processes starting together."""
    os.environ["CLCONV_CACHE_DIR"] = folder
    tuning_cache.reload()
    barrier.wait()
    for i in range(STORES):
        tuning_cache.store(fake_device(), "forward", (worker, i), {"TILE_CO": worker, "RUN": i})


def test_concurrent_processes_keep_every_entry(cache_dir):
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that has OpenCL threads
    barrier = ctx.Barrier(PROCESSES)
    workers = [ctx.Process(target=_store_many, args=(str(cache_dir), w, barrier)) for w in range(PROCESSES)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(120)
    assert [p.exitcode for p in workers] == [0] * PROCESSES
    data = json.loads((cache_dir / "tuned.json").read_text())
    entries = data["devices"][tuning_cache.device_key(fake_device())]
    expected = {tuning_cache.shape_key_str("forward", (w, i)): {"TILE_CO": w, "RUN": i}
                for w in range(PROCESSES) for i in range(STORES)}
    assert entries == expected, f"{len(expected) - len(entries.keys() & expected.keys())} entries lost"
    assert sorted(p.name for p in cache_dir.iterdir()) == ["tuned.json", "tuned.json.lock"]  # no temporary left


def test_store_merges_what_another_process_wrote(cache_dir):
    device = fake_device()
    tuning_cache.store(device, "forward", (1,), {"TILE_CO": 1})
    # another process adds an entry after this one loaded the file
    data = json.loads((cache_dir / "tuned.json").read_text())
    data["devices"][tuning_cache.device_key(device)][tuning_cache.shape_key_str("forward", (2,))] = {"TILE_CO": 2}
    (cache_dir / "tuned.json").write_text(json.dumps(data))
    tuning_cache.store(device, "backward_data", (3,), {"TILE_CO": 3})
    tuning_cache.reload()
    assert tuning_cache.lookup(device, "forward", (1,)) == {"TILE_CO": 1}
    assert tuning_cache.lookup(device, "forward", (2,)) == {"TILE_CO": 2}
    assert tuning_cache.lookup(device, "backward_data", (3,)) == {"TILE_CO": 3}


def test_store_is_seen_at_once_and_bumps_the_generation(cache_dir):
    device = fake_device()
    assert tuning_cache.lookup(device, "forward", (1,)) == {}
    generation = tuning_cache.generation()
    tuning_cache.store(device, "forward", (1,), {"VEC": 8})
    assert tuning_cache.lookup(device, "forward", (1,)) == {"VEC": 8}
    assert tuning_cache.generation() > generation


def test_other_format_and_other_class_are_not_read(cache_dir):
    device = fake_device()
    key = tuning_cache.shape_key_str("forward", (1,))
    (cache_dir / "tuned.json").write_text(json.dumps(
        {"format": tuning_cache.FORMAT_VERSION - 1, "devices": {tuning_cache.device_key(device): {key: {"VEC": 2}}}}))
    tuning_cache.reload()
    assert tuning_cache.lookup(device, "forward", (1,)) == {}
    tuning_cache.store(device, "forward", (1,), {"VEC": 4})
    assert json.loads((cache_dir / "tuned.json").read_text())["format"] == tuning_cache.FORMAT_VERSION
    # the same device name on a CPU of another class (PoCL names every x86 CPU alike) starts afresh
    assert tuning_cache.lookup(fake_device("cpu-avx2"), "forward", (1,)) == {}
    assert tuning_cache.lookup(device, "forward", (1,)) == {"VEC": 4}


def test_damaged_file_reads_as_empty_and_is_replaced(cache_dir):
    (cache_dir / "tuned.json").write_text('{"format": 2, "devi')
    device = fake_device()
    assert tuning_cache.lookup(device, "forward", (1,)) == {}
    tuning_cache.store(device, "forward", (1,), {"VEC": 4})
    tuning_cache.reload()
    assert tuning_cache.lookup(device, "forward", (1,)) == {"VEC": 4}


def test_empty_entry_is_refused(cache_dir):
    with pytest.raises(ValueError, match="empty"):
        tuning_cache.store(fake_device(), "forward", (1,), {})
    assert not (cache_dir / "tuned.json").exists()
