"""The tuned-parameter cache: a versioned JSON file in the user's cache directory.

Keys name the platform, device, driver and clconv version, so a driver update or a new release starts
afresh. `python -m clconv.tune` is the only writer; `params.lookup` the only reader.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

from . import __version__

FORMAT_VERSION = 1
_lock = threading.Lock()
_loaded: dict | None = None
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
    return f"{device.platform_name}|{device.name}|{device.driver_version}|clconv {__version__}"


def shape_key_str(pass_name: str, shape_key: tuple) -> str:
    return pass_name + ":" + ",".join(str(v) for v in shape_key)


def _load() -> dict:
    global _loaded
    if _loaded is None:
        with _lock:
            try:
                data = json.loads(cache_path().read_text())
                _loaded = data if data.get("format") == FORMAT_VERSION else {"format": FORMAT_VERSION, "devices": {}}
            except (OSError, ValueError):
                _loaded = {"format": FORMAT_VERSION, "devices": {}}
    return _loaded


def lookup(device, pass_name: str, shape_key: tuple) -> dict:
    entries = _load()["devices"].get(device_key(device), {})
    return entries.get(shape_key_str(pass_name, shape_key), {})


def store(device, pass_name: str, shape_key: tuple, params: dict) -> None:
    global _generation
    data = _load()
    with _lock:
        _generation += 1
        data["devices"].setdefault(device_key(device), {})[shape_key_str(pass_name, shape_key)] = params
        path = cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(path)
