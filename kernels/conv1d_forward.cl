/* conv1d_forward.cl: grouped, strided, dilated 1-D convolution with fused padding and bias.
 *
 *   y[n, co, l] = bias[co] + sum_{ci < C_IN_G, k < K} w[co, ci, k] * xpad[n, g*C_IN_G + ci, l*STRIDE + k*DILATION - pad_l]
 *   with g = co / C_OUT_G; xpad reads through load_padded() (PAD_MODE) outside [0, L_in).
 *
 * Tile picture (one work-group; output positions and output-channel tiles in grid dims POS_DIM and ROW_DIM,
 * batch in dim 2):
 *
 *        positions:  lane 0 1 .. WG_L-1 | lane 0 1 .. WG_L-1 | ...   (TILE_L blocks, interleaved so that
 *   channels          <----- block 0 ---->  <---- block 1 ---->         neighbouring lanes touch neighbouring
 *   TILE_CO rows      acc[c][t] holds (co0 + c, l0 + t*WG_L)             addresses: coalesced on GPUs,
 *                                                                         vectorised across lanes by PoCL)
 *
 *   STRATEGY 0 (register): no barriers; every work-item reads its inputs straight from global memory.
 *     A tile whose whole input window lies inside [0, L_in) takes the unguarded path.
 *   STRATEGY 1 (local): WG_CO work-items share the tile rows; per chunk of CI_TILE input channels the
 *     work-group stages the input window with its halo (CI_TILE x WIN) and the weights in __local memory.
 *
 * Macros read: C_IN_G, C_OUT_G, GROUPS, K, STRIDE, DILATION, HAS_BIAS, PAD_MODE, dtype (common.cl) and
 * the tunables below. Runtime arguments: L_in, L_out, pad_l.
 */
#ifndef STRATEGY
#define STRATEGY 0 /* 0 register-blocked without barriers, 1 __local tiles */
#endif
#ifndef TILE_CO
#define TILE_CO 4 /* output channels per work-item */
#endif
#ifndef TILE_L
#define TILE_L 2 /* output positions per work-item, WG_L apart */
#endif
#ifndef WG_L
#define WG_L 8 /* work-group size along positions */
#endif
#ifndef WG_CO
#define WG_CO 1 /* work-group size along output-channel tiles */
#endif
#if STRATEGY == 1 && VEC != 1
#error "the local strategy interleaves single positions: build it with VEC=1"
#endif
#ifndef CI_TILE
#define CI_TILE 4 /* input channels staged per __local chunk (STRATEGY 1) */
#endif

#define CI_BLOCK (SUM_BLOCK / K > 0 ? SUM_BLOCK / K : 1) /* input channels per blocked partial sum */
#define C_IN (C_IN_G * GROUPS)
#define C_OUT (C_OUT_G * GROUPS)
#if STRATEGY == 0
#define SPAN_L (WG_L * TILE_L * VEC)                             /* positions per work-group */
#define POSITION(j) (l_first + lane * (TILE_L * VEC) + (j))      /* contiguous per work-item */
#else
#define SPAN_L (WG_L * TILE_L)
#define POSITION(j) (l_first + lane + (j) * WG_L)                /* interleaved: lanes coalesce */
#endif
#define SPAN_CO (WG_CO * TILE_CO)                                /* channels per work-group */
#define CO_SPANS ((C_OUT_G + SPAN_CO - 1) / SPAN_CO)             /* work-group rows per group */
#define WIN ((SPAN_L - 1) * STRIDE + (K - 1) * DILATION + 1)     /* input window of a work-group */

/* Grid dimensions of positions and channel tiles: positions in dim 0 (coalescing on GPUs; on CPUs a
 * sample's rows stay in cache across channel tiles). Rows too long for the cache (ROWS_FIRST, register
 * strategy only) walk the channel tiles of one block of positions first instead, so that block's input
 * window is still in cache for the next tile. */
#ifndef ROWS_FIRST
#define ROWS_FIRST 0 /* 1: channel tiles in grid dim 0 */
#endif
#if STRATEGY == 0 && ROWS_FIRST
#define POS_DIM 1
#define ROW_DIM 0
__kernel __attribute__((reqd_work_group_size(WG_CO, WG_L, 1)))
#else
#define POS_DIM 0
#define ROW_DIM 1
__kernel __attribute__((reqd_work_group_size(WG_L, WG_CO, 1)))
#endif
void conv1d_forward(__global const store_t *restrict x, __global const store_t *restrict w,
                    __global const store_t *restrict bias, __global store_t *restrict y,
                    const int L_in, const int L_out, const int pad_l)
{
    const int lane = get_local_id(POS_DIM);
    const int row = get_local_id(ROW_DIM);
    const int span = get_group_id(ROW_DIM);
    const int g = span / CO_SPANS;
    const int co_first = g * C_OUT_G + (span % CO_SPANS) * SPAN_CO; /* first channel of the work-group */
    const int co_end = (g + 1) * C_OUT_G;
    const int n = get_global_id(2);
    const int l_first = get_group_id(POS_DIM) * SPAN_L; /* first position of the work-group */
    const int win0 = l_first * STRIDE - pad_l;      /* first input index of its window */
    __global const store_t *xg = x + ((long)n * C_IN + g * C_IN_G) * L_in;

    /* acc[c][j] holds channel co_base + c at position POSITION(j). */
    acc_t acc[TILE_CO][TILE_L * VEC];
    UNROLL
    for (int c = 0; c < TILE_CO; ++c)
        UNROLL
        for (int j = 0; j < TILE_L * VEC; ++j)
            acc[c][j] = 0;

#if STRATEGY == 0
    /* Work-item: TILE_CO consecutive channels from co_base x TILE_L vectors of VEC consecutive positions
     * from l0. A tile that would overhang its group's last channel slides back to end on it; the rows it
     * shares with the tile before are that tile's to store. Every weight and input offset in the loop
     * is then a compile-time constant from a pointer that steps one input channel at a time. */
    const int co0 = co_first + row * TILE_CO;
    const int co_base = co0 + TILE_CO > co_end ? co_end - TILE_CO : co0;
    const int l0 = l_first + lane * (TILE_L * VEC);
    const int i0 = l0 * STRIDE - pad_l;
    const bool interior = i0 >= 0 && i0 + (TILE_L * VEC - 1) * STRIDE + (K - 1) * DILATION < L_in;

#if STRIDE == 1
#define LOAD_X_INTERIOR(xr, i) LOADV(xr + i0 + (i))
#else
#define LOAD_X_INTERIOR(xr, i) gather(xr + i0 + (i), STRIDE)
#endif
#define LOAD_X_EDGE(xr, i) gather_padded(xr, i0 + (i), STRIDE, L_in)
/* Summation is blocked: CI_BLOCK channels go into the vector accumulators, which are then folded into acc,
 * so a long reduction (C_IN_G * K of 10^5 terms) keeps float32 accuracy. */
#define FORWARD_ACCUMULATE(LOAD_X, TAP_LOOP)                                    \
    __global const store_t *xr = xg;                                            \
    __global const store_t *wp = w + (long)co_base * (C_IN_G * K);              \
    for (int cb = 0; cb < C_IN_G; cb += CI_BLOCK) {                             \
        accv_t accv[TILE_CO][TILE_L];                                           \
        UNROLL                                                                  \
        for (int c = 0; c < TILE_CO; ++c)                                       \
            UNROLL                                                              \
            for (int t = 0; t < TILE_L; ++t)                                    \
                accv[c][t] = 0;                                                 \
        const int cb_end = cb + CI_BLOCK < C_IN_G ? cb + CI_BLOCK : C_IN_G;     \
        for (int ci = cb; ci < cb_end; ++ci, xr += L_in, wp += K) {             \
            TAP_LOOP                                                            \
            for (int k = 0; k < K; ++k) {                                       \
                accv_t xv[TILE_L];                                              \
                UNROLL                                                          \
                for (int t = 0; t < TILE_L; ++t)                                \
                    xv[t] = LOAD_X(xr, t * VEC * STRIDE + k * DILATION);        \
                UNROLL                                                          \
                for (int c = 0; c < TILE_CO; ++c) {                             \
                    const acc_t wv = LOAD(wp, c * (C_IN_G * K) + k);            \
                    UNROLL                                                      \
                    for (int t = 0; t < TILE_L; ++t)                            \
                        accv[c][t] += wv * xv[t];                               \
                }                                                               \
            }                                                                   \
        }                                                                       \
        FOLD_INTO_ACC(accv)                                                     \
    }
    if (interior) {
        FORWARD_ACCUMULATE(LOAD_X_INTERIOR, UNROLL_TAPS)
    } else {
        FORWARD_ACCUMULATE(LOAD_X_EDGE, NO_UNROLL)
    }
#else
    __local acc_t x_tile[CI_TILE][WIN];
    __local acc_t w_tile[CI_TILE * K][SPAN_CO];
    const int co0 = co_first + row * TILE_CO;
    const int co_base = co0;
    const int me = row * WG_L + lane;
    for (int ci0 = 0; ci0 < C_IN_G; ci0 += CI_TILE) {
        for (int idx = me; idx < CI_TILE * WIN; idx += WG_L * WG_CO) {
            const int c = idx / WIN, j = idx % WIN;
            x_tile[c][j] = ci0 + c < C_IN_G ? load_padded(xg + (long)(ci0 + c) * L_in, win0 + j, L_in) : (acc_t)0;
        }
        for (int idx = me; idx < CI_TILE * K * SPAN_CO; idx += WG_L * WG_CO) {
            const int o = idx / (CI_TILE * K), ck = idx % (CI_TILE * K);
            const int ci = ci0 + ck / K;
            const int co = co_first + o;
            w_tile[ck][o] = (co < co_end && ci < C_IN_G) ? LOAD(w, (co * C_IN_G + ci) * K + ck % K) : (acc_t)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        acc_t part[TILE_CO][TILE_L]; /* one chunk's sum, folded into acc: blocked summation */
        UNROLL
        for (int cc = 0; cc < TILE_CO; ++cc)
            UNROLL
            for (int t = 0; t < TILE_L; ++t)
                part[cc][t] = 0;
        UNROLL
        for (int c = 0; c < CI_TILE; ++c) {
            UNROLL_TAPS
            for (int k = 0; k < K; ++k) {
                acc_t xv[TILE_L];
                UNROLL
                for (int t = 0; t < TILE_L; ++t)
                    xv[t] = x_tile[c][(lane + t * WG_L) * STRIDE + k * DILATION];
                UNROLL
                for (int cc = 0; cc < TILE_CO; ++cc) {
                    const acc_t wv = w_tile[c * K + k][row * TILE_CO + cc];
                    UNROLL
                    for (int t = 0; t < TILE_L; ++t)
                        part[cc][t] += wv * xv[t];
                }
            }
        }
        UNROLL
        for (int cc = 0; cc < TILE_CO; ++cc)
            UNROLL
            for (int t = 0; t < TILE_L; ++t)
                acc[cc][t] += part[cc][t];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif

    UNROLL
    for (int c = 0; c < TILE_CO; ++c) {
        const int co = co_base + c;
        if (co < co0 || co >= co_end)
            continue;
#if HAS_BIAS
        const acc_t b = LOAD(bias, co);
#else
        const acc_t b = 0;
#endif
        __global store_t *yr = y + ((long)n * C_OUT + co) * L_out;
#if STRATEGY == 0 && defined(HAS_STOREV)
        /* Whole vectors inside the row go out as one store: with few products per output (C_in = 1)
         * element-wise stores would dominate. */
        UNROLL
        for (int t = 0; t < TILE_L; ++t) {
            if (POSITION(t * VEC) + VEC <= L_out) {
                accv_lanes lanes;
                UNROLL
                for (int v = 0; v < VEC; ++v)
                    lanes.s[v] = acc[c][t * VEC + v] + b;
                STOREV(yr + POSITION(t * VEC), lanes.v);
                continue;
            }
            UNROLL
            for (int v = 0; v < VEC; ++v)
                if (POSITION(t * VEC + v) < L_out)
                    STORE(yr, POSITION(t * VEC + v), acc[c][t * VEC + v] + b);
        }
#else
        UNROLL
        for (int j = 0; j < TILE_L * VEC; ++j) {
            const int l = POSITION(j);
            if (l < L_out)
                STORE(yr, l, acc[c][j] + b);
        }
#endif
    }
}
