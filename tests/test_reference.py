"""Self-tests of the float64 numpy reference in reference.py (no library needed)."""

import numpy as np
import pytest

from reference import (
    conv1d_bias_grad_ref,
    conv1d_input_grad_ref,
    conv1d_ref,
    conv1d_weight_grad_ref,
    conv_transpose1d_ref,
    pad_index_map,
    resolve_padding,
)

X3 = np.array([[[1.0, 2.0, 3.0]]])
W2 = np.array([[[1.0, 10.0]]])
B = np.array([0.5])


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        (dict(), [21.5, 32.5]),
        (dict(padding=1), [10.5, 21.5, 32.5, 3.5]),
        (dict(padding=1, padding_mode="reflect"), [12.5, 21.5, 32.5, 23.5]),    # [2,1,2,3,2]
        (dict(padding=1, padding_mode="replicate"), [11.5, 21.5, 32.5, 33.5]),  # [1,1,2,3,3]
        (dict(padding=1, padding_mode="circular"), [13.5, 21.5, 32.5, 13.5]),   # [3,1,2,3,1]
        (dict(stride=2), [21.5]),
        (dict(dilation=2), [31.5]),
        (dict(padding="same"), [21.5, 32.5, 3.5]),  # total 1 -> left 0, right 1
        (dict(padding="valid"), [21.5, 32.5]),
    ],
    ids=["plain", "zeros", "reflect", "replicate", "circular", "stride", "dilation", "same", "valid"],
)
def test_hand_computed(kwargs, expected):
    out = conv1d_ref(X3, W2, B, **kwargs)
    np.testing.assert_array_equal(out, np.array([[expected]]))
    # unbatched gives the same without the batch axis
    np.testing.assert_array_equal(conv1d_ref(X3[0], W2, B, **kwargs), np.array([expected]))


def test_index_maps():
    assert pad_index_map(3, 2, 2, "reflect").tolist() == [2, 1, 0, 1, 2, 1, 0]
    assert pad_index_map(3, 2, 2, "replicate").tolist() == [0, 0, 0, 1, 2, 2, 2]
    assert pad_index_map(3, 3, 3, "circular").tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]
    assert pad_index_map(3, 1, 2, "zeros").tolist() == [-1, 0, 1, 2, -1, -1]
    with pytest.raises(ValueError):
        pad_index_map(3, 3, 0, "reflect")
    with pytest.raises(ValueError):
        pad_index_map(3, 4, 0, "circular")


def test_same_padding_split():
    assert resolve_padding("same", 3, 1) == (1, 1)
    assert resolve_padding("same", 4, 1) == (1, 2)
    assert resolve_padding("same", 4, 3) == (4, 5)
    assert resolve_padding("valid", 7, 2) == (0, 0)
    assert resolve_padding((2,), 3, 1) == (2, 2)


def test_groups_are_independent():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 11))
    w = rng.standard_normal((6, 2, 3))
    out = conv1d_ref(x, w, groups=2)
    np.testing.assert_allclose(out[:, :3], conv1d_ref(x[:, :2], w[:3]), rtol=1e-13)
    np.testing.assert_allclose(out[:, 3:], conv1d_ref(x[:, 2:], w[3:]), rtol=1e-13)


GRAD_CONFIGS = [
    # (N, C_in, C_out, K, L, stride, padding, dilation, groups, padding_mode)
    (2, 3, 4, 3, 11, 1, 1, 1, 1, "zeros"),
    (2, 4, 6, 4, 17, 3, 2, 2, 2, "zeros"),
    (1, 4, 8, 5, 16, 2, 0, 1, 4, "zeros"),
    (2, 3, 5, 3, 9, 1, 2, 1, 1, "reflect"),
    (2, 3, 5, 4, 9, 2, 3, 2, 1, "replicate"),
    (2, 2, 4, 3, 5, 1, 5, 1, 2, "circular"),
    (1, 2, 2, 4, 10, 1, "same", 3, 1, "reflect"),
    (1, 2, 3, 2, 7, 1, "same", 1, 1, "circular"),
]


def _grad_id(c):
    return "-".join(str(v) for v in c)


@pytest.mark.parametrize("cfg", GRAD_CONFIGS, ids=[_grad_id(c) for c in GRAD_CONFIGS])
def test_adjoint_identities(cfg):
    n, ci, co, k, length, s, p, d, g, mode = cfg
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, ci, length))
    w = rng.standard_normal((co, ci // g, k))
    y = conv1d_ref(x, w, None, s, p, d, g, mode)
    gy = rng.standard_normal(y.shape)
    lhs = np.sum(y * gy)
    gx = conv1d_input_grad_ref(x.shape, w, gy, s, p, d, g, mode)
    gw = conv1d_weight_grad_ref(x, w.shape, gy, s, p, d, g, mode)
    assert gx.shape == x.shape and gw.shape == w.shape
    # the convolution is linear in x and in w separately
    np.testing.assert_allclose(np.sum(x * gx), lhs, rtol=1e-10)
    np.testing.assert_allclose(np.sum(w * gw), lhs, rtol=1e-10)


def test_input_grad_is_conv_transpose():
    rng = np.random.default_rng(2)
    x_shape = (2, 4, 19)
    w = rng.standard_normal((6, 2, 3))
    s, p, d, g = 3, 1, 2, 2
    l_out = (19 + 2 * p - d * 2 - 1) // s + 1
    gy = rng.standard_normal((2, 6, l_out))
    gx = conv1d_input_grad_ref(x_shape, w, gy, s, p, d, g)
    out_pad = 19 - ((l_out - 1) * s - 2 * p + d * 2 + 1)
    np.testing.assert_allclose(conv_transpose1d_ref(gy, w, None, s, p, out_pad, g, d), gx, rtol=1e-12)


TORCH_CONFIGS = [
    # (N, C_in, C_out, K, L, stride, padding, dilation, groups, bias, padding_mode)
    (2, 3, 5, 3, 20, 1, 0, 1, 1, True, "zeros"),
    (2, 4, 6, 5, 23, 2, 3, 2, 2, True, "zeros"),
    (1, 4, 8, 4, 16, 1, "same", 3, 4, False, "zeros"),
    (3, 2, 3, 1, 7, 4, 2, 1, 1, True, "zeros"),
    (2, 3, 5, 3, 9, 1, 2, 1, 1, True, "reflect"),
    (2, 3, 5, 4, 9, 2, 3, 2, 1, True, "replicate"),
    (2, 2, 4, 3, 5, 1, 5, 1, 2, True, "circular"),
    (1, 2, 2, 4, 10, 1, "same", 3, 1, True, "reflect"),
    (1, 2, 2, 6, 12, 1, "same", 1, 1, True, "circular"),
    (2, 6, 6, 2, 13, 1, "valid", 4, 3, True, "replicate"),
]


@pytest.mark.parametrize("cfg", TORCH_CONFIGS, ids=[_grad_id(c) for c in TORCH_CONFIGS])
def test_against_torch(cfg):
    torch = pytest.importorskip("torch")
    n, ci, co, k, length, s, p, d, g, bias, mode = cfg
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, ci, length))
    m = torch.nn.Conv1d(ci, co, k, stride=s, padding=p, dilation=d, groups=g, bias=bias,
                        padding_mode=mode, dtype=torch.float64)
    w = m.weight.detach().numpy().copy()
    b = m.bias.detach().numpy().copy() if bias else None
    xt = torch.from_numpy(x).requires_grad_(True)
    yt = m(xt)
    ref = conv1d_ref(x, w, b, s, p, d, g, mode)
    np.testing.assert_allclose(ref, yt.detach().numpy(), rtol=1e-11, atol=1e-12)
    gy = rng.standard_normal(ref.shape)
    yt.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(conv1d_input_grad_ref(x.shape, w, gy, s, p, d, g, mode),
                               xt.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(conv1d_weight_grad_ref(x, w.shape, gy, s, p, d, g, mode),
                               m.weight.grad.numpy(), rtol=1e-11, atol=1e-12)
    if bias:
        np.testing.assert_allclose(conv1d_bias_grad_ref(gy), m.bias.grad.numpy(), rtol=1e-11)


@pytest.mark.parametrize("cfg", [(2, 4, 6, 3, 9, 2, 1, 1, 1, 2), (1, 4, 4, 4, 7, 3, 2, 2, 2, 1),
                                 (2, 2, 3, 5, 6, 1, 0, 0, 1, 3)])
def test_conv_transpose_against_torch(cfg):
    torch = pytest.importorskip("torch")
    n, ci, co, k, length, s, p, op, g, d = cfg
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, ci, length))
    w = rng.standard_normal((ci, co // g, k))
    b = rng.standard_normal(co)
    ref = conv_transpose1d_ref(x, w, b, s, p, op, g, d)
    out = torch.nn.functional.conv_transpose1d(torch.from_numpy(x), torch.from_numpy(w),
                                               torch.from_numpy(b), s, p, op, g, d)
    np.testing.assert_allclose(ref, out.numpy(), rtol=1e-11, atol=1e-12)


def test_torch_grad_helpers_match():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 21))
    w = rng.standard_normal((6, 2, 4))
    s, p, d, g = 3, 2, 2, 2
    gy = rng.standard_normal(conv1d_ref(x, w, None, s, p, d, g).shape)
    gi = torch.nn.grad.conv1d_input(x.shape, torch.from_numpy(w), torch.from_numpy(gy), s, p, d, g)
    gw = torch.nn.grad.conv1d_weight(torch.from_numpy(x), w.shape, torch.from_numpy(gy), s, p, d, g)
    np.testing.assert_allclose(conv1d_input_grad_ref(x.shape, w, gy, s, p, d, g), gi.numpy(), rtol=1e-11)
    np.testing.assert_allclose(conv1d_weight_grad_ref(x, w.shape, gy, s, p, d, g), gw.numpy(), rtol=1e-11)
