/* conv1d_forward.cl: grouped, strided, dilated 1-D convolution with fused padding and bias.
 *
 *   y[n, co, l] = bias[co] + sum_{ci < C_IN_G, k < K} w[co, ci, k] * xpad[n, g*C_IN_G + ci, l*STRIDE + k*DILATION - pad_l]
 *   with g = co / C_OUT_G; xpad reads through load_padded() (PAD_MODE) outside [0, L_in).
 *
 * Tile picture (one work-group; output positions in grid dim 0, output-channel tiles in dim 1, batch in
 * dim 2; tile_order() in common.cl gives the order work-groups visit them):
 *
 *   STRATEGY 0 (register): no barriers; every work-item reads its inputs straight from global memory.
 *     A work-item owns TILE_R x TILE_P register tiles of TILE_CO channels x TILE_L*VEC positions:
 *
 *        positions:  | tile p=0: TILE_L vectors of VEC | tile p=1 | ... | tile TILE_P-1 |   (contiguous)
 *        channels:   r=0: TILE_CO rows, r=1: the next TILE_CO rows, ... (TILE_R tiles)
 *
 *     A tile whose whole input window lies inside [0, L_in) takes the unguarded path.
 *   STRATEGY 1 (local): a WG_L x WG_CO work-group owns SPAN_CO channels x SPAN_L positions; per chunk of
 *     CI_TILE input channels it stages the input window (split into stride phases, in VEC copies shifted
 *     by one position) and the weights in __local memory. Work-item (lane, row) keeps a micro-tile of
 *     TILE_CO channels x TILE_L vectors of VEC positions, vector t at (t * WG_L + lane) * VEC:
 *
 *        positions:  | lane 0 | lane 1 | ... | lane WG_L-1 | lane 0 | lane 1 | ...   (vectors of VEC)
 *                      t = 0                               t = 1
 *        channels:   row r: TILE_CO consecutive channels from co_first + r * TILE_CO
 *
 *     Every tap reads its VEC positions as one aligned vector from the copy its offset selects, and
 *     TILE_CO weights as vectors of 4.
 *
 * conv1d_forward_depthwise_local (end of file; KERNEL_CONV1D_FORWARD_DEPTHWISE_LOCAL) replaces STRATEGY 1 for
 * stride-1 layers of one input channel and up to 8 outputs per group (and their input gradients as
 * forwards, W_FLIPPED): a work-group stages a few groups' windows once, and a work-item slides its comb of
 * positions through registers over every tap and output channel of its group.
 *
 * conv1d_forward_channel_lanes (end of file; KERNEL_CONV1D_FORWARD_CHANNEL_LANES) replaces STRATEGY 0 for
 * rows of a few vectors or fewer: lanes along output channels, positions counted over the whole batch.
 * conv1d_forward_columns (end of file; KERNEL_CONV1D_FORWARD_COLUMNS) serves short rows with many output
 * channels: dot products along weight rows, over pad_rows.cl's columns of the input.
 * conv1d_forward_slide (end of file) serves stride-1 layers of long kernels on CPUs: taps VEC apart, whose
 * input vectors slide through registers, one load per tap.
 *
 * Macros read: C_IN_G, C_OUT_G, GROUPS, K, STRIDE, DILATION, PAD_MODE, dtype (common.cl) and
 * the tunables below. Runtime arguments: L_in, L_out, pad_l, has_bias; y_row, y_offset, w_tap_last for the
 * input-gradient forms (W_FLIPPED, Y_STEP); other launches pass L_out, 0, K - 1;
 * pos_block (tile_order() in common.cl).
 * Each kernel is compiled only under KERNEL_<its name> (Device.kernel defines it): a program holds the
 * kernel it launches, not its neighbours.
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
#ifndef CI_TILE
#define CI_TILE 4 /* input channels staged per __local chunk (STRATEGY 1) */
#endif
#ifndef TILE_R
#define TILE_R 1 /* register tiles per work-item along channels (STRATEGY 0) */
#endif
#ifndef TILE_P
#define TILE_P 1 /* register tiles per work-item along positions (STRATEGY 0) */
#endif
#ifndef X_PHASES
#define X_PHASES 1 /* STRIDE: x is pad_rows.cl's phase-split staged copy (rows of STRIDE phases) */
#endif
#ifndef W_FLIPPED
#define W_FLIPPED 0 /* 1: this is the forward form of a layer's input gradient (STRATEGY 1) or of one stride
                       phase of it (either strategy), tap k being the layer's tap w_tap_last - k * W_TAP_STEP;
                       STRATEGY 1 reads w, the layer's weight, flipped and transposed in place, STRATEGY 0
                       flip_weights.cl's copy of it */
#endif
#ifndef W_ROW_TAPS
#define W_ROW_TAPS K /* taps per row of w in memory (W_FLIPPED: the layer's K) */
#endif
#ifndef W_TAP_STEP
#define W_TAP_STEP 1 /* W_FLIPPED: the layer's taps between two taps of this kernel */
#endif
#ifndef Y_STEP
#define Y_STEP 1 /* output l goes to y[l * Y_STEP + y_offset] of rows y_row long (one stride phase of an
                    input gradient); the register strategy reads y_row and y_offset only above 1 */
#endif
#ifndef CI_CHUNK
#define CI_CHUNK 32 /* input channels per cache chunk of the reduction (STRATEGY 0) */
#endif

/* Output positions l .. l + VEC - 1 of row yr (L_out long, positions Y_STEP apart) from vector x: one
 * vector store where they lie inside the row and the type has one (with few products per output, C_in =
 * 1, element-wise stores would dominate), else lane by lane up to the row's end. */
static inline void store_positions(__global store_t *yr, const int l, const accv_t x, const int L_out)
{
#if defined(HAS_STOREV) && Y_STEP == 1
    if (l + VEC <= L_out) {
        STOREV(yr + l, x);
        return;
    }
#endif
    accv_lanes lanes;
    lanes.v = x;
    UNROLL
    for (int v = 0; v < VEC; ++v)
        if (l + v < L_out)
            STORE(yr, (l + v) * Y_STEP, lanes.s[v]);
}

/* Position q = n * L_out + l of the whole batch (short rows counted together): its output at channel
 * g * C_OUT_G + co lies at [co * L_out] from the pointer returned. */
static inline __global store_t *group_output_of_position(__global store_t *y, const int q, const int g,
                                                        const int L_out)
{
    const int n = q / L_out;
    return y + ((long)n * (C_OUT_G * GROUPS) + g * C_OUT_G) * L_out + (q - n * L_out);
}

#define CI_BLOCK (SUM_BLOCK / K > 0 ? SUM_BLOCK / K : 1) /* input channels per blocked partial sum */
#define CHUNK (CI_CHUNK < CI_BLOCK ? CI_CHUNK : CI_BLOCK)
#define C_IN (C_IN_G * GROUPS)
#define C_OUT (C_OUT_G * GROUPS)
/* A tile of TILE_CO channels that would pass its group's last channel (co_end) slides back to end on it;
 * the channels it then shares with its neighbour are that neighbour's to store. */
#define TILE_BASE(co0) ((co0) + TILE_CO > co_end ? co_end - TILE_CO : (co0))
/* Kernels of one channel tile per work-item along dim 1 (aligned runs, sliding taps): its group g, the
 * group's end co_end, the tile's first channel co0 and its slid-back start co_base. */
#define TILES_PER_GROUP ((C_OUT_G + TILE_CO - 1) / TILE_CO)
#define CHANNEL_TILE_OF_ITEM                                                    \
    const int g = get_global_id(1) / TILES_PER_GROUP;                           \
    const int co_end = (g + 1) * C_OUT_G;                                       \
    const int co0 = g * C_OUT_G + get_global_id(1) % TILES_PER_GROUP * TILE_CO; \
    const int co_base = TILE_BASE(co0)
#if STRATEGY == 0
#define SPAN_L (WG_L * TILE_P * TILE_L * VEC)                    /* positions per work-group */
#define SPAN_CO (WG_CO * TILE_R * TILE_CO)                       /* channels per work-group */
#else
#define SPAN_L (WG_L * TILE_L * VEC)
#define SPAN_CO (WG_CO * TILE_CO)
#endif
#define CO_SPANS ((C_OUT_G + SPAN_CO - 1) / SPAN_CO)             /* work-group rows per group */
#define WIN ((SPAN_L - 1) * STRIDE + (K - 1) * DILATION + 1)     /* input window of a work-group */
#if STRATEGY == 1
#define WIN_VECTORS ((WIN + VEC - 1) / VEC)                              /* staging steps per channel */
/* Elements per phase of the window, rounded up to whole vectors: rows of the shifted copies stay aligned. */
#define PHASE_LEN ((((WIN_VECTORS * VEC + STRIDE - 1) / STRIDE) + VEC - 1) / VEC * VEC)
/* wv[0 .. TILE_CO) = the work-item's channels of one w_tile row, in vector loads where TILE_CO allows. */
#if TILE_CO % 4 == 0 && SPAN_CO % 4 == 0
#define W_VEC 4
#elif TILE_CO % 2 == 0 && SPAN_CO % 2 == 0
#define W_VEC 2
#else
#define W_VEC 1
#endif
#if W_VEC > 1
#define LOAD_W_TILE(wv, p)                                                      \
    UNROLL                                                                      \
    for (int cv = 0; cv < TILE_CO; cv += W_VEC) {                               \
        const CAT(ACC_NAME, W_VEC) w_vector = *(__local const CAT(ACC_NAME, W_VEC) *)((p) + cv); \
        UNROLL                                                                  \
        for (int e = 0; e < W_VEC; ++e)                                         \
            wv[cv + e] = ((const acc_t *)&w_vector)[e];                         \
    }
#else
#define LOAD_W_TILE(wv, p)                                                      \
    UNROLL                                                                      \
    for (int cv = 0; cv < TILE_CO; ++cv)                                        \
        wv[cv] = (p)[cv];
#endif
#endif

#ifdef KERNEL_CONV1D_FORWARD
__kernel __attribute__((reqd_work_group_size(WG_L, WG_CO, 1)))
void conv1d_forward(__global const store_t *restrict x, __global const store_t *restrict w,
                    __global const store_t *restrict bias, __global store_t *restrict y,
                    const int L_in, const int L_out, const int pad_l, const int has_bias,
                    const int y_row, const int y_offset, const int w_tap_last, const int pos_block)
{
    const int lane = get_local_id(0);
    const int row = get_local_id(1);
    const int2 tile = tile_order(pos_block); /* (position group, channel tile) */
    const int span = tile.y;
    const int g = span / CO_SPANS;
    const int co_first = g * C_OUT_G + (span % CO_SPANS) * SPAN_CO; /* first channel of the work-group */
    const int co_end = (g + 1) * C_OUT_G;
    const int n = get_global_id(2);
    const int l_first = tile.x * SPAN_L; /* first position of the work-group */
    const int win0 = l_first * STRIDE - pad_l;      /* first input index of its window */
    __global const store_t *xg = x + ((long)n * C_IN + g * C_IN_G) * L_in;

#if STRATEGY == 0
    /* Work-item: TILE_R x TILE_P register tiles, each TILE_CO consecutive channels x TILE_L vectors of VEC
     * consecutive positions. The reduction runs in chunks of CHUNK input channels; inside a chunk the
     * work-item visits all its tiles, so the chunk's weights (TILE_R*TILE_CO x CHUNK x K) and input windows
     * (CHUNK x the work-item's span) are reused from the core's first-level cache. Every tile's sum lives
     * in part[] while its chunk runs and is then added to total[] (blocked summation: a reduction of 10^5
     * terms keeps float32 accuracy). A register tile that would overhang its group's last channel slides
     * back to end on it; the rows it shares with the tile before are that tile's to store. */
    const int l0 = l_first + lane * (TILE_P * TILE_L * VEC);
#if X_PHASES > 1
    const int phase_length = L_in / X_PHASES;
#endif
    accv_t total[TILE_R][TILE_P][TILE_CO][TILE_L];
    for (int r = 0; r < TILE_R; ++r)
        for (int p = 0; p < TILE_P; ++p)
            UNROLL
            for (int c = 0; c < TILE_CO; ++c)
                UNROLL
                for (int t = 0; t < TILE_L; ++t)
                    total[r][p][c][t] = 0;

#define WIN_T ((TILE_L * VEC - 1) * STRIDE + (K - 1) * DILATION + 1) /* input window of one register tile */
#if X_PHASES > 1
/* Phase-split staged rows (pad_rows.cl): padded index q lives at phase q % STRIDE, offset q / STRIDE, so
 * the positions of a vector are consecutive; i0 = l0 * STRIDE here (pad_l = 0). */
#define LOAD_X_INTERIOR(xr, i) LOADV(xr + ((i) % STRIDE) * phase_length + l0p + (i) / STRIDE)
#elif STRIDE == 1
#define LOAD_X_INTERIOR(xr, i) LOADV(xr + i0 + (i))
#define LOAD_X_EDGE(xr, i) LOADV_PRIVATE(window + (i))
#else
#define LOAD_X_INTERIOR(xr, i) gather(xr + i0 + (i), STRIDE)
#define LOAD_X_EDGE(xr, i) gather_private(window + (i), STRIDE)
#endif
#define STAGE_NOTHING
#define STAGE_WINDOW                                                            \
    for (int j = 0; j < WIN_T; ++j)                                             \
        window[j] = load_padded(xr, i0 + j, L_in);
#define FORWARD_ACCUMULATE(LOAD_X, STAGE)                                       \
    for (int ci = cb; ci < cb_end; ++ci, xr += L_in, wp += W_CI_STEP) {         \
        STAGE                                                                   \
        UNROLL_TAPS                                                             \
        for (int k = 0; k < K; ++k) {                                           \
            accv_t xv[TILE_L];                                                  \
            UNROLL                                                              \
            for (int t = 0; t < TILE_L; ++t)                                    \
                xv[t] = LOAD_X(xr, t * VEC * STRIDE + k * DILATION);            \
            UNROLL                                                              \
            for (int c = 0; c < TILE_CO; ++c) {                                 \
                const acc_t wv = LOAD(wp, W_AT(c, k));                          \
                UNROLL                                                          \
                for (int t = 0; t < TILE_L; ++t)                                \
                    part[c][t] += wv * xv[t];                                   \
            }                                                                   \
        }                                                                       \
    }
#if W_FLIPPED
/* One stride phase of an input gradient (Y_STEP): w is flip_weights.cl's copy of the layer's weight (rows
 * of W_ROW_TAPS taps in forward order), and tap k of this kernel is the layer's tap w_tap_last - k *
 * W_TAP_STEP, at W_ROW_TAPS - 1 - w_tap_last + k * W_TAP_STEP in its row. (Read in place, transposed, a
 * step along this kernel's input channels crosses a whole row of the layer's channels: rows of 4 KiB
 * thrashed one cache set.) */
#define W_CI_STEP W_ROW_TAPS
#define W_AT(c, k) ((c) * (C_IN_G * W_ROW_TAPS) + (k) * W_TAP_STEP)
#define W_FIRST(co0, ci) (w + ((long)(co0) * C_IN_G + (ci)) * W_ROW_TAPS + W_ROW_TAPS - 1 - w_tap_last)
#else
#define W_CI_STEP K
#define W_AT(c, k) ((c) * (C_IN_G * K) + (k))
#define W_FIRST(co0, ci) (w + ((long)(co0) * C_IN_G + (ci)) * K)
#endif
/* Register tile r's first channel (TILE_BASE: where it starts). */
#define TILE_FIRST(r) (co_first + (row * TILE_R + (r)) * TILE_CO)
    acc_t window[WIN_T];
    for (int cb = 0; cb < C_IN_G; cb += CHUNK) {
        const int cb_end = cb + CHUNK < C_IN_G ? cb + CHUNK : C_IN_G;
        NO_UNROLL
        for (int r = 0; r < TILE_R && TILE_FIRST(r) < co_end; ++r) {
            const int co_base = TILE_BASE(TILE_FIRST(r));
            NO_UNROLL
            for (int p = 0; p < TILE_P; ++p) {
                if (l0 + p * (TILE_L * VEC) >= L_out)
                    break; /* tiles past the row's end, where the span (fitted to the length's class) overhangs it */
                const int i0 = (l0 + p * (TILE_L * VEC)) * STRIDE - pad_l;
                __global const store_t *xr = xg + (long)cb * L_in;
                __global const store_t *wp = W_FIRST(co_base, cb);
                accv_t part[TILE_CO][TILE_L];
                ZERO_TILE(part, TILE_CO, TILE_L);
#if X_PHASES > 1
                const int l0p = l0 + p * (TILE_L * VEC); /* staged rows hold every tile's window */
                FORWARD_ACCUMULATE(LOAD_X_INTERIOR, STAGE_NOTHING)
#else
                if (i0 >= 0 && i0 + (TILE_L * VEC - 1) * STRIDE + (K - 1) * DILATION < L_in) {
                    FORWARD_ACCUMULATE(LOAD_X_INTERIOR, STAGE_NOTHING)
                } else {
                    FORWARD_ACCUMULATE(LOAD_X_EDGE, STAGE_WINDOW)
                }
#endif
                ADD_TILE(total[r][p], part, TILE_CO, TILE_L);
            }
        }
    }

    for (int r = 0; r < TILE_R && TILE_FIRST(r) < co_end; ++r) {
        const int co0 = TILE_FIRST(r), co_base = TILE_BASE(co0);
        UNROLL
        for (int c = 0; c < TILE_CO; ++c) {
            const int co = co_base + c;
            if (co < co0)
                continue;
            const acc_t b = BIAS(co);
#if Y_STEP > 1
            __global store_t *yr = y + ((long)n * C_OUT + co) * y_row + y_offset;
#else
            __global store_t *yr = y + ((long)n * C_OUT + co) * L_out;
#endif
            for (int p = 0; p < TILE_P; ++p)
                UNROLL
                for (int t = 0; t < TILE_L; ++t) {
                    store_positions(yr, l0 + (p * TILE_L + t) * VEC, total[r][p][c][t] + b, L_out);
                }
        }
    }
#else
    /* Work-item (lane, row): TILE_CO consecutive channels co0.. x TILE_L vectors of VEC consecutive
     * positions, vector t at l_first + (t * WG_L + lane) * VEC: neighbouring lanes read and write
     * neighbouring vectors. Per chunk of CI_TILE input channels the work-group stages
     *   x_tile[c][s][r][i] = window element (i + s) * STRIDE + r   (phase r of the window, shifted by s)
     *   w_tile[c * K + k][o] = w[co_first + o, ci0 + c, k]
     * Tap k of output position p reads phase (k*DILATION) % STRIDE at offset p + (k*DILATION) / STRIDE;
     * that offset is a multiple of VEC plus s, so the shifted copy s serves it with an aligned vector
     * load. Phases, offsets and shifts are compile-time constants of k: no division in the inner loop.
     * Padding is resolved while staging. */
    accv_t acc[TILE_CO][TILE_L];
    ZERO_TILE(acc, TILE_CO, TILE_L);
    __local acc_t x_tile[CI_TILE][VEC][STRIDE][PHASE_LEN] __attribute__((aligned(sizeof(accv_t))));
    __local acc_t w_tile[CI_TILE * K][SPAN_CO] __attribute__((aligned(sizeof(accv_t))));
    const int co0 = co_first + row * TILE_CO;
    const int me = row * WG_L + lane;
    for (int ci0 = 0; ci0 < C_IN_G; ci0 += CI_TILE) {
        /* The window, VEC elements per work-item per step: one vector load where it lies inside the row. */
        for (int idx = me; idx < CI_TILE * WIN_VECTORS; idx += WG_L * WG_CO) {
            const int c = idx / WIN_VECTORS, j0 = (idx % WIN_VECTORS) * VEC;
            __global const store_t *xr = xg + (long)(ci0 + c) * L_in;
            acc_t v[VEC];
            if (ci0 + c < C_IN_G && win0 + j0 >= 0 && win0 + j0 + VEC <= L_in) {
                accv_lanes lanes;
                lanes.v = LOADV(xr + win0 + j0);
                UNROLL
                for (int e = 0; e < VEC; ++e)
                    v[e] = lanes.s[e];
            } else {
                UNROLL
                for (int e = 0; e < VEC; ++e)
                    v[e] = ci0 + c < C_IN_G ? load_padded(xr, win0 + j0 + e, L_in) : (acc_t)0;
            }
            UNROLL
            for (int e = 0; e < VEC; ++e) {
                const int j = j0 + e, r = j % STRIDE, q = j / STRIDE;
                UNROLL
                for (int sh = 0; sh < VEC; ++sh)
                    if (q >= sh && q - sh < PHASE_LEN)
                        x_tile[c][sh][r][q - sh] = v[e];
            }
        }
        for (int idx = me; idx < CI_TILE * K * SPAN_CO; idx += WG_L * WG_CO) {
            const int o = idx / (CI_TILE * K), ck = idx % (CI_TILE * K);
            const int ci = ci0 + ck / K;
            const int co = co_first + o;
#if W_FLIPPED
            const int w_index = ((g * C_IN_G + ci) * C_OUT_G + co - g * C_OUT_G) * W_ROW_TAPS + w_tap_last - ck % K * W_TAP_STEP;
#else
            const int w_index = (co * C_IN_G + ci) * K + ck % K;
#endif
            w_tile[ck][o] = (co < co_end && ci < C_IN_G) ? LOAD(w, w_index) : (acc_t)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        accv_t part[TILE_CO][TILE_L]; /* one chunk's sum, folded into acc: blocked summation */
        ZERO_TILE(part, TILE_CO, TILE_L);
        UNROLL
        for (int c = 0; c < CI_TILE; ++c) {
            UNROLL_TAPS
            for (int k = 0; k < K; ++k) {
                const int phase = (k * DILATION) % STRIDE, offset = (k * DILATION) / STRIDE;
                __local const acc_t *xs = &x_tile[c][offset % VEC][phase][offset - offset % VEC];
                accv_t xv[TILE_L];
                UNROLL
                for (int t = 0; t < TILE_L; ++t)
                    xv[t] = *(__local const accv_t *)(xs + (t * WG_L + lane) * VEC);
                acc_t wv[TILE_CO];
                LOAD_W_TILE(wv, &w_tile[c * K + k][row * TILE_CO]);
                UNROLL
                for (int cc = 0; cc < TILE_CO; ++cc) {
                    const accv_t w_splat = (accv_t)wv[cc]; /* broadcast once per channel, not per vector */
                    UNROLL
                    for (int t = 0; t < TILE_L; ++t)
                        part[cc][t] += w_splat * xv[t];
                }
            }
        }
        ADD_TILE(acc, part, TILE_CO, TILE_L);
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    UNROLL
    for (int c = 0; c < TILE_CO; ++c) {
        const int co = co0 + c;
        if (co >= co_end)
            continue;
        const acc_t b = BIAS(co);
        __global store_t *yr = y + ((long)n * C_OUT + co) * y_row + y_offset;
        UNROLL
        for (int t = 0; t < TILE_L; ++t) {
            const int l = l_first + (t * WG_L + lane) * VEC;
            accv_lanes lanes;
            lanes.v = acc[c][t] + b;
            UNROLL
            for (int v = 0; v < VEC; ++v)
                if (l + v < L_out)
                    STORE(yr, (l + v) * Y_STEP, lanes.s[v]);
        }
    }
#endif
}
#endif

/* conv1d_forward_aligned: the same y for passes whose outputs take few products each (C_IN_G x K small:
 * C_in = 1 audio front ends), which are bound by their stores. A work-item runs along RUN_L positions of
 * TILE_CO channels, one vector of VEC positions per step, all channels sharing each input vector; it
 * reads the staged input (pad_rows.cl, X_PHASES phases of LDP = L_in / X_PHASES: a vector's inputs are
 * consecutive in one phase, padding and the zero tail in place). Every channel's vectors go out realigned
 * to the flat output, so that they are aligned stores that can bypass the cache (NT_STORES) whatever
 * L_out is:
 *
 *   row of channel c:   ....|  step t-1  |   step t   |....        (vectors of positions)
 *   flat y, aligned:    ..|  block  |  block  |  block  |..       (a block: last s lanes of one step
 *                                                                   and first VEC - s of the next)
 *
 * Lanes of a block outside the work-item's run go out as plain element stores (the run's first and last
 * block). Grid: dim 0 = run, dim 1 = channel tile (per group, as conv1d_forward), dim 2 = n.
 */
#ifdef KERNEL_CONV1D_FORWARD_ALIGNED
/* The block that takes lanes s .. VEC - 1 of a and 0 .. s - 1 of b (0 < s <= VEC): lanes s .. s + VEC - 1
 * of the pair. With the shuffle written out for each s, a block is one instruction; switch (s) follows one
 * path per channel for the whole run, which the branch predictor learns. */
#if defined(HAS_SHUFFLEVECTOR) && VEC > 1
#if VEC == 16
#define LANES(a, b, s) __builtin_shufflevector(a, b, s, s + 1, s + 2, s + 3, s + 4, s + 5, s + 6, s + 7, s + 8, \
                                               s + 9, s + 10, s + 11, s + 12, s + 13, s + 14, s + 15)
#elif VEC == 8
#define LANES(a, b, s) __builtin_shufflevector(a, b, s, s + 1, s + 2, s + 3, s + 4, s + 5, s + 6, s + 7)
#elif VEC == 4
#define LANES(a, b, s) __builtin_shufflevector(a, b, s, s + 1, s + 2, s + 3)
#else
#define LANES(a, b, s) __builtin_shufflevector(a, b, s, s + 1)
#endif
#define BLOCK_CASE(s) case s: return LANES(a, b, s);
static inline accv_t block_of(accv_t a, accv_t b, int s)
{
    switch (s) {
    BLOCK_CASE(1)
#if VEC > 2
    BLOCK_CASE(2) BLOCK_CASE(3)
#endif
#if VEC > 4
    BLOCK_CASE(4) BLOCK_CASE(5) BLOCK_CASE(6) BLOCK_CASE(7)
#endif
#if VEC > 8
    BLOCK_CASE(8) BLOCK_CASE(9) BLOCK_CASE(10) BLOCK_CASE(11) BLOCK_CASE(12) BLOCK_CASE(13) BLOCK_CASE(14) BLOCK_CASE(15)
#endif
    default: return b;
    }
}
#else
static inline accv_t block_of(accv_t a, accv_t b, int s)
{
    accv_lanes from_a, from_b, block;
    from_a.v = a;
    from_b.v = b;
    for (int j = 0; j < VEC; ++j)
        block.s[j] = s + j < VEC ? from_a.s[s + j] : from_b.s[s + j - VEC];
    return block.v;
}
#endif

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void conv1d_forward_aligned(__global const store_t *restrict x, __global const store_t *restrict w,
                            __global const store_t *restrict bias, __global store_t *restrict y,
                            const int L_in, const int L_out, const int pad_l, const int has_bias)
{
    CHANNEL_TILE_OF_ITEM;
    const int n = get_global_id(2);
    const int run_first = get_global_id(0) * RUN_L;
    const int run_stop = run_first + RUN_L < L_out ? run_first + RUN_L : L_out;
    const int phase_length = L_in / X_PHASES;
    __global const store_t *xg = x + ((long)n * C_IN + g * C_IN_G) * L_in;
    __global const store_t *wg = w + (long)co_base * C_IN_G * K;
    __global store_t *yg = y + ((long)n * C_OUT + co_base) * L_out;
    /* last[c]: channel c's vector of the step before, whose last lanes start the block of a step */
    accv_t last[TILE_CO];
    int start[TILE_CO]; /* lane of (last, this step) that a block starts at */
    UNROLL
    for (int c = 0; c < TILE_CO; ++c) {
        start[c] = VEC - (int)(((size_t)(yg + (long)c * L_out + run_first) / sizeof(store_t)) % VEC);
        last[c] = 0;
    }
    for (int l = run_first; l < run_stop + VEC; l += VEC) {
        const bool compute = l < run_stop; /* the step past the run only flushes the last lanes */
        accv_t sum[TILE_CO];
        UNROLL
        for (int c = 0; c < TILE_CO; ++c)
            sum[c] = BIAS(co_base + c);
        if (compute) {
            __global const store_t *xr = xg + l;
            __global const store_t *wr = wg;
            for (int ci = 0; ci < C_IN_G; ++ci, xr += L_in, wr += K) {
                UNROLL_TAPS
                for (int k = 0; k < K; ++k) {
                    const accv_t xv = LOADV(xr + (k * DILATION % X_PHASES) * phase_length + k * DILATION / X_PHASES);
                    UNROLL
                    for (int c = 0; c < TILE_CO; ++c)
                        sum[c] += LOAD(wr, c * (C_IN_G * K) + k) * xv;
                }
            }
        }
        UNROLL
        for (int c = 0; c < TILE_CO; ++c) {
            if (co_base + c < co0) /* the tile before stores the channels it shares with this one */
                continue;
            const int first = l - (VEC - start[c]); /* position of the block's lane 0 */
            __global store_t *yr = yg + (long)c * L_out;
            accv_lanes block;
            block.v = block_of(last[c], sum[c], start[c]);
            if (first >= run_first && first + VEC <= run_stop) {
                STOREV(yr + first, block.v);
            } else {
                for (int j = 0; j < VEC; ++j)
                    if (first + j >= run_first && first + j < run_stop)
                        STORE(yr, first + j, block.s[j]);
            }
            last[c] = sum[c];
        }
    }
}
#endif

/* conv1d_forward_depthwise: the same y for depthwise convolutions (C_IN_G = C_OUT_G = 1) of stride 1.
 * A work-item computes DW_TILES tiles along the positions of one channel, each DW_ROWS samples x
 * DW_TILE_L vectors of VEC positions:
 *
 *   sample n0 + r:  | t=0: VEC positions | t=1 | ... | t=DW_TILE_L-1 |   (r < DW_ROWS, same channel)
 *
 * The loop runs over input offsets o = t * VEC + k * DILATION rather than over taps: every input vector
 * is loaded once, by all its taps at once (taps reaching past a vector, K = 31, read each input twice
 * over), and the DW_ROWS samples share every weight; the DW_ROWS x DW_TILE_L sums are independent chains
 * of multiply-adds. Each sum still takes its taps in order. A tile whose window crosses the row's ends
 * copies it into private memory first (load_padded, PAD_MODE). Grid: dim 0 = position group, dim 1 =
 * channel, dim 2 = sample block (N / DW_ROWS, which the host makes exact).
 */
#ifdef KERNEL_CONV1D_FORWARD_DEPTHWISE
#if STRIDE != 1 || C_IN_G != 1 || C_OUT_G != 1
#error "conv1d_forward_depthwise computes depthwise convolutions of stride 1"
#endif
#ifndef DW_TILE_L
#define DW_TILE_L 4 /* vectors per tile and sample */
#endif
#ifndef DW_TILES
#define DW_TILES 8 /* tiles per work-item along the positions */
#endif
#define DW_SPAN (DW_TILE_L * VEC)                  /* positions of a tile */
#define DW_WIN (DW_SPAN + (K - 1) * DILATION)      /* input window of a tile */
#define DW_LOAD_GLOBAL(r, o) LOADV(xr[r] + i0 + (o))
#define DW_LOAD_WINDOW(r, o) LOADV_PRIVATE(window[r] + (o))
#define DW_ACCUMULATE(LOAD_ROW)                                                 \
    UNROLL                                                                      \
    for (int o = 0; o < (DW_TILE_L - 1) * VEC + (K - 1) * DILATION + 1; ++o) { \
        accv_t xv[DW_ROWS];                                                     \
        UNROLL                                                                  \
        for (int r = 0; r < DW_ROWS; ++r)                                       \
            xv[r] = LOAD_ROW(r, o);                                             \
        UNROLL                                                                  \
        for (int t = 0; t < DW_TILE_L; ++t) {                                   \
            const int d = o - t * VEC;                                          \
            if (d >= 0 && d % DILATION == 0 && d / DILATION < K) {              \
                const acc_t wk = LOAD(w, c * K + d / DILATION);                 \
                UNROLL                                                          \
                for (int r = 0; r < DW_ROWS; ++r)                               \
                    sum[r][t] += wk * xv[r];                                    \
            }                                                                   \
        }                                                                       \
    }

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void conv1d_forward_depthwise(__global const store_t *restrict x, __global const store_t *restrict w,
                              __global const store_t *restrict bias, __global store_t *restrict y,
                              const int L_in, const int L_out, const int pad_l, const int has_bias)
{
    const int c = get_global_id(1);
    const int n0 = get_global_id(2) * DW_ROWS;
    __global const store_t *xr[DW_ROWS];
    UNROLL
    for (int r = 0; r < DW_ROWS; ++r)
        xr[r] = x + ((long)(n0 + r) * C_IN + c) * L_in;
    const acc_t b = BIAS(c);
    acc_t window[DW_ROWS][DW_WIN];
    for (int p = 0; p < DW_TILES; ++p) {
        const int l = (get_global_id(0) * DW_TILES + p) * DW_SPAN;
        if (l >= L_out)
            break;
        const int i0 = l - pad_l;
        accv_t sum[DW_ROWS][DW_TILE_L];
        ZERO_TILE(sum, DW_ROWS, DW_TILE_L);
        if (i0 >= 0 && i0 + DW_WIN <= L_in && l + DW_SPAN <= L_out) {
            DW_ACCUMULATE(DW_LOAD_GLOBAL)
        } else {
            for (int r = 0; r < DW_ROWS; ++r)
                for (int j = 0; j < DW_WIN; ++j)
                    window[r][j] = load_padded(xr[r], i0 + j, L_in);
            DW_ACCUMULATE(DW_LOAD_WINDOW)
        }
        UNROLL
        for (int r = 0; r < DW_ROWS; ++r) {
            __global store_t *yr = y + ((long)(n0 + r) * C_OUT + c) * L_out;
            UNROLL
            for (int t = 0; t < DW_TILE_L; ++t)
                store_positions(yr, l + t * VEC, sum[r][t] + b, L_out);
        }
    }
}
#endif

/* conv1d_forward_depthwise_local: the same y for stride-1 layers of small groups on GPUs (the local
 * strategy's rows): one input channel per group and a channel multiplier C_OUT_G of up to 8, or (the
 * input gradient of such a layer as a forward, W_FLIPPED) up to 8 input channels per group and one output.
 * A DWL_LANES x DWL_GROUPS work-group owns DWL_GROUPS groups x DWL_SPAN positions. Each group's input
 * window (DWL_SPAN + (K - 1) * DILATION elements, padding resolved by load_padded while staging) and
 * weights go to __local memory once. Work-item (lane = a * DILATION + r, row) computes all C_OUT_G outputs
 * of its group at DWL_RUN positions DILATION apart:
 *
 *   positions of the span:  | block a=0: DWL_RUN * DILATION | block a=1 | ...     (DWL_LANES / DILATION blocks)
 *   work-item (a, r):        a * DWL_BLOCK + r + j * DILATION,  j < DWL_RUN
 *
 * Tap k of output j reads element j + k of the work-item's comb, a run of DWL_RUN + K - 1 window elements
 * DILATION apart: the comb goes into registers DWL_TAPS taps at a time and serves every tap and output
 * channel, so each staged element is read about (DWL_RUN + K - 1) / DWL_RUN times per work-item that needs
 * it. Every block of the staged window is followed by VEC spare elements, so that the window is staged in
 * aligned vectors and, with DILATION 1, a comb is contiguous and starts VEC-aligned: read as aligned vectors
 * whose lanes (blocks DWL_RUN + VEC apart) fall in different banks. With DILATION > 1 neighbouring lanes
 * read neighbouring elements. Weights sit in
 * rows of whole vectors per (output, input) channel, read as vectors (broadcasts). Every __local address
 * in the inner loop is the work-item's base plus a constant. W_FLIPPED reads the layer's weights flipped
 * and transposed while staging them. Grid: dim 0 = span (x DWL_LANES), dim 1 = group block
 * (x DWL_GROUPS), dim 2 = n.
 */
#ifdef KERNEL_CONV1D_FORWARD_DEPTHWISE_LOCAL
#if STRIDE != 1
#error "conv1d_forward_depthwise_local computes convolutions of stride 1"
#endif
#ifndef DWL_RUN
#define DWL_RUN 16 /* outputs per work-item and output channel, DILATION apart (a multiple of VEC) */
#endif
#ifndef DWL_TAPS
#define DWL_TAPS 16 /* taps per register window (a multiple of VEC, or K) */
#endif
#ifndef DWL_LANES
#define DWL_LANES 16 /* work-items along the positions: a multiple of DILATION */
#endif
#ifndef DWL_GROUPS
#define DWL_GROUPS 4 /* groups per work-group */
#endif
#define DWL_ROUND(n) (((n) + VEC - 1) / VEC * VEC)
#define DWL_BLOCK (DWL_RUN * DILATION)                     /* positions of DILATION work-items' combs */
#define DWL_SKEW VEC                                       /* spare elements after each block */
#define DWL_SPAN (DWL_LANES * DWL_RUN)                     /* positions per work-group */
#define DWL_WIN DWL_ROUND(DWL_SPAN + (K - 1) * DILATION)   /* staged window of a group, whole vectors */
#define DWL_SKEWED(i) ((i) + (i) / DWL_BLOCK * DWL_SKEW)
#define DWL_ROW DWL_ROUND(DWL_SKEWED(DWL_WIN - 1) + 1)     /* __local elements per staged channel */
#define DWL_KV DWL_ROUND(K)                                /* weights per (output, input) channel row */
#define DWL_W (C_OUT_G * C_IN_G * DWL_KV)                  /* weights per group */
#define DWL_W_ROW (DWL_W + DWL_ROUND(C_OUT_G))             /* ... and its biases, rows of whole vectors */
#define DWL_COMB DWL_ROUND(DWL_RUN + DWL_TAPS - 1)         /* comb elements in registers at a time */
#if DWL_BLOCK % VEC || DWL_TAPS % VEC && DWL_TAPS < K
#error "conv1d_forward_depthwise_local stages and reads whole vectors"
#endif

/* acc[o][j] += the taps of one input channel: comb is the work-item's comb in that channel's staged
 * window, wc its weights for output 0 (the next output's C_IN_G rows on). A function of its own: its loops
 * unroll and its comb goes to registers before it joins the caller's loop over the input channels (inlined
 * into that loop, the comb stayed in private memory for C_IN_G = 2). */
static inline void dwl_comb_taps(acc_t acc[C_OUT_G][DWL_RUN], __local const acc_t *comb, __local const acc_t *wc)
{
    UNROLL
    for (int k0 = 0; k0 < K; k0 += DWL_TAPS) {
        /* comb elements k0 + m: element m of the comb sits at m * DILATION + m / DWL_RUN * DWL_SKEW */
        acc_t xw[DWL_COMB];
        UNROLL
        for (int m = 0; m < DWL_COMB; m += VEC)
            if (k0 + m < DWL_RUN + K - 1) {
#if DILATION == 1
                accv_lanes v;
                v.v = *(__local const accv_t *)(comb + DWL_SKEWED(k0 + m));
                UNROLL
                for (int e = 0; e < VEC; ++e)
                    xw[m + e] = v.s[e];
#else
                UNROLL
                for (int e = 0; e < VEC; ++e)
                    xw[m + e] = k0 + m + e < DWL_RUN + K - 1
                              ? comb[(k0 + m + e) * DILATION + (k0 + m + e) / DWL_RUN * DWL_SKEW] : (acc_t)0;
#endif
            }
        UNROLL
        for (int o = 0; o < C_OUT_G; ++o) {
            __local const acc_t *wr = wc + o * C_IN_G * DWL_KV + k0;
            UNROLL
            for (int kv = 0; kv < DWL_TAPS; kv += VEC) {
                if (k0 + kv >= K)
                    break;
                accv_lanes wv;
                wv.v = *(__local const accv_t *)(wr + kv);
                UNROLL
                for (int e = 0; e < VEC; ++e) {
                    const int kk = kv + e;
                    if (kk < DWL_TAPS && k0 + kk < K)
                        UNROLL
                        for (int j = 0; j < DWL_RUN; ++j)
                            acc[o][j] += wv.s[e] * xw[j + kk];
                }
            }
        }
    }
}

__kernel __attribute__((reqd_work_group_size(DWL_LANES, DWL_GROUPS, 1)))
void conv1d_forward_depthwise_local(__global const store_t *restrict x, __global const store_t *restrict w,
                                    __global const store_t *restrict bias, __global store_t *restrict y,
                                    const int L_in, const int L_out, const int pad_l, const int has_bias)
{
    const int lane = get_local_id(0);
    const int row = get_local_id(1);
    const int g = get_group_id(1) * DWL_GROUPS + row;
    const bool live = g < GROUPS; /* the last group block may run past the groups */
    const int n = get_group_id(2);
    const int l_first = get_group_id(0) * DWL_SPAN;
    const int win0 = l_first - pad_l;
    __local acc_t x_tile[DWL_GROUPS][C_IN_G][DWL_ROW] __attribute__((aligned(sizeof(accv_t))));
    __local acc_t w_tile[DWL_GROUPS][DWL_W_ROW] __attribute__((aligned(sizeof(accv_t))));
    if (live) {
        __global const store_t *xg = x + ((long)n * C_IN + g * C_IN_G) * L_in;
        /* Whole vectors (a block holds whole vectors): those at offsets [lo, hi) of the window lie inside
         * the row and go over as one vector load each, the others through load_padded. */
        const int lo = win0 >= 0 ? 0 : min(DWL_WIN, (VEC - 1 - win0) / VEC * VEC);
        const int last = L_in - VEC - win0; /* the last offset inside the row */
        const int hi = last < lo ? lo : min(DWL_WIN, last / VEC * VEC + VEC);
        UNROLL
        for (int ci = 0; ci < C_IN_G; ++ci) {
            __global const store_t *xr = xg + (long)ci * L_in;
            __local acc_t *to = x_tile[row][ci];
            for (int i = lo + lane * VEC; i < hi; i += DWL_LANES * VEC)
                *(__local accv_t *)(to + DWL_SKEWED(i)) = LOADV(xr + win0 + i);
            for (int edge = 0; edge < 2; ++edge) /* [0, lo) and [hi, DWL_WIN) */
                for (int i = (edge ? hi : 0) + lane * VEC; i < (edge ? DWL_WIN : lo); i += DWL_LANES * VEC) {
                    accv_lanes v;
                    UNROLL
                    for (int e = 0; e < VEC; ++e)
                        v.s[e] = load_padded(xr, win0 + i + e, L_in);
                    *(__local accv_t *)(to + DWL_SKEWED(i)) = v.v;
                }
        }
        /* Row (o, ci) holds tap k at k (W_FLIPPED: the layer's tap K - 1 - k of its channel ci's output o),
         * zeros up to the whole vector; the group's biases follow. */
        for (int e = lane; e < DWL_W; e += DWL_LANES) {
            const int oc = e / DWL_KV, k = e % DWL_KV;
#if W_FLIPPED
            const int w_index = ((g * C_IN_G + oc % C_IN_G) * C_OUT_G + oc / C_IN_G) * K + K - 1 - k;
#else
            const int w_index = (g * C_OUT_G * C_IN_G + oc) * K + k;
#endif
            w_tile[row][e] = k < K ? LOAD(w, w_index) : (acc_t)0;
        }
        for (int o = lane; o < C_OUT_G; o += DWL_LANES)
            w_tile[row][DWL_W + o] = BIAS(g * C_OUT_G + o);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!live)
        return;
    const int a = lane / DILATION, r = lane - a * DILATION;
    acc_t acc[C_OUT_G][DWL_RUN];
    UNROLL
    for (int o = 0; o < C_OUT_G; ++o)
        UNROLL
        for (int j = 0; j < DWL_RUN; ++j)
            acc[o][j] = 0;
    UNROLL
    for (int ci = 0; ci < C_IN_G; ++ci)
        dwl_comb_taps(acc, &x_tile[row][ci][a * (DWL_BLOCK + DWL_SKEW) + r], &w_tile[row][ci * DWL_KV]);
    const int l0 = l_first + a * DWL_BLOCK + r; /* the work-item's first position */
    const int stored = l0 + (DWL_RUN - 1) * DILATION < L_out ? DWL_RUN : (L_out - l0 + DILATION - 1) / DILATION;
    UNROLL
    for (int o = 0; o < C_OUT_G; ++o) {
        const int co = g * C_OUT_G + o;
        const acc_t b = w_tile[row][DWL_W + o];
        __global store_t *yr = y + ((long)n * C_OUT + co) * L_out + l0;
        if (stored == DWL_RUN) {
#if DILATION == 1 && defined(HAS_STOREV)
            UNROLL
            for (int j = 0; j < DWL_RUN; j += VEC)
                STOREV(yr + j, LOADV_PRIVATE(&acc[o][j]) + b);
#else
            UNROLL
            for (int j = 0; j < DWL_RUN; ++j)
                STORE(yr, j * DILATION, acc[o][j] + b);
#endif
        } else {
            UNROLL
            for (int j = 0; j < DWL_RUN; ++j)
                if (j < stored)
                    STORE(yr, j * DILATION, acc[o][j] + b);
        }
    }
}
#endif

/* conv1d_forward_slide: the same y for stride-1, dilation-1 layers of long kernels (single-channel
 * filterbanks, depthwise filters and their input gradients as forwards, W_FLIPPED copies), whose generic
 * tiles load an input vector per tap and tile vector. Taps run by residue r = k % VEC: taps r, r + VEC,
 * r + 2 VEC, ... read the tile's inputs one vector further on each time, so the SLIDE_T input vectors of a
 * tile slide through registers and each tap loads one new vector and TILE_CO broadcast weights for
 * TILE_CO x SLIDE_T multiply-adds:
 *
 *   tap r + m VEC, tile vector t:  x[i0 + r + (t + m) VEC ..]     (window xw[t] = vector t + m)
 *
 * A work-item owns TILE_CO channels (slid back to end on the group's last) x TILE_P tiles of SLIDE_T
 * vectors along the positions; a tile whose window crosses the row's ends copies it through load_padded
 * into private memory first.
 * Sums fold into the totals per CHUNK input channels (blocked summation). Grid: dim 0 = run of TILE_P
 * tiles, dim 1 = channel tile (per group), dim 2 = n.
 */
#ifdef KERNEL_CONV1D_FORWARD_SLIDE
#if STRIDE != 1 || DILATION != 1
#error "conv1d_forward_slide computes stride-1, dilation-1 convolutions"
#endif
#ifndef SLIDE_T
#define SLIDE_T 7 /* vectors of positions per tile */
#endif
#define SLIDE_SPAN (SLIDE_T * VEC)
/* Steps of SLIDE_T taps, unrolled: window slot (t + s) % SLIDE_T holds tile vector t at step s, and each
 * step loads into the slot its predecessor read last; the block ends where it began, no register moves. */
#define SLIDE_TAPS(LOAD_X, STAGE)                                               \
    for (int ci = cb; ci < cb_end; ++ci) {                                      \
        __global const store_t *xr = xg + (long)ci * L_in;                      \
        __global const store_t *wr = w + ((long)co_base * C_IN_G + ci) * K;    \
        STAGE                                                                   \
        NO_UNROLL                                                               \
        for (int r = 0; r < VEC && r < K; ++r) {                                \
            accv_t xw[SLIDE_T];                                                 \
            UNROLL                                                              \
            for (int t = 0; t + 1 < SLIDE_T; ++t)                               \
                xw[t] = LOAD_X(r + t * VEC);                                    \
            const int taps = (K - r + VEC - 1) / VEC;                           \
            for (int m = 0; m < taps; m += SLIDE_T) {                           \
                UNROLL                                                          \
                for (int s = 0; s < SLIDE_T; ++s) {                             \
                    if (m + s >= taps)                                          \
                        break;                                                  \
                    xw[(s + SLIDE_T - 1) % SLIDE_T] = LOAD_X(r + (m + s + SLIDE_T - 1) * VEC); \
                    UNROLL                                                      \
                    for (int c = 0; c < TILE_CO; ++c) {                         \
                        const acc_t wv = LOAD(wr, c * (C_IN_G * K) + r + (m + s) * VEC); \
                        UNROLL                                                  \
                        for (int t = 0; t < SLIDE_T; ++t)                       \
                            part[c][t] += wv * xw[(t + s) % SLIDE_T];           \
                    }                                                           \
                }                                                               \
            }                                                                   \
        }                                                                       \
    }
#define SLIDE_WIN (SLIDE_SPAN + K - 1) /* input window of a tile */
#define SLIDE_INTERIOR(o) LOADV(xr + i0 + (o))
#define SLIDE_EDGE(o) LOADV_PRIVATE(window + (o))
#define SLIDE_NOTHING
/* a tile across the row's ends reads its window from private memory, copied through the padding once */
#define SLIDE_WINDOW                                                            \
        for (int j = 0; j < SLIDE_WIN; ++j)                                     \
            window[j] = load_padded(xr, i0 + j, L_in);

__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void conv1d_forward_slide(__global const store_t *restrict x, __global const store_t *restrict w,
                          __global const store_t *restrict bias, __global store_t *restrict y,
                          const int L_in, const int L_out, const int pad_l, const int has_bias)
{
    CHANNEL_TILE_OF_ITEM;
    const int n = get_global_id(2);
    __global const store_t *xg = x + ((long)n * C_IN + g * C_IN_G) * L_in;
    acc_t window[SLIDE_WIN];
    for (int p = 0; p < TILE_P; ++p) {
        const int l0 = (get_global_id(0) * TILE_P + p) * SLIDE_SPAN;
        if (l0 >= L_out)
            break;
        const int i0 = l0 - pad_l;
        const bool inside = i0 >= 0 && i0 + SLIDE_SPAN + K - 1 <= L_in;
        accv_t total[TILE_CO][SLIDE_T];
        ZERO_TILE(total, TILE_CO, SLIDE_T);
        for (int cb = 0; cb < C_IN_G; cb += CHUNK) {
            const int cb_end = cb + CHUNK < C_IN_G ? cb + CHUNK : C_IN_G;
            accv_t part[TILE_CO][SLIDE_T];
            ZERO_TILE(part, TILE_CO, SLIDE_T);
            if (inside) {
                SLIDE_TAPS(SLIDE_INTERIOR, SLIDE_NOTHING)
            } else {
                SLIDE_TAPS(SLIDE_EDGE, SLIDE_WINDOW)
            }
            ADD_TILE(total, part, TILE_CO, SLIDE_T);
        }
        UNROLL
        for (int c = 0; c < TILE_CO; ++c) {
            const int co = co_base + c;
            if (co < co0)
                continue;
            const acc_t b = BIAS(co);
            __global store_t *yr = y + ((long)n * C_OUT + co) * L_out;
            UNROLL
            for (int t = 0; t < SLIDE_T; ++t)
                store_positions(yr, l0 + t * VEC, total[c][t] + b, L_out);
        }
    }
}
#endif

#ifdef KERNEL_CONV1D_FORWARD_CHANNEL_LANES
/* conv1d_forward_channel_lanes: rows too short for vectors of positions (L_out a few vectors or less: most
 * lanes of a position vector would overhang the row, and every tile would take the guarded path). Lanes
 * run along output channels instead, over lane_weights' wl (flip_weights.cl: output channels innermost)
 * and the padded, phase-split input xs (pad_rows.cl, PHASES = STRIDE, LDP = phase_len). Positions are
 * counted over the whole batch, q = n * L_out + l, so that a short row's positions fill whole tiles.
 *
 *   y[n, g*C_OUT_G + co, l] = bias + sum_{ci, k} wl[((g*C_IN_G + ci)*K + k)*co_pad + co]
 *                                       * xs[n, g*C_IN_G + ci, (k*DILATION) % STRIDE, l + (k*DILATION) / STRIDE]
 *
 * A work-item owns LANES_POS consecutive positions q x LANES_CV vectors of VEC output channels: per tap it
 * loads LANES_CV weight vectors and broadcasts one input element per position. Grid: dim 0 = position
 * tile, dim 1 = g * channel tiles + tile; work-groups of one work-item. Runtime arguments: row_len
 * (= STRIDE * phase_len), phase_len, L_out, positions (N * L_out), has_bias.
 */
#ifndef LANES_POS
#define LANES_POS 6 /* positions per work-item */
#endif
#ifndef LANES_CV
#define LANES_CV 2 /* vectors of VEC output channels per work-item */
#endif
#define LANES_CO (LANES_CV * VEC)
#define LANES_TILES ((C_OUT_G + LANES_CO - 1) / LANES_CO)
#define LANES_CO_PAD (LANES_TILES * LANES_CO)
#if VEC > 1
#define LOAD_LANES(p) (((__global const unaligned_accv *)(p))->v)
#else
#define LOAD_LANES(p) (*(p))
#endif

__kernel void conv1d_forward_channel_lanes(__global const store_t *restrict xs, __global const acc_t *restrict wl,
                                           __global const store_t *restrict bias, __global store_t *restrict y,
                                           const int row_len, const int phase_len, const int L_out,
                                           const int positions, const int has_bias)
{
    const int first = get_global_id(0) * LANES_POS;
    const int g = get_global_id(1) / LANES_TILES;
    const int co0 = (get_global_id(1) - g * LANES_TILES) * LANES_CO;
    /* positions past the last one read the last one's input, and store nothing */
    __global const store_t *xr[LANES_POS];
    UNROLL
    for (int t = 0; t < LANES_POS; ++t) {
        const int q = first + t < positions ? first + t : positions - 1;
        const int n = q / L_out;
        xr[t] = xs + ((long)n * C_IN + g * C_IN_G) * row_len + (q - n * L_out);
    }
    __global const acc_t *wg = wl + (long)g * C_IN_G * K * LANES_CO_PAD + co0;
    accv_t total[LANES_POS][LANES_CV];
    ZERO_TILE(total, LANES_POS, LANES_CV);
    for (int c0 = 0; c0 < C_IN_G; c0 += CI_BLOCK) {
        const int c_end = c0 + CI_BLOCK < C_IN_G ? c0 + CI_BLOCK : C_IN_G;
        accv_t acc[LANES_POS][LANES_CV];
        ZERO_TILE(acc, LANES_POS, LANES_CV);
        for (int ci = c0; ci < c_end; ++ci) {
            __global const acc_t *wc = wg + (long)ci * K * LANES_CO_PAD;
            const long x_row = (long)ci * row_len;
            UNROLL_TAPS
            for (int k = 0; k < K; ++k) {
                const int x_at = (k * DILATION) % STRIDE * phase_len + (k * DILATION) / STRIDE;
                accv_t wv[LANES_CV];
                UNROLL
                for (int c = 0; c < LANES_CV; ++c)
                    wv[c] = LOAD_LANES(wc + k * LANES_CO_PAD + c * VEC);
                UNROLL
                for (int t = 0; t < LANES_POS; ++t) {
                    const acc_t xv = LOAD(xr[t], x_row + x_at);
                    UNROLL
                    for (int c = 0; c < LANES_CV; ++c)
                        acc[t][c] += wv[c] * xv;
                }
            }
        }
        ADD_TILE(total, acc, LANES_POS, LANES_CV);
    }
    UNROLL
    for (int t = 0; t < LANES_POS; ++t) {
        const int q = first + t;
        if (q >= positions)
            break;
        __global store_t *yr = group_output_of_position(y, q, g, L_out);
        UNROLL
        for (int c = 0; c < LANES_CV; ++c) {
            accv_lanes lanes;
            lanes.v = total[t][c];
            UNROLL
            for (int v = 0; v < VEC; ++v) {
                const int co = co0 + c * VEC + v;
                if (co < C_OUT_G)
                    STORE(yr, (long)co * L_out, lanes.s[v] + BIAS(g * C_OUT_G + co));
            }
        }
    }
}
#endif

#ifdef KERNEL_CONV1D_FORWARD_COLUMNS
/* conv1d_forward_columns: rows too short for vectors of positions, with output channels enough to share
 * one copy of the input laid out as columns (pad_rows.cl's pad_columns, panels of one vector: entry
 * e = ci*K + k of position q = n*L_out + l at xc[((g * PANELS + e / VEC) * positions + q) * VEC + e % VEC]).
 * Each output is the dot product of a weight row, as the layer holds it, with a column:
 *
 *   y[n, g*C_OUT_G + co, l] = bias + sum_e w[g*C_OUT_G + co][e] * xc[g][e / VEC][q][e % VEC]
 *
 * A work-item owns COLS_CO channels x COLS_POS positions of vector accumulators; per vector of entries it
 * loads COLS_CO weight vectors and COLS_POS column vectors, and sums each accumulator's lanes at the end.
 * The weights' last vector, where a row ends inside it, is read lane by lane. Grid: dim 0 = position tile,
 * dim 1 = g * (C_OUT_G / COLS_CO rounded up) + channel tile (sliding back over the group's last channels);
 * work-groups of one item. Runtime arguments: L_out, positions (N * L_out), has_bias.
 */
#ifndef COLS_CO
#define COLS_CO 4 /* output channels per work-item (at most C_OUT_G) */
#endif
#ifndef COLS_POS
#define COLS_POS 4 /* positions per work-item */
#endif
#define COLS_R (C_IN_G * K)
#define COLS_FULL (COLS_R / VEC) /* whole vectors of a weight row */
#define COLS_PANELS ((COLS_R + VEC - 1) / VEC)
#define COLS_CO_TILES ((C_OUT_G + COLS_CO - 1) / COLS_CO)
__kernel EXPLICIT_VECTORS void conv1d_forward_columns(__global const acc_t *restrict xc,
                                                      __global const store_t *restrict w,
                                                      __global const store_t *restrict bias,
                                                      __global store_t *restrict y, const int L_out,
                                                      const int positions, const int has_bias)
{
    const int first = get_global_id(0) * COLS_POS;
    const int g = get_global_id(1) / COLS_CO_TILES;
    const int co0 = (get_global_id(1) - g * COLS_CO_TILES) * COLS_CO;
    const int co_base = co0 + COLS_CO > C_OUT_G ? C_OUT_G - COLS_CO : co0;
    __global const acc_t *xq[COLS_POS];
    UNROLL
    for (int t = 0; t < COLS_POS; ++t) {
        const int q = first + t < positions ? first + t : positions - 1;
        xq[t] = xc + ((long)g * COLS_PANELS * positions + q) * VEC;
    }
    __global const store_t *wg = w + (long)(g * C_OUT_G + co_base) * COLS_R;
    const long panel_step = (long)positions * VEC;
    accv_t acc[COLS_CO][COLS_POS];
    ZERO_TILE(acc, COLS_CO, COLS_POS);
    for (int e = 0; e < COLS_FULL; ++e) {
        accv_t wv[COLS_CO], xv[COLS_POS];
        UNROLL
        for (int c = 0; c < COLS_CO; ++c)
            wv[c] = LOADV(wg + (long)c * COLS_R + e * VEC);
        UNROLL
        for (int t = 0; t < COLS_POS; ++t)
            xv[t] = *(__global const accv_t *)(xq[t] + e * panel_step);
        UNROLL
        for (int c = 0; c < COLS_CO; ++c)
            UNROLL
            for (int t = 0; t < COLS_POS; ++t)
                acc[c][t] += wv[c] * xv[t];
    }
#if COLS_R % VEC != 0
    UNROLL
    for (int c = 0; c < COLS_CO; ++c) {
        accv_lanes tail;
        UNROLL
        for (int v = 0; v < VEC; ++v)
            tail.s[v] = v < COLS_R % VEC ? LOAD(wg, (long)c * COLS_R + COLS_FULL * VEC + v) : (acc_t)0;
        UNROLL
        for (int t = 0; t < COLS_POS; ++t)
            acc[c][t] += tail.v * *(__global const accv_t *)(xq[t] + COLS_FULL * panel_step);
    }
#endif
    UNROLL
    for (int t = 0; t < COLS_POS; ++t) {
        const int q = first + t;
        if (q >= positions)
            break;
        __global store_t *yr = group_output_of_position(y, q, g, L_out);
        UNROLL
        for (int c = 0; c < COLS_CO; ++c) {
            const int co = co_base + c;
            if (co < co0)
                continue;
            accv_lanes lanes;
            lanes.v = acc[c][t];
            acc_t sum = 0;
            UNROLL
            for (int v = 0; v < VEC; ++v)
                sum += lanes.s[v];
            STORE(yr, (long)co * L_out, sum + BIAS(g * C_OUT_G + co));
        }
    }
}
#endif
