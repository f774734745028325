"""Errors: torch's exception types and messages, and no pyopencl exception leaking out."""

import contextlib
import re

import numpy as np
import pyopencl as cl
import pytest

import clconv


@contextlib.contextmanager
def raises(exc_type, match=None):
    """pytest.raises plus: the exception is not a pyopencl error type."""
    with pytest.raises(exc_type, match=match) as info:
        yield info
    assert not isinstance(info.value, cl.Error), f"pyopencl exception leaked: {info.value!r}"
    assert type(info.value).__module__.split(".")[0] != "pyopencl", f"pyopencl exception leaked: {info.value!r}"


def test_pyopencl_errors_are_not_builtin_errors():
    # the reason the helper above checks the type explicitly
    assert not issubclass(cl.Error, (RuntimeError, ValueError, TypeError))


# ---------------------------------------------------------------------------
# constructor ValueErrors, in torch's order: each case also violates every later check
# ---------------------------------------------------------------------------

CTOR_CASES = [
    ("groups-zero", dict(in_channels=5, out_channels=5, kernel_size=3, groups=0, padding="x", padding_mode="y"),
     r"^groups must be a positive integer$"),
    ("groups-negative", dict(in_channels=4, out_channels=4, kernel_size=3, groups=-2),
     r"^groups must be a positive integer$"),
    ("in-divisible", dict(in_channels=5, out_channels=5, kernel_size=3, groups=2, padding="x", padding_mode="y"),
     r"^in_channels must be divisible by groups$"),
    ("out-divisible", dict(in_channels=4, out_channels=5, kernel_size=3, groups=2, padding="x", padding_mode="y"),
     r"^out_channels must be divisible by groups$"),
    ("padding-string", dict(in_channels=4, out_channels=4, kernel_size=3, stride=2, padding="x", padding_mode="y"),
     r"^Invalid padding string 'x', should be one of \{'(valid', 'same|same', 'valid)'\}$"),
    ("same-strided", dict(in_channels=4, out_channels=4, kernel_size=3, stride=2, padding="same", padding_mode="y"),
     r"^padding='same' is not supported for strided convolutions$"),
    ("same-strided-tuple", dict(in_channels=4, out_channels=4, kernel_size=3, stride=(3,), padding="same"),
     r"^padding='same' is not supported for strided convolutions$"),
    ("padding-mode", dict(in_channels=4, out_channels=4, kernel_size=3, padding_mode="y"),
     r"^padding_mode must be one of .*'zeros'.*, but got padding_mode='y'$"),
    ("padding-mode-case", dict(in_channels=4, out_channels=4, kernel_size=3, padding_mode="Zeros"),
     r"^padding_mode must be one of .*, but got padding_mode='Zeros'$"),
]


@pytest.mark.parametrize("kwargs, pattern", [c[1:] for c in CTOR_CASES], ids=[c[0] for c in CTOR_CASES])
def test_constructor_value_errors(kwargs, pattern):
    with raises(ValueError, match=pattern):
        clconv.Conv1d(**kwargs)


@pytest.mark.parametrize("kwargs, pattern", [c[1:] for c in CTOR_CASES], ids=[c[0] for c in CTOR_CASES])
def test_constructor_errors_match_torch(kwargs, pattern):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError) as t_info:
        torch.nn.Conv1d(**kwargs)
    with raises(ValueError) as c_info:
        clconv.Conv1d(**kwargs)
    # set repr order in the padding_mode / padding string messages is not fixed
    norm = lambda s: re.sub(r"[\{\[].*?[\}\]]", "{...}", str(s))  # noqa: E731
    assert norm(c_info.value) == norm(t_info.value)


def test_constructor_accepts_what_torch_checks_later():
    # torch only checks these in forward; construction must succeed
    clconv.Conv1d(4, 4, 3, padding=-1)
    clconv.Conv1d(4, 4, 3, stride=0)
    clconv.Conv1d(4, 4, 3, dilation=0)


# ---------------------------------------------------------------------------
# forward RuntimeErrors
# ---------------------------------------------------------------------------

@pytest.fixture
def m(device):
    return clconv.Conv1d(4, 6, 3, device=device)


def x(*shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


@pytest.mark.parametrize("shape", [(10,), (1, 1, 4, 10), (2, 4, 10, 1), ()], ids=str)
def test_wrong_rank(m, shape):
    dims = ", ".join(str(s) for s in shape)
    msg = f"Expected 2D (unbatched) or 3D (batched) input to conv1d, but got input of size: [{dims}]"
    with raises(RuntimeError, match="^" + re.escape(msg) + "$"):
        m(np.zeros(shape, dtype=np.float32))


def test_wrong_channels(m):
    msg = "Given groups=1, weight of size [6, 4, 3], expected input[2, 3, 10] to have 4 channels, but got 3 channels instead"
    with raises(RuntimeError, match="^" + re.escape(msg) + "$"):
        m(x(2, 3, 10))


def test_wrong_channels_unbatched(m):
    # torch reports the unbatched input with its implicit batch of one
    msg = "Given groups=1, weight of size [6, 4, 3], expected input[1, 3, 10] to have 4 channels, but got 3 channels instead"
    with raises(RuntimeError, match="^" + re.escape(msg) + "$"):
        m(x(3, 10))


def test_wrong_channels_grouped(device):
    m = clconv.Conv1d(8, 12, 3, groups=2, device=device)
    msg = "Given groups=2, weight of size [12, 4, 3], expected input[2, 6, 10] to have 8 channels, but got 6 channels instead"
    with raises(RuntimeError, match="^" + re.escape(msg) + "$"):
        m(x(2, 6, 10))


def test_zero_channels(m):
    with raises(RuntimeError, match=re.escape("to have 4 channels, but got 0 channels instead")):
        m(x(2, 0, 10))


@pytest.mark.parametrize(
    "ctor, length, padded, ksize",
    [
        (dict(kernel_size=3), 2, 2, 3),
        (dict(kernel_size=5, padding=1), 2, 4, 5),
        (dict(kernel_size=3, dilation=2), 4, 4, 5),
        (dict(kernel_size=5, padding=1, padding_mode="circular"), 2, 4, 5),
        (dict(kernel_size=5, padding=1, padding_mode="replicate"), 2, 4, 5),
        (dict(kernel_size=3), 0, 0, 3),
    ],
    ids=["plain", "padded", "dilated", "circular", "replicate", "empty-L"],
)
def test_input_shorter_than_kernel(device, ctor, length, padded, ksize):
    m = clconv.Conv1d(4, 6, device=device, **ctor)
    msg = (f"Calculated padded input size per channel: ({padded}). Kernel size: ({ksize}). "
           "Kernel size can't be greater than actual input size")
    with raises(RuntimeError, match="^" + re.escape(msg) + "$"):
        m(x(2, 4, length))
    with raises(RuntimeError, match="^" + re.escape(msg) + "$"):
        m(x(4, length))


# Rows of length 0 whose padding covers the kernel, torch's messages (ATen shows the 2-D view it
# convolves); a zero batch is fine.
EMPTY_ROW_CASES = [
    ("zeros", dict(padding=2), (2, 4, 0), "Only zero batch or zero channel inputs are supported, but got input "
                                          "shape: [2, 4, 1, 0]"),
    ("zeros-unbatched", dict(padding=2), (4, 0), "Only zero batch or zero channel inputs are supported, but got "
                                                 "input shape: [1, 4, 1, 0]"),
    ("reflect", dict(padding=2, padding_mode="reflect"), (2, 4, 0),
     "Expected 2D or 3D (batch mode) tensor with possibly 0 batch size and other non-zero dimensions for input, "
     "but got: [2, 4, 0]"),
    ("replicate-unbatched", dict(padding=1, padding_mode="replicate"), (4, 0),
     "Expected 2D or 3D (batch mode) tensor with possibly 0 batch size and other non-zero dimensions for input, "
     "but got: [4, 0]"),
    ("circular", dict(padding=2, padding_mode="circular"), (2, 4, 0), "Padding value causes wrapping around more "
                                                                      "than once."),
]


@pytest.mark.parametrize("ctor, shape, msg", [c[1:] for c in EMPTY_ROW_CASES], ids=[c[0] for c in EMPTY_ROW_CASES])
def test_empty_rows(device, ctor, shape, msg):
    m = clconv.Conv1d(4, 6, 3, device=device, **ctor)
    with raises(RuntimeError, match="^" + re.escape(msg) + "$"):
        m(x(*shape))


def test_empty_rows_in_functions(device):
    msg = "Only zero batch or zero channel inputs are supported, but got input shape: [2, 4, 1, 0]"
    w = np.zeros((6, 4, 3), np.float32)
    with raises(RuntimeError, match=re.escape(msg)):
        clconv.grad.conv1d_input((2, 4, 0), w, np.zeros((2, 6, 2), np.float32), padding=2)
    with raises(RuntimeError, match=re.escape(msg)):
        clconv.grad.conv1d_weight(np.zeros((2, 4, 0), np.float32), w.shape, np.zeros((2, 6, 2), np.float32), padding=2)
    with raises(RuntimeError, match=re.escape("got input shape: [2, 6, 1, 0]")):
        clconv.functional.conv_transpose1d(np.zeros((2, 6, 0), np.float32), w)
    assert clconv.Conv1d(4, 6, 3, padding=2, device=device)(x(0, 4, 0)).shape == (0, 6, 2)


def test_module_negative_padding(device):
    m = clconv.Conv1d(4, 6, 3, padding=-1, device=device)
    with raises(RuntimeError, match="^negative padding is not supported$"):
        m(x(2, 4, 10))


def test_module_zero_stride(device):
    m = clconv.Conv1d(4, 6, 3, stride=0, device=device)
    with raises(RuntimeError, match="^non-positive stride is not supported$"):
        m(x(2, 4, 10))


DILATION_MSG = r"^(dilation should be greater than zero.*|non-positive dilation is not supported)$"


def test_module_zero_dilation(device):
    m = clconv.Conv1d(4, 6, 3, dilation=0, device=device)
    with raises(RuntimeError, match=DILATION_MSG):
        m(x(2, 4, 10))


W = np.zeros((6, 4, 3), dtype=np.float32)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(padding=-1), r"^negative padding is not supported$"),
        (dict(padding=(-2,)), r"^negative padding is not supported$"),
        (dict(stride=0), r"^non-positive stride is not supported$"),
        (dict(stride=-1), r"^non-positive stride is not supported$"),
        (dict(dilation=0), DILATION_MSG),
        (dict(dilation=-1), DILATION_MSG),
        (dict(padding="same", stride=2), r"^padding='same' is not supported for strided convolutions$"),
    ],
    ids=["pad-1", "pad-tuple", "stride0", "stride-1", "dil0", "dil-1", "same-strided"],
)
def test_functional_argument_errors(kwargs, pattern):
    with raises(RuntimeError, match=pattern):
        clconv.conv1d(x(2, 4, 10), W, **kwargs)


def test_functional_kernel_size_zero():
    with raises(RuntimeError, match=r"^kernel size should be greater than zero"):
        clconv.conv1d(x(2, 4, 10), np.zeros((6, 4, 0), dtype=np.float32))


def test_functional_bad_padding_string():
    with raises((RuntimeError, ValueError), match=r"[Ii]nvalid padding string"):
        clconv.conv1d(x(2, 4, 10), W, padding="x")


def test_functional_wrong_rank_and_channels():
    with raises(RuntimeError, match=re.escape("but got input of size: [2, 4, 10, 1]")):
        clconv.conv1d(x(2, 4, 10, 1), W)
    with raises(RuntimeError, match=re.escape("expected input[2, 8, 10] to have 4 channels, but got 8 channels")):
        clconv.conv1d(x(2, 8, 10), W)


def test_functional_weight_not_divisible_by_groups():
    with raises(RuntimeError):
        clconv.conv1d(x(2, 4, 10), np.zeros((5, 2, 3), dtype=np.float32), groups=2)


def test_functional_bias_size_mismatch():
    with raises(RuntimeError):
        clconv.conv1d(x(2, 4, 10), W, np.zeros(5, dtype=np.float32))


# dtype mismatches ---------------------------------------------------------

def test_dtype_mismatch_double_into_float(m):
    with raises(RuntimeError, match=r"^Input type \(double\) and .* type \(float\) should be the same"):
        m(x(2, 4, 10, dtype=np.float64))


def test_dtype_mismatch_half_into_float(m):
    with raises(RuntimeError, match=r"^Input type \(\S*[Hh]alf\) and .* type \(float\) should be the same"):
        m(x(2, 4, 10, dtype=np.float16))


def test_dtype_mismatch_float_into_double(fp64_device):
    m = clconv.Conv1d(4, 6, 3, device=fp64_device, dtype=np.float64)
    with raises(RuntimeError, match=r"^Input type \(float\) and .* type \(double\) should be the same"):
        m(x(2, 4, 10))


def test_dtype_mismatch_without_bias(device):
    m = clconv.Conv1d(4, 6, 3, bias=False, device=device)
    with raises(RuntimeError, match=r"^(Input type \(double\) and .* type \(float\) should be the same"
                                    r"|expected scalar type Double but found Float)"):
        m(x(2, 4, 10, dtype=np.float64))


def test_dtype_mismatch_functional():
    with raises(RuntimeError, match=r"^Input type \(double\) and .* type \(float\) should be the same"):
        clconv.conv1d(x(2, 4, 10, dtype=np.float64), W, np.zeros(6, dtype=np.float32))


def test_integer_input_rejected(m):
    with raises((RuntimeError, TypeError)):
        m(np.zeros((2, 4, 10), dtype=np.int64))


def test_dtype_mismatch_message_matches_torch(m):
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError) as t_info:
        torch.nn.Conv1d(4, 6, 3)(torch.zeros(2, 4, 10, dtype=torch.float64))
    with raises(RuntimeError) as c_info:
        m(x(2, 4, 10, dtype=np.float64))
    assert str(c_info.value).startswith(str(t_info.value))


# padding-mode limits ------------------------------------------------------

@pytest.mark.parametrize("pad, length", [(3, 3), (4, 3), (1, 1)])
def test_reflect_padding_not_smaller_than_input(device, pad, length):
    m = clconv.Conv1d(4, 4, 3, padding=pad, padding_mode="reflect", device=device)
    with raises(RuntimeError, match="Padding size should be less than the corresponding input dimension"):
        m(x(1, 4, length))


def test_reflect_same_padding_too_large(device):
    m = clconv.Conv1d(4, 4, 9, padding="same", padding_mode="reflect", device=device)
    with raises(RuntimeError, match="Padding size should be less than the corresponding input dimension"):
        m(x(1, 4, 4))


@pytest.mark.parametrize("pad, length", [(4, 3), (3, 2)])
def test_circular_padding_wraps_more_than_once(device, pad, length):
    m = clconv.Conv1d(4, 4, 3, padding=pad, padding_mode="circular", device=device)
    with raises(RuntimeError, match=r"^Padding value causes wrapping around more than once"):
        m(x(1, 4, length))


def test_padding_mode_limits_are_inclusive_where_torch_allows(device):
    # pad == L is fine for circular, pad == L-1 for reflect, anything for replicate
    assert clconv.Conv1d(4, 4, 3, padding=3, padding_mode="circular", device=device)(x(1, 4, 3)).shape == (1, 4, 7)
    assert clconv.Conv1d(4, 4, 3, padding=2, padding_mode="reflect", device=device)(x(1, 4, 3)).shape == (1, 4, 5)
    assert clconv.Conv1d(4, 4, 3, padding=3, padding_mode="replicate", device=device)(x(1, 4, 1)).shape == (1, 4, 5)


# non-array inputs -----------------------------------------------------------

@pytest.mark.parametrize("bad", [None, "abc", object(), {"a": 1}, 3.0], ids=["None", "str", "object", "dict", "float"])
def test_non_array_input(m, bad):
    with raises(TypeError):
        m(bad)


def test_non_array_input_functional():
    with raises(TypeError):
        clconv.conv1d(None, W)
    with raises(TypeError):
        clconv.conv1d(x(2, 4, 10), "weight")


def test_device_array_from_other_context(device):
    import pyopencl.array as cla

    m = clconv.Conv1d(4, 6, 3, device=device)
    ctx = cl.Context([m.weight.data.queue.device])  # same device, different context
    queue = cl.CommandQueue(ctx)
    xd = cla.to_device(queue, x(2, 4, 10))
    with raises((RuntimeError, ValueError, TypeError)):
        m(xd)


# devices --------------------------------------------------------------------

@pytest.mark.parametrize("spec", [999, -999, "no-such-opencl-device-xyz", "99:0", "0:99", "1:2:3"],
                         ids=["idx999", "idx-999", "name", "plat99", "dev99", "triple"])
def test_bad_device_spec(spec):
    with raises((ValueError, RuntimeError)):
        clconv.get_device(spec)


def test_bad_device_spec_in_module():
    with raises((ValueError, RuntimeError)):
        clconv.Conv1d(4, 4, 3, device="no-such-opencl-device-xyz")


def test_bad_device_spec_type():
    with raises((TypeError, ValueError)):
        clconv.get_device(3.5)


def test_bad_dtype():
    with raises((TypeError, ValueError)):
        clconv.Conv1d(4, 4, 3, dtype=np.int32)
