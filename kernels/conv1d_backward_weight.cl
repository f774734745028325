/* conv1d_backward_weight.cl: the weight gradient of conv1d, deterministic, in two passes.
 *
 *   dw[co, ci, k] = sum_{n, l} dy[n, co, l] * xpad[n, g*C_IN_G + ci, l*STRIDE + k*DILATION - pad_l]
 *
 * Pass 1 (conv1d_backward_weight_partial): the N x L_out reduction is cut into CHUNKS contiguous runs of
 *   VEC-wide position vectors (vector v covers sample v / VPN, positions (v % VPN)*VEC ...). Work-item
 *   (ci, tap tile, channel tile, chunk) sums its run in a fixed order into partial[chunk][...].
 * Pass 2 (conv1d_backward_weight_reduce.cl): out = beta*out + sum over chunks in chunk order; no atomics,
 *   so the bits are the same on every run.
 * BIAS_SUM: the register partial kernel also sums dy per channel, db[co] = sum_{n, l} dy[n, co, l], from
 *   the dy vectors it loads anyway (partial[chunk][W_SIZE + co]); the host sets it only where one work-item
 *   owns all taps of the only input channel of its group (C_IN_G x K_TILES = 1), so each channel is summed
 *   once and the bias gradient costs no second read of dy.
 *
 *   STRATEGY 0 (register): TILE_CO channels x TILE_K taps of VEC-lane accumulators, no barriers.
 *   STRATEGY 1 (local, conv1d_backward_weight_local): a work-group owns SPAN_CO output x SPAN_CI input
 *     channels x every tap of one group and one chunk of the (sample, block of LB positions) units. Per
 *     unit it stages dy_tile[j][o] (LB positions x SPAN_CO channels) and the input window of the block,
 *     split into stride phases with the channels innermost, x_tile[r][q][c] = window element q*STRIDE + r
 *     of channel c, padding resolved while staging. Work-item (lane, row) keeps TILE_CO output channels x
 *     TILE_K taps (tap tile lane % K_TILES) x TILE_CI input channels (channel tile lane / K_TILES):
 *
 *         position j:  dy_tile[j][row*TILE_CO .. +TILE_CO)  x  x_tile[phase_t][j + offset_t][ci tile]
 *                      (one vector, broadcast lane by lane)     (one vector of TILE_CI channels per tap)
 *
 *     Tap phases and offsets are computed once per work-item; the block's sums fold into the totals per
 *     unit (blocked summation), and taps past K are skipped, never computed. At stride 1 with whole tap
 *     tiles (X_SLIDE) the input vectors slide through registers: one new vector per position.
 *   conv1d_backward_weight_depthwise (STRATEGY 1 with DW_TK set): one input channel per group, stride 1;
 *     dy streamed from global memory, every tap of a channel summed in registers (see the kernel).
 *   conv1d_backward_weight_blocked: the register tiles with their lanes along input channels instead of
 *     positions, for deep reductions (the host's choice). It reads pad_rows.cl's channel-blocked copy
 *       xb[((n * GROUPS + g) * CI_BLOCKS + b) * LDB + q][v] = xpad[n, g*C_IN_G + b*VEC + v, q - pad_l]
 *     (zero for channels past C_IN_G). Work-item (channel block b, tap tile, channel tile, chunk) keeps
 *     acc[c][t], lane v = dw[co_base + c, b*VEC + v, k_base + t]; per position it loads TILE_K input
 *     vectors and broadcasts TILE_CO dy elements:
 *
 *         position l:  dy[co_base .. +TILE_CO)[l]  x  xb[b][l*STRIDE + (k_base .. +TILE_K)*DILATION][0 .. VEC)
 *                      (broadcast scalars)            (one contiguous vector per tap)
 *
 *     The input streams one cache line per position and no lanes are summed at the end; lanes along
 *     positions stream TILE_CO + 1 rows per vector and load the same dy vector for every input channel.
 *   conv1d_backward_weight_slide: the register tiles for stride-1 layers of long kernels, taps VEC apart
 *     so that their input vectors slide through registers (see the kernel).
 *   conv1d_backward_weight_columns: short rows, whose positions over the whole batch are few: lanes along
 *     the entries (ci, k) of a weight row, over pad_rows.cl's columns xc (one per position q = n*L_out + l,
 *     in panels of SPAN = COLS_RV * VEC entries ci*K + k); every work-item sums all positions itself, so
 *     there are no chunks to reduce:
 *
 *         position q:  dy[n, co_base .. +COLS_CO, l]  x  xc[g][panel][q][0 .. SPAN)
 *                      (broadcast scalars)               (COLS_RV contiguous vectors)
 *
 *     and the sums go straight to dw, whose rows hold the same entries in the same order.
 *
 * Macros read: C_IN_G, C_OUT_G, GROUPS, K, STRIDE, DILATION, PAD_MODE, BIAS_SUM, dtype (common.cl),
 * tunables (the depthwise kernel's DW_TK, DW_KT, DW_WP, DW_RUN, DW_CH and LB come from the host, with no
 * defaults). Runtime arguments: N, L_in, L_out, pad_l, chunks; pos_block (tile_order() in common.cl) for the
 * register kernels.
 * STRATEGY 1 work-groups are WG_A = WG_CI x K_TILES lanes by WG_CO rows (the host keeps WG_A a multiple
 * of K_TILES).
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
#define LB 32 /* positions per __local block, one sample's (STRATEGY 1) */
#endif
#ifndef TILE_CI
#define TILE_CI 4 /* input channels per work-item (STRATEGY 1), one vector of them per tap */
#endif

#ifndef X_STAGED
#define X_STAGED 0 /* 1: x is pad_rows.cl's staged copy (register strategy; pad_l = 0) */
#endif
#ifndef X_PHASES
#define X_PHASES 1 /* STRIDE: the staged copy is split into stride phases */
#endif
#ifndef X_BLOCKED
#define X_BLOCKED 0 /* 1: the program holds the channel-blocked kernel, 0: the partial kernel (build time) */
#endif

#define C_IN (C_IN_G * GROUPS)
#ifndef BIAS_SUM
#define BIAS_SUM 0 /* 1: the partial kernel sums dy per channel too (the bias gradient; STRATEGY 0) */
#endif

#define C_OUT (C_OUT_G * GROUPS)
#define W_SIZE (C_OUT * C_IN_G * K)
#define K_TILES ((K + TILE_K - 1) / TILE_K)
#if BIAS_SUM && (STRATEGY != 0 || C_IN_G * K_TILES != 1)
#error "BIAS_SUM needs the register strategy with one input channel and one tap tile per group"
#endif
#define P_SIZE (W_SIZE + (BIAS_SUM ? C_OUT : 0)) /* partial sums per chunk */
#define SPAN_CO (WG_CO * TILE_CO)
#define CO_SPANS ((C_OUT_G + SPAN_CO - 1) / SPAN_CO)

#if !X_BLOCKED && STRATEGY == 0
__kernel __attribute__((reqd_work_group_size(WG_A, WG_CO, 1)))
void conv1d_backward_weight_partial(__global const store_t *restrict x, __global const store_t *restrict dy,
                                    __global acc_t *restrict partial, const int N, const int L_in,
                                    const int L_out, const int pad_l, const int chunks, const int pos_block)
{
    /* tile_order() (common.cl) walks blocks of pos_block (ci, tap tile) groups through every channel
     * tile, so a block's input rows stay in cache while the channel tiles pass over them. */
    const int2 tile = tile_order(pos_block);
    const int a = tile.x * WG_A + get_local_id(0);
    const bool active = a < C_IN_G * K_TILES; /* the last work-group along dim 0 may overhang */
    const int ci = active ? a / K_TILES : 0;
    const int k0 = (active ? a % K_TILES : 0) * TILE_K;
    const int span = tile.y;
    const int g = span / CO_SPANS;
    const int co_end = (g + 1) * C_OUT_G;
    const int co0 = g * C_OUT_G + (span % CO_SPANS) * SPAN_CO + get_local_id(1) * TILE_CO;
    const int chunk = get_global_id(2);
    const int vpn = (L_out + VEC - 1) / VEC; /* position vectors per sample */
    const long total = (long)N * vpn;
    const long v_begin = total * chunk / chunks, v_end = total * (chunk + 1) / chunks;

    accv_t acc[TILE_CO][TILE_K];
    ZERO_TILE(acc, TILE_CO, TILE_K);
#if BIAS_SUM
    accv_t bias_acc[TILE_CO];
    UNROLL
    for (int c = 0; c < TILE_CO; ++c)
        bias_acc[c] = 0;
#define SUM_BIAS(c) bias_acc[c] += dyv[c]
#else
#define SUM_BIAS(c)
#endif

    /* Tiles that would overhang the group's last channel or the last tap slide back to end on it (the
     * host keeps TILE_CO <= C_OUT_G and TILE_K <= K); shared rows and taps are stored by their own tile.
     * acc[c][t] holds (co_base + c, k_base + t). */
    const int co_base = co0 + TILE_CO > co_end ? co_end - TILE_CO : co0;
    const int k_base = k0 + TILE_K > K ? K - TILE_K : k0;
    /* The chunk's vectors, one sample at a time; per sample the vectors whose loads all lie inside the
     * rows take the unguarded path: lv in [lv_in_lo, lv_in_hi). */
#if X_PHASES > 1
    /* Phase-split staged rows (pad_rows.cl, pad_l = 0): tap t of position l reads phase q % STRIDE at
     * offset l + q / STRIDE, q = (k_base + t) * DILATION; every position's window is inside the row. */
    const int phase_length = L_in / X_PHASES;
    int x_off[TILE_K];
    UNROLL
    for (int t = 0; t < TILE_K; ++t)
        x_off[t] = ((k_base + t) * DILATION) % STRIDE * phase_length + (k_base + t) * DILATION / STRIDE;
    const int lv_in_lo = 0, lv_in_hi = L_out / VEC;
#else
    const int lv_in_lo = pad_l - k_base * DILATION <= 0 ? 0 : (pad_l - k_base * DILATION + VEC * STRIDE - 1) / (VEC * STRIDE);
    const int last_start = L_in - 1 + pad_l - (k_base + TILE_K - 1) * DILATION - (VEC - 1) * STRIDE;
    const int lv_in_hi_x = last_start < 0 ? 0 : last_start / (VEC * STRIDE) + 1;
    const int lv_in_hi = lv_in_hi_x < L_out / VEC ? lv_in_hi_x : L_out / VEC;
#endif
#if X_STAGED
    /* lanes of the last whole vector that lie past the last full one */
    const lanev_t tail_lanes = LANE_IDS >= (lanev_t)(VEC - L_out % VEC);
#endif
    for (long vs = v_begin; vs < v_end;) {
        const int n = (int)(vs / vpn);
        const int lv0 = (int)(vs - (long)n * vpn);
        const int lv1 = v_end - vs < vpn - lv0 ? lv0 + (int)(v_end - vs) : vpn;
        const int mid_lo = lv_in_lo < lv0 ? lv0 : (lv_in_lo > lv1 ? lv1 : lv_in_lo);
        const int mid_hi = lv_in_hi < mid_lo ? mid_lo : (lv_in_hi > lv1 ? lv1 : lv_in_hi);
#if X_PHASES > 1
        __global const store_t *xr = x + ((long)n * C_IN + g * C_IN_G + ci) * L_in;
#define LOAD_X_INTERIOR(l, t) LOADV(xr + x_off[t] + (l))
#define LOAD_X_EDGE(l, t) LOAD_X_INTERIOR(l, t)
#else
        __global const store_t *xr = x + ((long)n * C_IN + g * C_IN_G + ci) * L_in + k_base * DILATION - pad_l;
#if STRIDE == 1
#define LOAD_X_INTERIOR(l, t) LOADV(xr + (l) + (t) * DILATION)
#else
#define LOAD_X_INTERIOR(l, t) gather(xr + (l) * STRIDE + (t) * DILATION, STRIDE)
#endif
#define LOAD_X_EDGE(l, t) gather_padded(xr + pad_l - k_base * DILATION, (l) * STRIDE + (t) * DILATION - pad_l + k_base * DILATION, STRIDE, L_in)
#endif
        __global const store_t *dyr = dy + ((long)n * C_OUT + co_base) * L_out;
#define LOAD_DY_INTERIOR(c, l) LOADV(dyr + (long)(c) * L_out + (l))
#define LOAD_DY_EDGE(c, l) gather_masked(dyr + (long)(c) * L_out, l, 1, L_out)
/* Lanes outside the sum (past the row's end; in the last whole vector, those the vector before counted)
 * have dy 0 and x 0, both selected: dy 0 alone would turn an Inf or NaN x there into a NaN product. */
#define LOAD_X_EDGE_LANES(l, t) keep_lanes(LOAD_X_EDGE(l, t), l, L_out)
#define LOAD_DY_TAIL(c, l) select((accv_t)0, LOADV(dyr + (long)(c) * L_out + (l)), tail_lanes)
#define LOAD_X_TAIL(l, t) select((accv_t)0, LOAD_X_INTERIOR(l, t), tail_lanes)
#define WEIGHT_STEP(position, LOAD_DY, LOAD_X)                              \
        {                                                                   \
            const int l = (position);                                       \
            accv_t dyv[TILE_CO];                                            \
            UNROLL                                                          \
            for (int c = 0; c < TILE_CO; ++c) {                             \
                dyv[c] = LOAD_DY(c, l);                                     \
                SUM_BIAS(c);                                                \
            }                                                               \
            UNROLL                                                          \
            for (int t = 0; t < TILE_K; ++t) {                              \
                const accv_t xv = LOAD_X(l, t);                             \
                UNROLL                                                      \
                for (int c = 0; c < TILE_CO; ++c)                           \
                    acc[c][t] += dyv[c] * xv;                               \
            }                                                               \
        }
        for (int lv = lv0; lv < mid_lo; ++lv)
            WEIGHT_STEP(lv * VEC, LOAD_DY_EDGE, LOAD_X_EDGE_LANES)
        for (int lv = mid_lo; lv < mid_hi; ++lv)
            WEIGHT_STEP(lv * VEC, LOAD_DY_INTERIOR, LOAD_X_INTERIOR)
#if X_STAGED
        /* Only a sample's last, partial vector is left (staged rows hold every window): it is loaded whole
         * from VEC positions before the row's end, and the lanes that the vector before it counted are
         * selected off; an element-wise gather would cost as much as a few dozen whole vectors. */
        if (mid_hi < lv1 && L_out >= VEC)
            WEIGHT_STEP(L_out - VEC, LOAD_DY_TAIL, LOAD_X_TAIL)
        else
#endif
        for (int lv = mid_hi; lv < lv1; ++lv)
            WEIGHT_STEP(lv * VEC, LOAD_DY_EDGE, LOAD_X_EDGE_LANES)
        vs += lv1 - lv0;
    }

    if (!active)
        return;
    __global acc_t *out = partial + (long)chunk * P_SIZE;
    UNROLL
    for (int c = 0; c < TILE_CO; ++c) {
        const int co = co_base + c;
        if (co < co0 || co >= co_end)
            continue;
#if BIAS_SUM
        out[W_SIZE + co] = sum_lanes(bias_acc[c]);
#endif
        UNROLL
        for (int t = 0; t < TILE_K; ++t) {
            const int k = k_base + t;
            if (k < k0 || k >= K)
                continue;
            out[(co * C_IN_G + ci) * K + k] = sum_lanes(acc[c][t]);
        }
    }
}

#endif

/* conv1d_backward_weight_slide: the partial kernel's sums for stride-1, dilation-1 layers of long kernels
 * (single-channel filterbanks, depthwise filters), with the taps of a tile VEC apart: taps
 * r + (m0 + i) VEC, i < SLIDE_M, of residue r. Position vector lv reads input vectors lv + m0 + i (offset
 * r - pad_l), so from one position vector to the next the tile's input vectors slide by one: each step
 * loads TILE_CO dy vectors and one input vector for TILE_CO x SLIDE_M multiply-adds (window slot
 * (i + s) % SLIDE_M holds tap i at unrolled step s). Vectors whose window leaves the row, and a sample's
 * last partial vector, take the guarded, unslid path. A work-item owns every tap tile of its residue and
 * passes them all over blocks of SLIDE_SB position vectors, so that a block's dy and input stay in the
 * first-level cache while the tiles take turns (their sums wait in private memory). Grid: dim 0 =
 * (ci, residue), dim 1 = channel tile, dim 2 = chunk of the N x L_out position vectors.
 */
#ifdef KERNEL_CONV1D_BACKWARD_WEIGHT_SLIDE
#if STRIDE != 1 || DILATION != 1
#error "conv1d_backward_weight_slide computes stride-1, dilation-1 weight gradients"
#endif
#ifndef SLIDE_SB
#define SLIDE_SB 128 /* position vectors per cache block */
#endif
#define SLIDE_MS ((K + VEC - 1) / VEC)                     /* taps of residue 0 */
#define SLIDE_PER_R ((SLIDE_MS + SLIDE_M - 1) / SLIDE_M)   /* tap tiles per residue */
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void conv1d_backward_weight_slide(__global const store_t *restrict x, __global const store_t *restrict dy,
                                  __global acc_t *restrict partial, const int N, const int L_in,
                                  const int L_out, const int pad_l, const int chunks, const int pos_block)
{
    const int2 tile = tile_order(pos_block);
    const int ci = tile.x / VEC;
    const int r = tile.x % VEC;
    const int g = tile.y / CO_SPANS;
    const int co_end = (g + 1) * C_OUT_G;
    const int co0 = g * C_OUT_G + tile.y % CO_SPANS * TILE_CO;
    const int co_base = co0 + TILE_CO > co_end ? co_end - TILE_CO : co0;
    const int chunk = get_global_id(2);
    const int vpn = (L_out + VEC - 1) / VEC;
    const long total = (long)N * vpn;
    const long v_begin = total * chunk / chunks, v_end = total * (chunk + 1) / chunks;
    accv_t sums[SLIDE_PER_R][TILE_CO][SLIDE_M];
    for (int j = 0; j < SLIDE_PER_R; ++j)
        ZERO_TILE(sums[j], TILE_CO, SLIDE_M);
    for (long vs = v_begin; vs < v_end;) {
        const int n = (int)(vs / vpn);
        const int lv0 = (int)(vs - (long)n * vpn);
        const int lv1 = v_end - vs < vpn - lv0 ? lv0 + (int)(v_end - vs) : vpn;
        __global const store_t *xrow = x + ((long)n * C_IN + g * C_IN_G + ci) * L_in;
        __global const store_t *dyr = dy + ((long)n * C_OUT + co_base) * L_out;
        for (int b0 = lv0; b0 < lv1; b0 += SLIDE_SB) {
            const int b1 = lv1 - b0 < SLIDE_SB ? lv1 : b0 + SLIDE_SB;
            NO_UNROLL
            for (int j = 0; j < SLIDE_PER_R; ++j) {
                const int k_first = r + j * SLIDE_M * VEC; /* tap i of the tile: k_first + i * VEC */
                __global const store_t *xr = xrow + k_first - pad_l;
                /* position vectors whose every tap's input lies inside the row */
                const int lo_num = pad_l - k_first;
                const int lv_in_lo = lo_num <= 0 ? 0 : (lo_num + VEC - 1) / VEC;
                const int last_start = L_in - VEC + pad_l - k_first - (SLIDE_M - 1) * VEC;
                const int lv_hi_x = last_start < 0 ? 0 : last_start / VEC + 1;
                const int lv_in_hi = lv_hi_x < L_out / VEC ? lv_hi_x : L_out / VEC;
                const int mid_lo = lv_in_lo < b0 ? b0 : (lv_in_lo > b1 ? b1 : lv_in_lo);
                const int mid_hi = lv_in_hi < mid_lo ? mid_lo : (lv_in_hi > b1 ? b1 : lv_in_hi);
                accv_t acc[TILE_CO][SLIDE_M];
                UNROLL
                for (int c = 0; c < TILE_CO; ++c)
                    UNROLL
                    for (int i = 0; i < SLIDE_M; ++i)
                        acc[c][i] = sums[j][c][i];
#define SLIDE_EDGE_STEP(lv)                                                     \
                {                                                               \
                    const int l = (lv) * VEC;                                   \
                    accv_t dyv[TILE_CO];                                        \
                    UNROLL                                                      \
                    for (int c = 0; c < TILE_CO; ++c)                           \
                        dyv[c] = gather_masked(dyr + (long)c * L_out, l, 1, L_out); \
                    UNROLL                                                      \
                    for (int i = 0; i < SLIDE_M; ++i) {                         \
                        const accv_t xv = keep_lanes(gather_padded(xrow, l + k_first + i * VEC - pad_l, 1, L_in), l, L_out); \
                        UNROLL                                                  \
                        for (int c = 0; c < TILE_CO; ++c)                       \
                            acc[c][i] += dyv[c] * xv;                           \
                    }                                                           \
                }
                for (int lv = b0; lv < mid_lo; ++lv)
                    SLIDE_EDGE_STEP(lv)
                if (mid_lo < mid_hi) {
                    accv_t xw[SLIDE_M];
                    UNROLL
                    for (int i = 0; i + 1 < SLIDE_M; ++i)
                        xw[i] = LOADV(xr + (mid_lo + i) * VEC);
                    for (int lv = mid_lo; lv < mid_hi; lv += SLIDE_M) {
                        UNROLL
                        for (int s = 0; s < SLIDE_M; ++s) {
                            if (lv + s >= mid_hi)
                                break;
                            xw[(s + SLIDE_M - 1) % SLIDE_M] = LOADV(xr + (lv + s + SLIDE_M - 1) * VEC);
                            UNROLL
                            for (int c = 0; c < TILE_CO; ++c) {
                                const accv_t dyv = LOADV(dyr + (long)c * L_out + (lv + s) * VEC);
                                UNROLL
                                for (int i = 0; i < SLIDE_M; ++i)
                                    acc[c][i] += dyv * xw[(i + s) % SLIDE_M];
                            }
                        }
                    }
                }
                for (int lv = mid_hi; lv < b1; ++lv)
                    SLIDE_EDGE_STEP(lv)
                UNROLL
                for (int c = 0; c < TILE_CO; ++c)
                    UNROLL
                    for (int i = 0; i < SLIDE_M; ++i)
                        sums[j][c][i] = acc[c][i];
            }
        }
        vs += lv1 - lv0;
    }
    __global acc_t *out = partial + (long)chunk * W_SIZE;
    for (int j = 0; j < SLIDE_PER_R; ++j)
        UNROLL
        for (int c = 0; c < TILE_CO; ++c) {
            const int co = co_base + c;
            if (co < co0)
                continue;
            UNROLL
            for (int i = 0; i < SLIDE_M; ++i) {
                const int k = r + (j * SLIDE_M + i) * VEC;
                if (k < K)
                    out[(co * C_IN_G + ci) * K + k] = sum_lanes(sums[j][c][i]);
            }
        }
}
#endif

#define CI_BLOCKS ((C_IN_G + VEC - 1) / VEC)

#if STRATEGY == 0 && X_BLOCKED
#ifndef TILE_B
#define TILE_B 1 /* channel blocks per work-item (at most CI_BLOCKS): one tap's place in the tile, for K = 1 */
#endif
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void conv1d_backward_weight_blocked(__global const acc_t *restrict xb, __global const store_t *restrict dy,
                                    __global acc_t *restrict partial, const int N, const int LDB, const int L_out,
                                    const int chunks, const int pos_block)
{
    const int2 tile = tile_order(pos_block);
    const int b0 = tile.x / K_TILES * TILE_B;
    const int k0 = tile.x % K_TILES * TILE_K;
    const int g = tile.y / CO_SPANS;
    const int co_end = (g + 1) * C_OUT_G;
    const int co0 = g * C_OUT_G + tile.y % CO_SPANS * TILE_CO;
    /* tiles overhanging the last channel, channel block or tap slide back, as in the partial kernel */
    const int co_base = co0 + TILE_CO > co_end ? co_end - TILE_CO : co0;
    const int b_base = b0 + TILE_B > CI_BLOCKS ? CI_BLOCKS - TILE_B : b0;
    const int k_base = k0 + TILE_K > K ? K - TILE_K : k0;
    const int chunk = get_global_id(2);
    const long total = (long)N * L_out;
    const long p_begin = total * chunk / chunks, p_end = total * (chunk + 1) / chunks;

    accv_t acc[TILE_CO][TILE_B][TILE_K];
    for (int c = 0; c < TILE_CO; ++c)
        ZERO_TILE(acc[c], TILE_B, TILE_K);
    for (long p = p_begin; p < p_end;) {
        const int n = (int)(p / L_out);
        const int l0 = (int)(p - (long)n * L_out);
        const int l1 = p_end - p < L_out - l0 ? l0 + (int)(p_end - p) : L_out;
        __global const acc_t *xr = xb + (((long)n * GROUPS + g) * CI_BLOCKS + b_base) * LDB * VEC + k_base * DILATION * VEC;
        __global const store_t *dyr = dy + ((long)n * C_OUT + co_base) * L_out;
        for (int l = l0; l < l1; ++l) {
            accv_t xv[TILE_B][TILE_K];
            UNROLL
            for (int bb = 0; bb < TILE_B; ++bb)
                UNROLL
                for (int t = 0; t < TILE_K; ++t)
                    xv[bb][t] = *(__global const accv_t *)(xr + ((long)bb * LDB + l * STRIDE + t * DILATION) * VEC);
            UNROLL
            for (int c = 0; c < TILE_CO; ++c) {
                const acc_t d = LOAD(dyr, c * L_out + l);
                UNROLL
                for (int bb = 0; bb < TILE_B; ++bb)
                    UNROLL
                    for (int t = 0; t < TILE_K; ++t)
                        acc[c][bb][t] += d * xv[bb][t];
            }
        }
        p += l1 - l0;
    }

    __global acc_t *out = partial + (long)chunk * P_SIZE;
    UNROLL
    for (int c = 0; c < TILE_CO; ++c) {
        const int co = co_base + c;
        if (co < co0)
            continue;
        UNROLL
        for (int bb = 0; bb < TILE_B; ++bb) {
            const int b = b_base + bb;
            if (b < b0)
                continue;
            UNROLL
            for (int t = 0; t < TILE_K; ++t) {
                const int k = k_base + t;
                if (k < k0)
                    continue;
                accv_lanes lanes;
                lanes.v = acc[c][bb][t];
                UNROLL
                for (int v = 0; v < VEC; ++v)
                    if (b * VEC + v < C_IN_G)
                        out[(co * C_IN_G + b * VEC + v) * K + k] = lanes.s[v];
            }
        }
    }
}
#endif

#if STRATEGY == 1
/* four consecutive elements of a row, in the accumulation type: the __local kernels' staging loads */
typedef CAT(ACC_NAME, 4) acc4_t;
#if !defined(DTYPE_HALF)
#define LOAD4(p) (((__global const unaligned_acc4 *)(p))->v)
#else
#define LOAD4(p) vload_half4(0, p)
#endif
#endif

#if STRATEGY == 1 && !defined(DW_TK)
#define SPAN_CI ((WG_A / K_TILES) * TILE_CI)                      /* input channels per work-group */
#define CI_SPANS ((C_IN_G + SPAN_CI - 1) / SPAN_CI)
#define WIN_B ((LB - 1) * STRIDE + (K - 1) * DILATION + 1)        /* input window of a block */
#define PHASE_LEN_B ((WIN_B + STRIDE - 1) / STRIDE)
#define WIN_B_STEPS ((WIN_B + 3) / 4)                            /* staging steps of four per channel */
#if LB % 4 != 0
#error "LB must be a multiple of 4: dy rows are staged four positions at a time"
#endif
#if TILE_CI > 1
typedef CAT(ACC_NAME, TILE_CI) civ_t;
#else
typedef acc_t civ_t;
#endif
typedef union { civ_t v; acc_t s[TILE_CI]; } civ_lanes;
/* Registers of input vectors a work-item slides over the positions: stride 1, every tile's taps below K
 * and a window of at most 16 vectors; 0 where each tap loads its own vector. */
#if STRIDE == 1 && K % TILE_K == 0 && (TILE_K - 1) * DILATION < 16
#define X_SLIDE ((TILE_K - 1) * DILATION + 1)
#else
#define X_SLIDE 0
#endif
#if TILE_CO % 4 == 0 && SPAN_CO % 4 == 0
#define DY_VEC 4
#elif TILE_CO % 2 == 0 && SPAN_CO % 2 == 0
#define DY_VEC 2
#else
#define DY_VEC 1
#endif

__kernel __attribute__((reqd_work_group_size(WG_A, WG_CO, 1)))
void conv1d_backward_weight_local(__global const store_t *restrict x, __global const store_t *restrict dy,
                                  __global acc_t *restrict partial, const int N, const int L_in,
                                  const int L_out, const int pad_l, const int chunks)
{
    const int lane = get_local_id(0), row = get_local_id(1);
    const int me = row * WG_A + lane;
    const int tile = get_group_id(1);                       /* (group, channel span, input channel span) */
    const int g = tile / (CO_SPANS * CI_SPANS);
    const int co_first = g * C_OUT_G + tile / CI_SPANS % CO_SPANS * SPAN_CO;
    const int co_end = (g + 1) * C_OUT_G;
    const int ci_first = tile % CI_SPANS * SPAN_CI;         /* within the group */
    const int ci_tile = lane / K_TILES, k_first = lane % K_TILES * TILE_K;
    const int chunk = get_group_id(0);
    const int blocks = (L_out + LB - 1) / LB;               /* units per sample */
    const long units = (long)N * blocks;
    const long u_begin = units * chunk / chunks, u_end = units * (chunk + 1) / chunks;

    __local acc_t dy_tile[LB][SPAN_CO] __attribute__((aligned(sizeof(civ_t) > 4 * sizeof(acc_t) ? sizeof(civ_t) : 4 * sizeof(acc_t))));
    __local acc_t x_tile[STRIDE][PHASE_LEN_B][SPAN_CI] __attribute__((aligned(sizeof(civ_t))));
    __local const acc_t *x_tap[TILE_K];
    UNROLL
    for (int t = 0; t < TILE_K; ++t) {
        const int q = (k_first + t < K ? k_first + t : 0) * DILATION;
        x_tap[t] = &x_tile[q % STRIDE][q / STRIDE][ci_tile * TILE_CI];
    }
    civ_t total[TILE_CO][TILE_K];
    ZERO_TILE(total, TILE_CO, TILE_K);
    __local const acc_t *dy_mine = &dy_tile[0][row * TILE_CO];
    for (long u = u_begin; u < u_end; ++u) {
        const int n = (int)(u / blocks), l0 = (int)(u % blocks) * LB;
        const int count = L_out - l0 < LB ? L_out - l0 : LB;
        /* Both tiles four positions per work-item per step, one vector load where all four lie inside the
         * row (written out here: a helper call is not inlined by every compiler). */
        for (int idx = me; idx < SPAN_CO * (LB / 4); idx += WG_A * WG_CO) {
            const int o = idx / (LB / 4), j0 = idx % (LB / 4) * 4;
            acc4_t v = 0;
            if (co_first + o < co_end) {
                __global const store_t *src = dy + ((long)n * C_OUT + co_first + o) * L_out + l0;
                if (j0 + 4 <= count) {
                    v = LOAD4(src + j0);
                } else {
                    UNROLL
                    for (int e = 0; e < 4; ++e)
                        ((acc_t *)&v)[e] = j0 + e < count ? LOAD(src, j0 + e) : (acc_t)0;
                }
            }
            dy_tile[j0][o] = v.s0;
            dy_tile[j0 + 1][o] = v.s1;
            dy_tile[j0 + 2][o] = v.s2;
            dy_tile[j0 + 3][o] = v.s3;
        }
        const int win0 = l0 * STRIDE - pad_l;
        for (int idx = me; idx < SPAN_CI * WIN_B_STEPS; idx += WG_A * WG_CO) {
            const int c = idx / WIN_B_STEPS, j0 = idx % WIN_B_STEPS * 4;
            acc4_t v = 0;
            if (ci_first + c < C_IN_G) {
                __global const store_t *src = x + ((long)n * C_IN + g * C_IN_G + ci_first + c) * L_in;
                const int i = win0 + j0;
                if (i >= 0 && i + 4 <= L_in) {
                    v = LOAD4(src + i);
                } else {
                    UNROLL
                    for (int e = 0; e < 4; ++e)
                        ((acc_t *)&v)[e] = load_padded(src, i + e, L_in);
                }
            }
            UNROLL
            for (int e = 0; e < 4; ++e)
                if (WIN_B % 4 == 0 || j0 + e < WIN_B)
                    x_tile[(j0 + e) % STRIDE][(j0 + e) / STRIDE][c] = ((acc_t *)&v)[e];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        civ_t part[TILE_CO][TILE_K];
        ZERO_TILE(part, TILE_CO, TILE_K);
        /* Pointers step one position per iteration: no index arithmetic inside the loop. */
        __local const acc_t *dyp = dy_mine;
#if X_SLIDE
        /* Stride 1 with whole tap tiles: tap t of position j is window element j + t*DILATION, so the
         * vectors slide through registers and each position loads one new input vector. */
        __local const acc_t *xp = x_tap[0];
        civ_t xw[X_SLIDE];
        UNROLL
        for (int w = 0; w < X_SLIDE - 1; ++w)
            xw[w] = *(__local const civ_t *)(xp + w * SPAN_CI);
        xp += (X_SLIDE - 1) * SPAN_CI;
#endif
        _Pragma("unroll 4")
        for (int j = 0; j < count; ++j) {
            civ_t dy_splat[TILE_CO]; /* broadcast once per position, not once per tap */
            UNROLL
            for (int cv = 0; cv < TILE_CO; cv += DY_VEC) {
#if DY_VEC > 1
                const CAT(ACC_NAME, DY_VEC) d = *(__local const CAT(ACC_NAME, DY_VEC) *)(dyp + cv);
                UNROLL
                for (int e = 0; e < DY_VEC; ++e) {
                    const acc_t de = ((const acc_t *)&d)[e];
                    dy_splat[cv + e] = (civ_t)de;
                }
#else
                dy_splat[cv] = (civ_t)dyp[cv];
#endif
            }
            dyp += SPAN_CO;
#if X_SLIDE
            xw[X_SLIDE - 1] = *(__local const civ_t *)xp;
            xp += SPAN_CI;
            UNROLL
            for (int t = 0; t < TILE_K; ++t)
                UNROLL
                for (int c = 0; c < TILE_CO; ++c)
                    part[c][t] += dy_splat[c] * xw[t * DILATION];
            UNROLL
            for (int w = 0; w < X_SLIDE - 1; ++w)
                xw[w] = xw[w + 1];
#else
            UNROLL
            for (int t = 0; t < TILE_K; ++t) {
                if (K % TILE_K == 0 || k_first + t < K) {
                    const civ_t xv = *(__local const civ_t *)(x_tap[t] + j * SPAN_CI);
                    UNROLL
                    for (int c = 0; c < TILE_CO; ++c)
                        part[c][t] += dy_splat[c] * xv;
                }
            }
#endif
        }
        ADD_TILE(total, part, TILE_CO, TILE_K);
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    __global acc_t *out = partial + (long)chunk * P_SIZE;
    UNROLL
    for (int c = 0; c < TILE_CO; ++c) {
        const int co = co_first + row * TILE_CO + c;
        if (co >= co_end)
            continue;
        UNROLL
        for (int t = 0; t < TILE_K; ++t) {
            const int k = k_first + t;
            if (k >= K)
                continue;
            /* read through a copy: lanes read from the totals themselves would keep them as scalars,
             * one extract per lane at every block's fold */
            civ_lanes lanes;
            lanes.v = total[c][t];
            UNROLL
            for (int e = 0; e < TILE_CI; ++e) {
                const int ci = ci_first + ci_tile * TILE_CI + e;
                if (ci < C_IN_G)
                    out[(co * C_IN_G + ci) * K + k] = lanes.s[e];
            }
        }
    }
}
#endif

#if STRATEGY == 1 && defined(DW_TK)
/* conv1d_backward_weight_depthwise: one input channel per group, stride 1 (the host's choice). A
 * work-group owns DW_CH channels (each with its C_OUT_G output channels; row c of the work-group is one)
 * and one chunk of the (sample, block of LB positions) units, LB = DW_WP x DW_RUN x 4. Per unit it stages
 * each channel's input window of the block in __local vectors of four positions (padding resolved, zeros
 * past the window). Work-item (tap tile kt, position lane p) of row c owns the DW_RUN vectors from
 * position p x DW_RUN x 4 and the taps kt x DW_TK ...:
 *
 *     vector i:  dy[co][4i .. 4i+3] (one global vector per output channel)
 *                x  window[4i + k*DILATION .. +3] (two staged vectors in registers, one lane shuffle)
 *
 * The window's vectors slide through registers, one __local load per vector of positions; taps are
 * summed in registers (acc[m][t]: four position lanes each) and, after the chunk, over the position
 * lanes in __local memory in a fixed order. Tap tiles past K compute on and are never stored; the host
 * keeps DW_TK x DILATION a multiple of 4 where there are several, so every tile starts on a vector. */
#define DW_WG (DW_WP * DW_KT) /* work-items per channel */
#define DW_NWIN (((DW_TK - 1) * DILATION + 3) / 4 + 1)       /* window vectors per work-item */
#define DW_XV (LB / 4 + (DW_KT - 1) * DW_TK * DILATION / 4 + DW_NWIN - 1) /* staged vectors per unit */
#define DW_WIN (LB + (K - 1) * DILATION)                      /* input elements a block reads */
#if C_IN_G != 1 || STRIDE != 1 || LB != DW_WP * DW_RUN * 4 || (DW_KT > 1 && DW_TK * DILATION % 4 != 0)
#error "the depthwise weight gradient needs one input channel per group, stride 1 and whole vector tiles"
#endif
/* window elements o .. o+3 from the registers win[] (o a constant once the tap loop unrolls): one lane
 * shuffle of two vectors where the compiler has the builtin, swizzles otherwise */
#if HAS_SHUFFLEVECTOR
#define WINDOW4(win, o)                                                                          \
    ((o) % 4 == 0 ? win[(o) / 4]                                                                 \
     : (o) % 4 == 1 ? __builtin_shufflevector(win[(o) / 4], win[(o) / 4 + 1], 1, 2, 3, 4)         \
     : (o) % 4 == 2 ? __builtin_shufflevector(win[(o) / 4], win[(o) / 4 + 1], 2, 3, 4, 5)         \
                    : __builtin_shufflevector(win[(o) / 4], win[(o) / 4 + 1], 3, 4, 5, 6))
#else
#define WINDOW4(win, o)                                                                          \
    ((o) % 4 == 0 ? win[(o) / 4]                                                                 \
     : (o) % 4 == 1 ? (acc4_t)(win[(o) / 4].s123, win[(o) / 4 + 1].s0)                            \
     : (o) % 4 == 2 ? (acc4_t)(win[(o) / 4].s23, win[(o) / 4 + 1].s01)                            \
                    : (acc4_t)(win[(o) / 4].s3, win[(o) / 4 + 1].s012))
#endif

__kernel __attribute__((reqd_work_group_size(DW_WG, DW_CH, 1)))
void conv1d_backward_weight_depthwise(__global const store_t *restrict x, __global const store_t *restrict dy,
                                      __global acc_t *restrict partial, const int N, const int L_in,
                                      const int L_out, const int pad_l, const int chunks)
{
    const int me = get_local_id(0), row = get_local_id(1);
    const int kt = me / DW_WP, p = me % DW_WP;
    const int g0 = get_group_id(1) * DW_CH;                 /* the work-group's first channel */
    const int g = g0 + row;
    const int chunk = get_group_id(0);
    const int blocks = (L_out + LB - 1) / LB;
    const long units = (long)N * blocks;
    const long u_begin = units * chunk / chunks, u_end = units * (chunk + 1) / chunks;
    const int s = p * DW_RUN * 4;                           /* the run's first position in the block */

    __local acc4_t x_win[DW_CH][DW_XV];
    __local acc_t sums[DW_CH][C_OUT_G * DW_TK * DW_KT][DW_WP];
    __local const acc4_t *x_mine = &x_win[row][s / 4 + kt * DW_TK * DILATION / 4];
    acc4_t acc[C_OUT_G][DW_TK];
    ZERO_TILE(acc, C_OUT_G, DW_TK);
    for (long u = u_begin; u < u_end; ++u) {
        const int n = (int)(u / blocks), l0 = (int)(u % blocks) * LB;
        const int count = L_out - l0 < LB ? L_out - l0 : LB;
        const int win0 = l0 - pad_l;
        /* vectors [v_lo, v_hi) lie inside both the row and the window: one load each, one range test */
        const int v_lo = win0 >= 0 ? 0 : (3 - win0) / 4;
        const int row_end = L_in - win0 < 0 ? 0 : (L_in - win0) / 4;
        const int v_hi = row_end < DW_WIN / 4 ? row_end : DW_WIN / 4;
        const uint inner = v_hi > v_lo ? (uint)(v_hi - v_lo) : 0u;
        /* each row stages its own channel (rows past the last channel the last one, unread) */
        __global const store_t *xr = x + ((long)n * GROUPS + (g < GROUPS ? g : GROUPS - 1)) * L_in;
        for (int v = me; v < DW_XV; v += DW_WG) {
            const int i = win0 + v * 4;
            acc4_t q;
            if ((uint)(v - v_lo) < inner) {
                q = LOAD4(xr + i);
            } else {
                UNROLL
                for (int e = 0; e < 4; ++e)
                    ((acc_t *)&q)[e] = v * 4 + e < DW_WIN ? load_padded(xr, i + e, L_in) : (acc_t)0;
            }
            x_win[row][v] = q;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        const int left = count - s;
        const int full = left <= 0 ? 0 : (left >= DW_RUN * 4 ? DW_RUN : left / 4);
        /* rows past the last channel run over the last one and store nothing */
        __global const store_t *dyr = dy + ((long)n * C_OUT + (g < GROUPS ? g : GROUPS - 1) * C_OUT_G) * L_out + l0 + s;
        acc4_t win[DW_NWIN];
        UNROLL
        for (int w = 0; w < DW_NWIN - 1; ++w)
            win[w] = x_mine[w];
        for (int i = 0; i < full; ++i) {
            win[DW_NWIN - 1] = x_mine[i + DW_NWIN - 1];
            acc4_t d[C_OUT_G];
            UNROLL
            for (int m = 0; m < C_OUT_G; ++m)
                d[m] = LOAD4(dyr + (long)m * L_out + i * 4);
            UNROLL
            for (int t = 0; t < DW_TK; ++t) {
                const acc4_t xk = WINDOW4(win, t * DILATION);
                UNROLL
                for (int m = 0; m < C_OUT_G; ++m)
                    acc[m][t] += d[m] * xk;
            }
            UNROLL
            for (int w = 0; w < DW_NWIN - 1; ++w)
                win[w] = win[w + 1];
        }
        if (full < DW_RUN && left > full * 4) {
            /* A sample's last, partial vector: lanes past the row have dy 0 and x 0, both selected (dy 0
             * alone would turn an Inf or NaN x there into a NaN product). */
            const int i = full;
            const CAT(LANE_INT, 4) keep = (CAT(LANE_INT, 4))(0, 1, 2, 3) < (CAT(LANE_INT, 4))(left - i * 4);
            win[DW_NWIN - 1] = x_mine[i + DW_NWIN - 1];
            acc4_t d[C_OUT_G];
            UNROLL
            for (int m = 0; m < C_OUT_G; ++m)
                UNROLL
                for (int e = 0; e < 4; ++e)
                    ((acc_t *)&d[m])[e] = i * 4 + e < left ? LOAD(dyr, (long)m * L_out + i * 4 + e) : (acc_t)0;
            UNROLL
            for (int t = 0; t < DW_TK; ++t) {
                const acc4_t xk = select((acc4_t)0, WINDOW4(win, t * DILATION), keep);
                UNROLL
                for (int m = 0; m < C_OUT_G; ++m)
                    acc[m][t] += d[m] * xk;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    UNROLL
    for (int m = 0; m < C_OUT_G; ++m)
        UNROLL
        for (int t = 0; t < DW_TK; ++t)
            sums[row][(m * DW_KT + kt) * DW_TK + t][p] = ((acc[m][t].s0 + acc[m][t].s1) + acc[m][t].s2) + acc[m][t].s3;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (g >= GROUPS)
        return;
    __global acc_t *out = partial + (long)chunk * P_SIZE + (long)g * C_OUT_G * K;
    for (int idx = me; idx < C_OUT_G * DW_KT * DW_TK; idx += DW_WG) {
        const int m = idx / (DW_KT * DW_TK), k = idx % (DW_KT * DW_TK);
        if (k >= K)
            continue;
        acc_t sum = 0;
        for (int q = 0; q < DW_WP; ++q)
            sum += sums[row][idx][q];
        out[m * K + k] = sum;
    }
}
#endif

#ifdef KERNEL_CONV1D_BACKWARD_WEIGHT_COLUMNS
/* Grid: dim 0 = block of COLS_STEPS channel tiles, which the work-item takes one after the other while its
 * panel (positions x SPAN entries, contiguous) stays in cache; dim 1 = g * PANELS + panel; work-groups of
 * one item. A tile overhanging the group's last channel slides back and stores only its own channels.
 * Runtime arguments: N, L_out, accumulate (dw += the sums). */
#ifndef COLS_CO
#define COLS_CO 4 /* output channels per tile (at most C_OUT_G) */
#endif
#ifndef COLS_STEPS
#define COLS_STEPS 8 /* channel tiles per work-item */
#endif
#define COLS_R (C_IN_G * K)
#define COLS_RV (SPAN / VEC) /* vectors of entries per tile */
__kernel EXPLICIT_VECTORS void conv1d_backward_weight_columns(__global const acc_t *restrict xc,
                                                              __global const store_t *restrict dy,
                                                              __global store_t *restrict dw, const int N,
                                                              const int L_out, const int accumulate)
{
    const int g = get_global_id(1) / PANELS;
    const int r0 = (get_global_id(1) - g * PANELS) * SPAN;
    const int co_end = (g + 1) * C_OUT_G;
    __global const acc_t *panel = xc + (long)get_global_id(1) * N * L_out * SPAN;
    for (int step = 0; step < COLS_STEPS; ++step) {
        const int co0 = g * C_OUT_G + (get_global_id(0) * COLS_STEPS + step) * COLS_CO;
        if (co0 >= co_end)
            return;
        const int co_base = co0 + COLS_CO > co_end ? co_end - COLS_CO : co0;
        __global const acc_t *xq = panel;
        accv_t acc[COLS_CO][COLS_RV];
        ZERO_TILE(acc, COLS_CO, COLS_RV);
        for (int n = 0; n < N; ++n) {
            __global const store_t *dyn = dy + ((long)n * C_OUT + co_base) * L_out;
            for (int l = 0; l < L_out; ++l, xq += SPAN) {
                accv_t xv[COLS_RV];
                UNROLL
                for (int j = 0; j < COLS_RV; ++j)
                    xv[j] = *(__global const accv_t *)(xq + j * VEC);
                UNROLL
                for (int c = 0; c < COLS_CO; ++c) {
                    const acc_t d = LOAD(dyn, c * L_out + l);
                    UNROLL
                    for (int j = 0; j < COLS_RV; ++j)
                        acc[c][j] += d * xv[j];
                }
            }
        }
        UNROLL
        for (int c = 0; c < COLS_CO; ++c) {
            if (co_base + c < co0)
                continue;
            __global store_t *row = dw + (long)(co_base + c) * COLS_R;
            UNROLL
            for (int j = 0; j < COLS_RV; ++j) {
                const int r = r0 + j * VEC;
#ifdef HAS_STOREV
                if (r + VEC <= COLS_R) {
                    STOREV(row + r, accumulate ? LOADV(row + r) + acc[c][j] : acc[c][j]);
                    continue;
                }
#endif
                accv_lanes lanes;
                lanes.v = acc[c][j];
                UNROLL
                for (int v = 0; v < VEC; ++v)
                    if (r + v < COLS_R)
                        STORE(row, r + v, accumulate ? LOAD(row, r + v) + lanes.s[v] : lanes.s[v]);
            }
        }
    }
}
#endif
