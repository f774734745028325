"""pyopencl views as inputs and gradients: slices at an offset into their buffer and strided slices, as
torch takes them; checked against the float64 numpy reference of the viewed data."""

import numpy as np
import pytest

import clconv
from conftest import assert_close
from reference import conv1d_input_grad_ref, conv1d_ref, conv1d_weight_grad_ref

VIEWS = {
    "batch-offset": np.s_[8:12],                  # a mini-batch of a device-resident data set
    "strided-length": np.s_[:, :, ::2],
    "offset-and-strided": np.s_[2:5, :, 3:27:3],
    "reversed-batch": np.s_[::-3],
    "unbatched-offset": np.s_[5],
}
DTYPES = {"f32": np.float32, "f16": np.float16}


@pytest.mark.parametrize("view", VIEWS, ids=list(VIEWS))
@pytest.mark.parametrize("dtype", DTYPES, ids=list(DTYPES))
def test_forward_and_gradients_of_views(device, rng, view, dtype):
    dtype = DTYPES[dtype]
    x = rng.standard_normal((12, 4, 30)).astype(dtype)
    m = clconv.Conv1d(4, 6, 3, padding=1, padding_mode="reflect", device=device, dtype=dtype)
    w, b = m.weight.numpy().astype(np.float64), m.bias.numpy().astype(np.float64)
    x_view = device.to_device(x)[VIEWS[view]]
    expected_x = x[VIEWS[view]].astype(np.float64)

    y = m(x_view)
    assert isinstance(y, clconv.runtime.cla.Array)
    assert_close(y.get(), conv1d_ref(expected_x, w, b, padding=1, padding_mode="reflect"), dtype, "forward")

    # The output gradient is a view too: every other position of a wider array.
    dy = rng.standard_normal((*y.shape[:-1], 2 * y.shape[-1])).astype(dtype)
    dy_view = device.to_device(dy)[..., ::2]
    dx = m.backward(dy_view)
    dy_used = dy[..., ::2].astype(np.float64)
    assert_close(dx.get(), conv1d_input_grad_ref(expected_x.shape, w, dy_used, padding=1, padding_mode="reflect"),
                 dtype, "input gradient")
    assert_close(m.weight.grad.get(), conv1d_weight_grad_ref(expected_x, w.shape, dy_used, padding=1,
                                                             padding_mode="reflect"), dtype, "weight gradient")


def test_grad_functions_take_views(device, rng):
    x = rng.standard_normal((6, 3, 20)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((6, 5, 36)).astype(np.float32)
    x_dev, w_dev, dy_dev = device.to_device(x), device.to_device(w), device.to_device(dy)
    x_view, dy_view = x_dev[2:4], dy_dev[2:4, :, ::2]
    dw = clconv.grad.conv1d_weight(x_view, w.shape, dy_view)
    dx = clconv.grad.conv1d_input(x_view.shape, w_dev[1:][::-1], dy_view[:, 1:])
    assert_close(dw.get(), conv1d_weight_grad_ref(x[2:4], w.shape, dy[2:4, :, ::2]), np.float32, "weight gradient")
    assert_close(dx.get(), conv1d_input_grad_ref(x[2:4].shape, w[1:][::-1], dy[2:4, 1:, ::2]), np.float32,
                 "input gradient")
    assert_close(clconv.conv1d(x_view, w_dev[1:3]).get(), conv1d_ref(x[2:4], w[1:3]), np.float32, "forward")


def test_views_leave_the_original_untouched(device, rng):
    x = rng.standard_normal((4, 2, 10)).astype(np.float32)
    x_dev = device.to_device(x)
    clconv.conv1d(x_dev[1:3, :, ::3], device.to_device(np.ones((1, 2, 2), np.float32)))
    np.testing.assert_array_equal(x_dev.get(), x)


def test_torch_tensor_gets_a_hint(device):
    torch = pytest.importorskip("torch")
    m = clconv.Conv1d(2, 3, 3, device=device)
    with pytest.raises(TypeError, match=r"not Tensor; pass tensor.numpy\(\).*clconv.torch"):
        m(torch.zeros(1, 2, 8))
    with pytest.raises(TypeError, match=r"argument 'weight'.*not Tensor; pass tensor.numpy\(\)"):
        clconv.conv1d(np.zeros((1, 2, 8), np.float32), torch.zeros(3, 2, 3))
