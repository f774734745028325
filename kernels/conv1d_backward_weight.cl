/* conv1d_backward_weight.cl: the weight gradient of conv1d, deterministic, in two passes.
 *
 *   dw[co, ci, k] = sum_{n, l} dy[n, co, l] * xpad[n, g*C_IN_G + ci, l*STRIDE + k*DILATION - pad_l]
 *
 * Pass 1 (conv1d_backward_weight_partial): the N x L_out reduction is cut into CHUNKS contiguous runs of
 *   VEC-wide position vectors (vector v covers sample v / VPN, positions (v % VPN)*VEC ...). Work-item
 *   (ci, tap tile, channel tile, chunk) sums its run in a fixed order into partial[chunk][...].
 * Pass 2 (conv1d_backward_weight_reduce): out = beta*out + sum over chunks in chunk order; no atomics,
 *   so the bits are the same on every run.
 *
 *   STRATEGY 0 (register): TILE_CO channels x TILE_K taps of VEC-lane accumulators, no barriers.
 *   STRATEGY 1 (local): a work-group of WG_A lanes (ci, tap tile) x WG_CO rows shares one chunk; dy rows
 *     for its SPAN_CO channels are staged in __local memory, LB positions at a time, and read by every lane.
 *
 * Macros read: C_IN_G, C_OUT_G, GROUPS, K, STRIDE, DILATION, PAD_MODE, dtype (common.cl), tunables.
 * Runtime arguments: N, L_in, L_out, pad_l, chunks.
 */
#ifndef STRATEGY
#define STRATEGY 0 /* 0 register-blocked without barriers, 1 __local dy tiles */
#endif
#ifndef TILE_CO
#define TILE_CO 4 /* output channels per work-item */
#endif
#ifndef TILE_K
#define TILE_K 3 /* taps per work-item */
#endif
#ifndef WG_A
#define WG_A 1 /* work-group size along (ci, tap tile) */
#endif
#ifndef WG_CO
#define WG_CO 1 /* work-group size along channel tiles */
#endif
#ifndef LB
#define LB 64 /* positions staged per __local block (STRATEGY 1) */
#endif
#if STRATEGY == 1 && VEC != 1
#error "the local strategy reads single positions: build it with VEC=1"
#endif

#define C_IN (C_IN_G * GROUPS)
#define C_OUT (C_OUT_G * GROUPS)
#define W_SIZE (C_OUT * C_IN_G * K)
#define K_TILES ((K + TILE_K - 1) / TILE_K)
#define SPAN_CO (WG_CO * TILE_CO)
#define CO_SPANS ((C_OUT_G + SPAN_CO - 1) / SPAN_CO)

__kernel __attribute__((reqd_work_group_size(WG_A, WG_CO, 1)))
void conv1d_backward_weight_partial(__global const store_t *restrict x, __global const store_t *restrict dy,
                                    __global acc_t *restrict partial, const int N, const int L_in,
                                    const int L_out, const int pad_l, const int chunks)
{
    const int a = get_global_id(0);
    const bool active = a < C_IN_G * K_TILES; /* the last work-group along dim 0 may overhang */
    const int ci = active ? a / K_TILES : 0;
    const int k0 = (active ? a % K_TILES : 0) * TILE_K;
    const int span = get_group_id(1);
    const int g = span / CO_SPANS;
    const int co_end = (g + 1) * C_OUT_G;
    const int co0 = g * C_OUT_G + (span % CO_SPANS) * SPAN_CO + get_local_id(1) * TILE_CO;
    const int chunk = get_global_id(2);
    /* Clamped rows and taps compute duplicates that are never stored. */
    int co_c[TILE_CO], k_c[TILE_K];
    UNROLL
    for (int c = 0; c < TILE_CO; ++c)
        co_c[c] = co0 + c < co_end ? co0 + c : co_end - 1;
    UNROLL
    for (int t = 0; t < TILE_K; ++t)
        k_c[t] = k0 + t < K ? k0 + t : K - 1;

    const int vpn = (L_out + VEC - 1) / VEC; /* position vectors per sample */
    const long total = (long)N * vpn;
    const long v_begin = total * chunk / chunks, v_end = total * (chunk + 1) / chunks;

    accv_t acc[TILE_CO][TILE_K];
    UNROLL
    for (int c = 0; c < TILE_CO; ++c) {
        UNROLL
        for (int t = 0; t < TILE_K; ++t)
            acc[c][t] = 0;
    }

#if STRATEGY == 0
    int n = (int)(v_begin / vpn), l = (int)(v_begin % vpn) * VEC;
    for (long v = v_begin; v < v_end; ++v) {
        __global const store_t *xr = x + ((long)n * C_IN + g * C_IN_G + ci) * L_in;
        __global const store_t *dyn = dy + (long)n * C_OUT * L_out;
        const int i0 = l * STRIDE - pad_l;
        const bool interior = l + VEC <= L_out && i0 + k_c[0] * DILATION >= 0
                              && i0 + (VEC - 1) * STRIDE + k_c[TILE_K - 1] * DILATION < L_in;
        accv_t dyv[TILE_CO], xv[TILE_K];
        if (interior) {
            UNROLL
            for (int c = 0; c < TILE_CO; ++c)
                dyv[c] = LOADV(dyn + (long)co_c[c] * L_out + l);
            UNROLL
            for (int t = 0; t < TILE_K; ++t)
                xv[t] = STRIDE == 1 ? LOADV(xr + i0 + k_c[t] * DILATION) : GATHER(xr + i0 + k_c[t] * DILATION, STRIDE);
        } else {
            UNROLL
            for (int c = 0; c < TILE_CO; ++c)
                dyv[c] = GATHER_MASKED(dyn + (long)co_c[c] * L_out, l, 1, L_out);
            UNROLL
            for (int t = 0; t < TILE_K; ++t)
                xv[t] = GATHER_EDGE(xr, i0 + k_c[t] * DILATION, STRIDE, L_in);
        }
        UNROLL
        for (int c = 0; c < TILE_CO; ++c) {
            UNROLL
            for (int t = 0; t < TILE_K; ++t)
                acc[c][t] += dyv[c] * xv[t];
        }
        l += VEC;
        if (l >= vpn * VEC) {
            l = 0;
            ++n;
        }
    }
#else
    /* Positions p in [v_begin, v_end) of the flattened (n, l) range, LB at a time. */
    __local acc_t dy_tile[SPAN_CO][LB];
    const int me = get_local_id(1) * WG_A + get_local_id(0);
    const int co_first = g * C_OUT_G + (span % CO_SPANS) * SPAN_CO;
    const int row0 = get_local_id(1) * TILE_CO;
    for (long p0 = v_begin; p0 < v_end; p0 += LB) {
        for (int idx = me; idx < SPAN_CO * LB; idx += WG_A * WG_CO) {
            const int o = idx / LB, j = idx % LB;
            const long p = p0 + j;
            const int pn = (int)(p / vpn), pl = (int)(p % vpn);
            dy_tile[o][j] = (p < v_end && co_first + o < co_end) ? LOAD(dy, ((long)pn * C_OUT + co_first + o) * L_out + pl) : (acc_t)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        const int count = v_end - p0 < LB ? (int)(v_end - p0) : LB;
        int n = (int)(p0 / vpn), l = (int)(p0 % vpn);
        for (int j = 0; j < count; ++j) {
            __global const store_t *xr = x + ((long)n * C_IN + g * C_IN_G + ci) * L_in;
            UNROLL
            for (int t = 0; t < TILE_K; ++t) {
                const acc_t xv = load_padded(xr, l * STRIDE + k_c[t] * DILATION - pad_l, L_in);
                UNROLL
                for (int c = 0; c < TILE_CO; ++c)
                    acc[c][t] += dy_tile[row0 + c][j] * xv;
            }
            if (++l == vpn) {
                l = 0;
                ++n;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif

    if (!active)
        return;
    __global acc_t *out = partial + (long)chunk * W_SIZE;
    UNROLL
    for (int c = 0; c < TILE_CO; ++c) {
        if (co0 + c >= co_end)
            break;
        UNROLL
        for (int t = 0; t < TILE_K; ++t) {
            if (k0 + t >= K)
                break;
            accv_lanes lanes;
            lanes.v = acc[c][t];
            acc_t sum = 0;
            UNROLL
            for (int v = 0; v < VEC; ++v)
                sum += lanes.s[v];
            out[((co0 + c) * C_IN_G + ci) * K + k0 + t] = sum;
        }
    }
}

/* dw[j] = sum_chunk partial[chunk][j] (+ dw[j] when accumulating), chunks summed in order. */
__kernel void conv1d_backward_weight_reduce(__global const acc_t *restrict partial, __global store_t *restrict dw,
                                            const int chunks, const int accumulate)
{
    const int j = get_global_id(0);
    if (j >= W_SIZE)
        return;
    acc_t sum = 0;
    for (int p = 0; p < chunks; ++p)
        sum += partial[(long)p * W_SIZE + j];
    STORE(dw, j, accumulate ? LOAD(dw, j) + sum : sum);
}
