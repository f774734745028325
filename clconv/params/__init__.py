"""Per-device kernel parameters, from one place with one lookup order:

    explicit override  ->  tuned cache  ->  built-in row for the device class  ->  safe default

Each pass reads a typed record (records.py). The device class (runtime.DEVICE_CLASSES: "cpu-avx512",
"gpu", ...) comes from the device's properties, or from CLCONV_DEVICE_CLASS, and picks the built-in row
(rows.py). The planner then fits the record to the device's limits and to the shape (fit.py), so every
configuration a kernel is launched with is one the device can run.
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import asdict

from .. import tuning_cache
from ..runtime import DEVICE_CLASS_ENV, DEVICE_CLASSES
from .fit import balanced_tile, ceil_div, fit, pow2_ceil, pow2_floor
from .records import (RECORDS, STRATEGIES, BackwardDataParams, BackwardWeightParams, ForwardParams, Pass,
                      PassParams, all_field_names, field_names, record)
from .rows import BUILTIN, PROVENANCE

__all__ = ["BackwardDataParams", "BackwardWeightParams", "ForwardParams", "Pass", "PassParams", "STRATEGIES",
           "balanced_tile", "builtin", "ceil_div", "fit", "has_tuned", "is_overridden", "lookup", "override",
           "override_key", "pow2_ceil", "pow2_floor", "provenance", "safe_default"]

_override_state = threading.local()


@contextlib.contextmanager
def override(**values):
    """Force kernel parameters inside a `with` block (this thread only), e.g. override(strategy="local").
    A name applies to every pass whose record has it (TILE_CO: the forward's and the weight gradient's);
    a name no record has is a ValueError, a value of the wrong type a TypeError."""
    valid = all_field_names()
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"unknown kernel parameter(s) {', '.join(unknown)}; valid names: {', '.join(valid)}")
    merged = {**getattr(_override_state, "values", {}), **values}
    for pass_name in Pass:
        record(pass_name, merged)  # raises on a bad value now, not inside a later call
    previous = getattr(_override_state, "values", {})
    _override_state.values = merged
    try:
        yield
    finally:
        _override_state.values = previous


def _overrides() -> dict:
    return getattr(_override_state, "values", {})


def safe_default(pass_name: Pass) -> PassParams:
    """The pass's record with nothing but its defaults: small register tiles, no variant kernels."""
    return RECORDS[Pass(pass_name)]()


def override_key() -> tuple:
    """What, besides the device and the tuned cache, the parameters lookup returns depends on: this thread's
    overrides and a class forced by CLCONV_DEVICE_CLASS (memoised launch plans are keyed by it)."""
    key = tuple(sorted(_overrides().items()))
    forced = os.environ.get(DEVICE_CLASS_ENV)
    return (*key, (DEVICE_CLASS_ENV, forced)) if forced else key


def is_overridden() -> bool:
    return bool(_overrides())


def _tuned(device, pass_name: Pass, shape_key: tuple) -> PassParams | None:
    """The tuned cache's record for the pass and shape, None where it has none (or one this release cannot
    read)."""
    entry = tuning_cache.lookup(device, str(pass_name), shape_key)
    if not entry:
        return None
    try:
        return record(pass_name, entry)
    except (TypeError, ValueError):
        return None


def has_tuned(device, pass_name: Pass, shape_key: tuple) -> bool:
    return _tuned(device, pass_name, shape_key) is not None


def provenance(cls: str) -> str:
    """Where a device class's built-in row comes from (one line), e.g. provenance(device.device_class)."""
    if cls not in PROVENANCE:
        raise ValueError(f"unknown device class {cls!r}; valid classes: {', '.join(DEVICE_CLASSES)}")
    return PROVENANCE[cls]


def _row(device, pass_name: Pass, deep: bool = False, strided: bool = False) -> dict:
    entry = BUILTIN.get(device.device_class, {})
    name = str(pass_name)
    return {**entry.get("*", {}), **entry.get(name, {}), **(entry.get(name + "_deep", {}) if deep else {}),
            **(entry.get(name + "_strided", {}) if strided else {}),
            **(entry.get(name + "_deep_strided", {}) if deep and strided else {})}


def builtin(device, pass_name: Pass, deep: bool = False, strided: bool = False) -> PassParams:
    """The built-in record of a pass for the device's class; deep: a reduction deep enough to read the
    staged input (C_in_g x K >= STAGE_MIN), which adds the row's "<pass>_deep" fields; strided: a stride
    above 1, which adds its "<pass>_strided" fields (after the deep ones), and both its "<pass>_deep_strided"
    fields (last)."""
    return record(pass_name, _row(device, pass_name, deep, strided))


def lookup(device, pass_name: Pass, shape_key: tuple, depth: int = 0, stride: int = 1) -> PassParams:
    """The pass's record on one device before fitting: the first layer that has an entry wins.
    depth: C_in_g x K of the shape, which picks the row's deep fields where they apply; stride: the
    shape's, which picks its strided fields above 1."""
    tuned = _tuned(device, pass_name, shape_key)
    if tuned is not None:
        return record(pass_name, {**asdict(tuned), **_overrides()}) if _overrides() else tuned
    values = {**_row(device, pass_name), **_overrides()}
    stage_min = values.get("STAGE_MIN")
    deep = stage_min is not None and stage_min <= depth
    if deep or stride > 1:
        values = {**_row(device, pass_name, deep=deep, strided=stride > 1), **_overrides()}
    return record(pass_name, values)


def _check_rows() -> None:
    """Every built-in row names fields its passes have: a typo fails at import, not in a user's call."""
    shared = set.intersection(*(set(field_names(p)) for p in Pass))
    for cls, row in BUILTIN.items():
        for name, values in row.items():
            own = shared if name == "*" else set(field_names(Pass(name.removesuffix("_strided").removesuffix("_deep"))))
            stray = set(values) - own
            if stray:
                raise TypeError(f"row {cls!r} entry {name!r}: {', '.join(sorted(stray))} not parameters of that pass")
        for pass_name in Pass:
            builtin_values = {**row.get("*", {}), **row.get(str(pass_name), {})}
            record(pass_name, builtin_values)


_check_rows()
