"""Float64 numpy reference for 1-D convolution (forward and gradients).

Written directly from the documented formula

    out[n, o, t] = bias[o] + sum_{c, k} w[o, c, k] * xp[n, g*Cg + c, t*s + k*d]

where ``g = o // (C_out/groups)``, ``Cg = C_in/groups`` and ``xp`` is the input
padded on the left/right.  Padding is done with explicit index maps so the
semantics of every padding mode are visible here:

* zeros:     out-of-range positions read 0
* reflect:   mirror without repeating the edge   (x[-1] -> x[1]; needs pad < L)
* replicate: clamp to the nearest edge
* circular:  wrap around modulo L                (needs pad <= L)

Shares no code with the library.  Everything is computed in float64.
"""

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _single(v, name):
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f"{name} must have one element, got {v!r}")
        v = v[0]
    return int(v)


def resolve_padding(padding, kernel_size, dilation):
    """Return (left, right) for an int, a 1-tuple, a (left, right) pair, 'same' or 'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            total = dilation * (kernel_size - 1)
            left = total // 2
            return left, total - left
        raise ValueError(f"bad padding string {padding!r}")
    if isinstance(padding, (tuple, list)):
        if len(padding) == 1:
            return int(padding[0]), int(padding[0])
        if len(padding) == 2:
            return int(padding[0]), int(padding[1])
        raise ValueError(f"bad padding {padding!r}")
    return int(padding), int(padding)


def pad_index_map(length, left, right, mode):
    """Indices into the unpadded axis for padded positions -left .. length+right-1.

    Entries equal to -1 mean "reads zero" (only for mode 'zeros').
    """
    if mode not in PADDING_MODES:
        raise ValueError(f"bad padding_mode {mode!r}")
    j = np.arange(-left, length + right)
    if mode == "zeros":
        return np.where((j >= 0) & (j < length), j, -1)
    if mode == "replicate":
        return np.clip(j, 0, length - 1)
    if mode == "reflect":
        if max(left, right) >= length:
            raise ValueError("reflect padding must be smaller than the input length")
        idx = j.copy()
        idx = np.where(idx < 0, -idx, idx)                      # x[-i] -> x[i]
        idx = np.where(idx > length - 1, 2 * (length - 1) - idx, idx)  # x[L-1+i] -> x[L-1-i]
        return idx
    # circular
    if max(left, right) > length:
        raise ValueError("circular padding may wrap around at most once")
    return np.mod(j, length)


def pad_ref(x, left, right, mode):
    """Pad the last axis of x (float64) according to the index map."""
    x = np.asarray(x, dtype=np.float64)
    idx = pad_index_map(x.shape[-1], left, right, mode)
    out = np.zeros(x.shape[:-1] + (idx.size,), dtype=np.float64)
    valid = idx >= 0
    out[..., valid] = x[..., idx[valid]]
    return out


def output_length(length, left, right, kernel_size, stride, dilation):
    return (length + left + right - dilation * (kernel_size - 1) - 1) // stride + 1


def _batched(x):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return x[None], True
    if x.ndim != 3:
        raise ValueError(f"expected 2-D or 3-D input, got shape {x.shape}")
    return x, False


def conv1d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """Reference forward.  x: (N, C_in, L) or (C_in, L); w: (C_out, C_in/groups, K)."""
    x, unbatched = _batched(x)
    w = np.asarray(w, dtype=np.float64)
    stride, dilation = _single(stride, "stride"), _single(dilation, "dilation")
    n, c_in, length = x.shape
    c_out, cg, k_size = w.shape
    assert c_in == cg * groups and c_out % groups == 0
    og = c_out // groups
    left, right = resolve_padding(padding, k_size, dilation)
    xp = pad_ref(x, left, right, padding_mode)
    l_out = output_length(length, left, right, k_size, stride, dilation)
    assert l_out >= 1, "kernel larger than padded input"
    out = np.zeros((n, c_out, l_out), dtype=np.float64)
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg, :]
        wg = w[g * og:(g + 1) * og]
        for k in range(k_size):
            start = k * dilation
            taps = xg[:, :, start:start + stride * (l_out - 1) + 1:stride]  # (N, Cg, L_out)
            out[:, g * og:(g + 1) * og, :] += np.einsum("oc,nct->not", wg[:, :, k], taps)
    if b is not None:
        out += np.asarray(b, dtype=np.float64)[None, :, None]
    return out[0] if unbatched else out


def conv1d_input_grad_ref(input_shape, w, grad_out, stride=1, padding=0, dilation=1, groups=1,
                          padding_mode="zeros"):
    """d(sum(conv1d(x) * grad_out)) / dx, for x of shape input_shape."""
    input_shape = tuple(input_shape)
    unbatched = len(input_shape) == 2
    g_out = np.asarray(grad_out, dtype=np.float64)
    if unbatched:
        g_out = g_out[None]
        input_shape = (1,) + input_shape
    w = np.asarray(w, dtype=np.float64)
    stride, dilation = _single(stride, "stride"), _single(dilation, "dilation")
    n, c_in, length = input_shape
    c_out, cg, k_size = w.shape
    og = c_out // groups
    left, right = resolve_padding(padding, k_size, dilation)
    l_out = g_out.shape[-1]
    assert l_out == output_length(length, left, right, k_size, stride, dilation)
    gp = np.zeros((n, c_in, length + left + right), dtype=np.float64)  # grad wrt padded input
    for g in range(groups):
        wg = w[g * og:(g + 1) * og]
        go = g_out[:, g * og:(g + 1) * og, :]
        for k in range(k_size):
            start = k * dilation
            gp[:, g * cg:(g + 1) * cg, start:start + stride * (l_out - 1) + 1:stride] += \
                np.einsum("oc,not->nct", wg[:, :, k], go)
    # fold the padded gradient back through the index map
    idx = pad_index_map(length, left, right, padding_mode)
    gx = np.zeros((n, c_in, length), dtype=np.float64)
    for j, src in enumerate(idx):
        if src >= 0:
            gx[:, :, src] += gp[:, :, j]
    return gx[0] if unbatched else gx


def conv1d_weight_grad_ref(x, w_shape, grad_out, stride=1, padding=0, dilation=1, groups=1,
                           padding_mode="zeros"):
    """d(sum(conv1d(x, w) * grad_out)) / dw, for w of shape w_shape."""
    x, unbatched = _batched(x)
    g_out = np.asarray(grad_out, dtype=np.float64)
    if unbatched:
        g_out = g_out[None]
    stride, dilation = _single(stride, "stride"), _single(dilation, "dilation")
    c_out, cg, k_size = tuple(w_shape)
    og = c_out // groups
    left, right = resolve_padding(padding, k_size, dilation)
    xp = pad_ref(x, left, right, padding_mode)
    l_out = g_out.shape[-1]
    gw = np.zeros((c_out, cg, k_size), dtype=np.float64)
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg, :]
        go = g_out[:, g * og:(g + 1) * og, :]
        for k in range(k_size):
            start = k * dilation
            taps = xg[:, :, start:start + stride * (l_out - 1) + 1:stride]
            gw[g * og:(g + 1) * og, :, k] = np.einsum("not,nct->oc", go, taps)
    return gw


def conv1d_bias_grad_ref(grad_out):
    g_out = np.asarray(grad_out, dtype=np.float64)
    if g_out.ndim == 2:
        g_out = g_out[None]
    return g_out.sum(axis=(0, 2))


def conv_transpose1d_ref(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Reference transposed convolution.  x: (N, C_in, L); w: (C_in, C_out/groups, K).

    L_out = (L - 1)*stride - 2*padding + dilation*(K - 1) + output_padding + 1
    """
    x, unbatched = _batched(x)
    w = np.asarray(w, dtype=np.float64)
    stride, dilation = _single(stride, "stride"), _single(dilation, "dilation")
    padding, output_padding = _single(padding, "padding"), _single(output_padding, "output_padding")
    n, c_in, length = x.shape
    _, og, k_size = w.shape
    cg = c_in // groups
    c_out = og * groups
    full_len = (length - 1) * stride + dilation * (k_size - 1) + 1 + output_padding
    full = np.zeros((n, c_out, full_len), dtype=np.float64)
    for g in range(groups):
        xg = x[:, g * cg:(g + 1) * cg, :]
        wg = w[g * cg:(g + 1) * cg]  # (Cg, Og, K)
        for k in range(k_size):
            start = k * dilation
            full[:, g * og:(g + 1) * og, start:start + stride * (length - 1) + 1:stride] += \
                np.einsum("co,nct->not", wg[:, :, k], xg)
    l_out = full_len - 2 * padding
    out = full[:, :, padding:padding + l_out].copy()
    if b is not None:
        out += np.asarray(b, dtype=np.float64)[None, :, None]
    return out[0] if unbatched else out
