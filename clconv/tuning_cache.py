"""The tuned-parameter cache: a versioned JSON file in the user's cache directory.

Keys name the platform, device, driver, device class and clconv version, so a driver update, a new
release or another CPU behind the same device name (PoCL names every x86 CPU alike) starts afresh.
`clconv.tune` (`python -m clconv.tune` and CLCONV_AUTOTUNE=1) is the only writer; `params.lookup` the only
reader.

Several processes may tune at once (parallel test workers, training jobs with CLCONV_AUTOTUNE=1): a store
takes an exclusive lock on `tuned.json.lock`, re-reads the file under it, adds its entry to what is there
and replaces the file with a complete new one (a unique temporary file in the same folder, then
os.replace), so that no writer's entries are lost and a reader never sees a partial file.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path

from .version import __version__

try:
    import fcntl
except ImportError:  # not POSIX (Windows): no lock between processes; the file is still replaced whole,
    fcntl = None     # but two processes storing at the same moment may drop one's entry

FORMAT_VERSION = 3  # 2: keys hold the device class; 3: entries are typed per-pass records
_lock = threading.Lock()
_loaded: tuple[Path, dict] | None = None  # the file read last, and what it held
_generation = 0  # bumped by every store, so that memoised launch plans see new entries


def generation() -> int:
    return _generation


def reload() -> None:
    """Forget the loaded cache (the next lookup reads the file again) and the plans memoised from it."""
    global _loaded, _generation
    with _lock:
        _loaded = None
        _generation += 1


def cache_path() -> Path:
    from .runtime import cache_dir

    return cache_dir() / "tuned.json"


def device_key(device) -> str:
    return f"{device.platform_name}|{device.name}|{device.driver_version}|{device.detected_class}|clconv {__version__}"


def shape_key_str(pass_name: str, shape_key: tuple) -> str:
    return pass_name + ":" + ",".join(str(v) for v in shape_key)


def _empty() -> dict:
    return {"format": FORMAT_VERSION, "devices": {}}


def _read(path: Path) -> dict:
    """The file's contents; an empty cache where it is missing, unreadable or of another format."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return _empty()
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION or not isinstance(data.get("devices"), dict):
        return _empty()
    return data


def _load() -> dict:
    global _loaded
    path = cache_path()
    loaded = _loaded
    if loaded is None or loaded[0] != path:
        with _lock:
            if _loaded is None or _loaded[0] != path:
                _loaded = (path, _read(path))
            loaded = _loaded
    return loaded[1]


def lookup(device, pass_name: str, shape_key: tuple) -> dict:
    entries = _load()["devices"].get(device_key(device), {})
    return entries.get(shape_key_str(pass_name, shape_key), {})


def entries(device) -> int:
    """How many tuned entries the cache holds for `device` (its platform, name, driver, class and clconv
    version)."""
    return len(_load()["devices"].get(device_key(device), {}))


@contextlib.contextmanager
def _file_lock(path: Path):
    """An exclusive lock between processes on `<path>.lock`, held for the block (none without fcntl)."""
    if fcntl is None:
        yield
        return
    fd = os.open(str(path) + ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _write_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def store(device, pass_name: str, shape_key: tuple, params: dict) -> None:
    """Add one entry to the cache file, keeping every entry other threads and processes stored meanwhile."""
    global _loaded, _generation
    if not params:
        raise ValueError(f"refusing to store an empty tuned entry for {pass_name} {shape_key}")
    path = cache_path()
    with _lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            data = _read(path)
            data["devices"].setdefault(device_key(device), {})[shape_key_str(pass_name, shape_key)] = dict(params)
            _write_atomic(path, data)
        _loaded = (path, data)
        _generation += 1
