"""Module.to(device, dtype), .float(), .double(), .half(): parameters and gradients move and cast, as torch's."""

import numpy as np
import pytest

import clconv
from conftest import assert_close
from reference import conv1d_ref


@pytest.mark.parametrize("cast", ["half", "double", "to-positional", "to-keyword"])
def test_cast_moves_parameters_and_gradients(device, rng, cast):
    if cast in ("double", "to-positional") and not device.has_fp64:
        pytest.skip(f"{device.name} has no fp64")
    m = clconv.Conv1d(3, 4, 3, padding=1, device=device)
    x = rng.standard_normal((2, 3, 10)).astype(np.float32)
    m(x)
    m.backward(np.ones((2, 4, 10), np.float32))
    weight, grad = m.weight.numpy(), m.weight.grad.get()
    target = {"half": np.float16, "double": np.float64, "to-positional": np.float64, "to-keyword": np.float16}[cast]
    result = {"half": m.half, "double": m.double, "to-positional": lambda: m.to(np.float64),
              "to-keyword": lambda: m.to(device=device.index, dtype="float16")}[cast]()
    assert result is m and m.dtype == target
    for param in m.parameters():
        assert param.dtype == target and param.grad.dtype == target
        assert param.data.context == device.context
    np.testing.assert_array_equal(m.weight.numpy(), weight.astype(target))
    np.testing.assert_array_equal(m.weight.grad.get(), grad.astype(target))
    with pytest.raises(RuntimeError, match="before any forward"):
        m.backward(np.ones((2, 4, 10), target))  # the old forward's arrays went with the old dtype
    xt = x.astype(target)
    assert_close(m(xt), conv1d_ref(xt.astype(np.float64), m.weight.numpy().astype(np.float64),
                                   m.bias.numpy().astype(np.float64), padding=1), target, "forward after the cast")
    assert m.float() is m and m.weight.dtype == np.float32


def test_to_keeps_what_is_not_named(device):
    m = clconv.ConvTranspose1d(2, 3, 3, device=device, bias=False)
    weight = m.weight.data
    assert m.to() is m and m.weight.data is weight
    assert m.to(device=device).weight.data is weight


def test_to_rejects_other_dtypes(device):
    m = clconv.Conv1d(2, 3, 3, device=device)
    with pytest.raises(TypeError, match="float16, float32 or float64"):
        m.to(dtype=np.int32)
