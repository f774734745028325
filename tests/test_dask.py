"""clconv.dask on a LocalCluster of two worker processes, against the float64 reference.

The cluster starts once for the module. Lengths are chunked so that chunk boundaries fall inside and
across halos (chunks shorter than the halo, a chunk of one sample), and the batch is chunked too.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

import clconv  # noqa: E402
import clconv.dask  # noqa: E402
from conftest import assert_close  # noqa: E402
from dask.task_spec import DataNode  # noqa: E402
from reference import conv1d_ref, resolve_padding  # noqa: E402

# (id, (N, C_in, L), batch chunks, length chunks, C_out, K, conv1d arguments)
CASES = [
    ("strided", (3, 3, 100), (2, 1), 16, 4, 5, dict(stride=3, padding=2)),
    ("dilated", (2, 2, 90), (2,), 5, 3, 3, dict(dilation=4, padding=1)),
    ("grouped", (2, 4, 80), (1, 1), (30, 7, 1, 42), 6, 3, dict(groups=2, padding=1)),
    ("reflect", (2, 3, 70), (2,), (4, 30, 33, 3), 2, 5, dict(padding=3, padding_mode="reflect")),
    ("circular", (2, 3, 70), (1, 1), (3, 30, 34, 3), 2, 5, dict(stride=2, padding=4, padding_mode="circular")),
    ("same-replicate", (2, 2, 64), (2,), 10, 3, 6, dict(padding="same", dilation=2, padding_mode="replicate")),
    ("k251-same", (1, 1, 700), (1,), (100, 1, 2, 297, 300), 2, 251, dict(padding="same")),
]


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def make_case(shape, batch_chunks, length_chunks, out_channels, kernel_size, groups, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((out_channels, shape[1] // groups, kernel_size)).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    return x, w, b, da.from_array(x, chunks=(batch_chunks, shape[1], length_chunks))


def case(name):
    """The inputs of a case of CASES: later tests reuse its layer and chunks, so its kernels are built."""
    _, shape, batch_chunks, length_chunks, out_channels, kernel_size, kwargs = next(c for c in CASES if c[0] == name)
    return (*make_case(shape, batch_chunks, length_chunks, out_channels, kernel_size, kwargs.get("groups", 1),
                       seed=shape[2] + kernel_size), kwargs)


def reference(x, w, b, kwargs):
    return conv1d_ref(x, w, b, kwargs.get("stride", 1), kwargs.get("padding", 0), kwargs.get("dilation", 1),
                      kwargs.get("groups", 1), kwargs.get("padding_mode", "zeros"))


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_layers_match_the_reference(client, name):
    x, w, b, xd, kwargs = case(name)
    y = clconv.dask.conv1d(xd, w, b, **kwargs)
    ref = reference(x, w, b, kwargs)
    assert isinstance(y, da.Array) and y.shape == ref.shape and y.dtype == np.float32
    assert y.chunks[0] == xd.chunks[0] and len(y.chunks[2]) > 1, "chunked as the input along batch and length"
    # Each output block starts with the first output whose window starts in its input chunk.
    stride = kwargs.get("stride", 1)
    pad_left = resolve_padding(kwargs.get("padding", 0), w.shape[2], kwargs.get("dilation", 1))[0]
    chunk_starts = set(np.cumsum((0,) + xd.chunks[2]).tolist())
    for start in np.cumsum(y.chunks[2])[:-1]:
        first = start * stride - pad_left
        assert any(first - stride < a <= first for a in chunk_starts), f"output block at {start} not aligned"
    assert_close(y.compute(), ref, np.float32, "dask conv1d")


def test_apply_matches_the_module_on_one_device(client):
    x, w, b, xd, kwargs = case("reflect")
    m = clconv.Conv1d(3, 2, 5, **kwargs)
    m.load_state_dict({"weight": w, "bias": b})
    assert_close(clconv.dask.apply(m, xd).compute(), m(x), np.float32, "apply against Conv1d on one device")


def test_weights_are_one_key_of_the_graph():
    x = da.zeros((4, 8, 4000), dtype=np.float32, chunks=(1, 8, 250))
    w = np.ones((16, 8, 63), np.float32)
    y = clconv.dask.conv1d(x, w, padding=31)
    layer = y.dask.layers[y.name]
    holding = [key for key, node in layer.items() if isinstance(node, DataNode)]
    assert len(holding) == 1
    tasks = [node for key, node in layer.items() if key not in holding]
    assert len(tasks) > 16
    assert max(len(pickle.dumps(task)) for task in tasks) < w.nbytes // 8, "a task carries the weights"


def programs_built(client):
    return client.run(lambda: sum(len(d._programs) for d in clconv.devices()))


def test_kernels_are_built_once_per_worker(client):
    x, w, b, xd, kwargs = case("strided")
    first = clconv.dask.conv1d(xd, w, b, **kwargs).compute()
    built = programs_built(client)
    second = clconv.dask.conv1d(xd, w, b, **kwargs).compute()
    assert programs_built(client) == built
    np.testing.assert_array_equal(first, second)


class FailFirstAttempt(distributed.WorkerPlugin):
    """Makes the first block task that any worker runs fail (a flag file marks that it did)."""

    def __init__(self, flag):
        self.flag = flag

    def setup(self, worker):
        import clconv.scale.dask as cd

        original, flag = cd._conv_block, self.flag

        def failing_once(*args):
            try:
                os.close(os.open(flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return original(*args)
            raise OSError("worker lost its device")

        self.original = original
        cd._conv_block = failing_once

    def teardown(self, worker):
        import clconv.scale.dask as cd

        cd._conv_block = self.original


def test_a_failed_task_is_retried_and_the_output_is_exact(client, tmp_path):
    x, w, b, xd, kwargs = case("circular")
    expected = clconv.dask.conv1d(xd, w, b, **kwargs).compute()
    flag = str(tmp_path / "failed")
    client.register_plugin(FailFirstAttempt(flag), name="fail-first-attempt")
    try:
        y = client.compute(clconv.dask.conv1d(xd, w, b, **kwargs), retries=1).result()
    finally:
        client.unregister_worker_plugin("fail-first-attempt")
    assert os.path.exists(flag), "no task failed"  # so one failed, and its retry completed the output
    np.testing.assert_array_equal(y, expected)
    assert_close(y, reference(x, w, b, kwargs), np.float32, "retried conv1d")


def test_use_device_plugin(client):
    spec = client.run(lambda: clconv.get_device().spec)
    first = next(iter(spec.values()))
    client.register_plugin(clconv.dask.UseDevice(first), name="clconv-device")
    try:
        assert set(client.run(lambda: os.environ["CLCONV_DEVICE"]).values()) == {first}
        with pytest.raises(ValueError, match="no OpenCL device matches 'no-such-device'"):
            client.register_plugin(clconv.dask.UseDevice("no-such-device"), name="clconv-device")
    finally:
        client.run(lambda: os.environ.pop("CLCONV_DEVICE", None))
        client.unregister_worker_plugin("clconv-device")


def test_zarr_in_and_out(client, tmp_path):
    x, w, b, xd, kwargs = case("strided")
    xd.to_zarr(str(tmp_path / "in.zarr"))
    y = clconv.dask.conv1d(da.from_zarr(str(tmp_path / "in.zarr")), w, b, **kwargs)
    y.rechunk((1, 4, 6)).to_zarr(str(tmp_path / "out.zarr"))
    assert_close(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[...], reference(x, w, b, kwargs),
                 np.float32, "zarr round trip")


def test_bad_arguments():
    x = da.zeros((2, 3, 10), dtype=np.float32, chunks=(1, 3, 5))
    w = np.zeros((4, 3, 3), np.float32)
    with pytest.raises(TypeError, match="takes a dask.array.Array"):
        clconv.dask.conv1d(np.zeros((2, 3, 10), np.float32), w)
    with pytest.raises(ValueError, match=r"shape \(N, C, L\)"):
        clconv.dask.conv1d(x[0], w)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        clconv.dask.conv1d(x, w, padding_mode="mirror")
    with pytest.raises(RuntimeError, match="Padding size should be less than the corresponding input dimension"):
        clconv.dask.conv1d(x, w, padding=10, padding_mode="reflect")
    with pytest.raises(RuntimeError, match="should be the same"):
        clconv.dask.conv1d(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="takes a clconv.Conv1d"):
        clconv.dask.apply(clconv.ConvTranspose1d(3, 4, 3), x)


def test_import_clconv_leaves_dask_alone():
    code = "import sys, clconv; assert 'dask' not in sys.modules and 'distributed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
