/* flip_weights.cl: the weights rearranged for kernels that read them in another order. Each kernel is
 * compiled only under KERNEL_<its name> (Device.kernel defines it). Macros read: dtype; the layer comes as
 * runtime arguments, so that one program serves every layer of a dtype.
 *
 * flip_weights: the weights of a stride-1 input gradient in forward form.
 *
 *   wf[g*C_IN_G + ci, co, K-1-k] = w[g*C_OUT_G + co, ci, k]
 *
 * With them dx = conv1d(dy, wf) at padding (K-1)*DILATION - pad on each side, so the input gradient runs on
 * the forward kernel and its tiles (the host picks this where the built-in table says so).
 * Grid: dim 0 = block of FLIP_BLOCK input channels ci, dim 1 = g * (C_OUT_G / FLIP_BLOCK rounded up) + block
 * of FLIP_BLOCK output channels co: a work-item moves a square of (ci, co) pairs with their taps, reading
 * FLIP_BLOCK runs of FLIP_BLOCK * K elements of w and writing as many of wf. A work-item per pair read rows
 * a whole weight row apart, a cache line and often a page per pair for a few taps.
 *
 * lane_weights: the weights with output channels innermost, in the accumulation type (the storage type
 * with LANES_STORED), for lanes along output channels (conv1d_forward_channel_lanes) and for the pointwise
 * forward of an input gradient into columns (conv1d_backward_data_cols):
 *
 *   wl[((g*C_IN_G + ci)*K + k)*co_pad + co] = w[g*C_OUT_G + co, ci, k]  for co < C_OUT_G, 0 up to co_pad
 *
 * Grid: dim 0 = block of LANE_BLOCK entries i = ci*K + k of a row of w, dim 1 = g * (co_pad / LANE_BLOCK
 * rounded up) + block of LANE_BLOCK channels: a work-item moves a square, reading LANE_BLOCK runs of rows of w and writing
 * LANE_BLOCK runs of rows of wl. One element per step along either row alone strides by a whole row on
 * the other side, rows a power of two of bytes apart fall into a few cache sets, and a 512 x 512 x 3 weight
 * took 2-4 ms on a 2-core EPYC instead of a copy's 0.3.
 *
 * unphase_weights: the weight gradient of a strided layer from that of its stride phases, where the phases
 * of each input row ran as input channels of a stride-1 layer of ceil(K / stride) taps (tap j of phase r
 * is the layer's tap j * stride + r; those past K are dropped):
 *
 *   dw[co, ci, k] = (accumulate ? dw[co, ci, k] : 0) + dwp[co, ci * stride + k % stride, k / stride]
 *
 * A work-item per element of dw. Runtime arguments: c_in_g, taps (K), stride, phase_taps, count (dw's
 * elements), accumulate.
 */
#ifdef KERNEL_FLIP_WEIGHTS
#define FLIP_BLOCK 8 /* input and output channels of a work-item's square of pairs */
__kernel EXPLICIT_VECTORS void flip_weights(__global const store_t *restrict w, __global store_t *restrict wf,
                                            const int c_in_g, const int c_out_g, const int groups, const int taps)
{
    const int blocks = (c_out_g + FLIP_BLOCK - 1) / FLIP_BLOCK; /* output-channel blocks per group */
    const int ci0 = get_global_id(0) * FLIP_BLOCK, b = get_global_id(1);
    if (ci0 >= c_in_g || b >= groups * blocks)
        return;
    const int g = b / blocks, co0 = (b - g * blocks) * FLIP_BLOCK;
    const int ci_end = ci0 + FLIP_BLOCK < c_in_g ? ci0 + FLIP_BLOCK : c_in_g;
    const int co_end = co0 + FLIP_BLOCK < c_out_g ? co0 + FLIP_BLOCK : c_out_g;
    for (int co = co0; co < co_end; ++co) {
        __global const store_t *src = w + (long)(g * c_out_g + co) * c_in_g * taps;
        for (int ci = ci0; ci < ci_end; ++ci) {
            __global store_t *dst = wf + ((long)(g * c_in_g + ci) * c_out_g + co) * taps;
            for (int k = 0; k < taps; ++k)
                STORE(dst, k, LOAD(src, ci * taps + taps - 1 - k));
        }
    }
}
#endif

#ifdef KERNEL_LANE_WEIGHTS
#define LANE_BLOCK 8 /* entries and channels of a work-item's square */
#ifndef LANES_STORED
#define LANES_STORED 0 /* 1: wl in the storage type */
#endif
#if LANES_STORED
typedef store_t lane_t;
#define STORE_LANE(p, i, v) STORE(p, i, v)
#else
typedef acc_t lane_t;
#define STORE_LANE(p, i, v) ((p)[i] = (v))
#endif
__kernel EXPLICIT_VECTORS void lane_weights(__global const store_t *restrict w, __global lane_t *restrict wl,
                           const int c_in_g, const int c_out_g, const int groups, const int taps, const int co_pad)
{
    const int row = c_in_g * taps;
    const int blocks = (co_pad + LANE_BLOCK - 1) / LANE_BLOCK; /* channel blocks per group */
    const int i0 = get_global_id(0) * LANE_BLOCK, b = get_global_id(1);
    if (i0 >= row || b >= groups * blocks)
        return;
    const int g = b / blocks, co0 = (b - g * blocks) * LANE_BLOCK;
    acc_t square[LANE_BLOCK][LANE_BLOCK];
    UNROLL
    for (int c = 0; c < LANE_BLOCK; ++c) {
        __global const store_t *src = w + (long)(g * c_out_g + co0 + c) * row + i0;
        UNROLL
        for (int i = 0; i < LANE_BLOCK; ++i)
            square[i][c] = co0 + c < c_out_g && i0 + i < row ? LOAD(src, i) : (acc_t)0;
    }
    __global lane_t *dst = wl + ((long)g * row + i0) * co_pad + co0;
    UNROLL
    for (int i = 0; i < LANE_BLOCK; ++i)
        if (i0 + i < row)
            UNROLL
            for (int c = 0; c < LANE_BLOCK; ++c)
                if (co0 + c < co_pad)
                    STORE_LANE(dst, (long)i * co_pad + c, square[i][c]);
}
#endif

#ifdef KERNEL_UNPHASE_WEIGHTS
__kernel void unphase_weights(__global const store_t *restrict dwp, __global store_t *restrict dw, const int c_in_g,
                              const int taps, const int stride, const int phase_taps, const int count,
                              const int accumulate)
{
    const int i = get_global_id(0);
    if (i >= count)
        return;
    const int row = i / taps, k = i - row * taps; /* row = co * c_in_g + ci */
    const acc_t grad = LOAD(dwp, (row * stride + k % stride) * phase_taps + k / stride);
    STORE(dw, i, accumulate ? LOAD(dw, i) + grad : grad);
}
#endif
