/* conv1d_backward_data.cl: the input gradient of conv1d as a gather (also conv_transpose1d's forward).
 *
 *   dx[n, g*C_IN_G + ci, i] = bias[g*C_IN_G + ci] + sum_{co < C_OUT_G, k < K : (i + pad_l - k*DILATION) = l*STRIDE, 0 <= l < L_src}
 *                             w[g*C_OUT_G + co, ci, k] * dy[n, g*C_OUT_G + co, l]
 *
 * Stride phases without atomics: write q = i + pad_l = rho + STRIDE*m with rho = q mod STRIDE. Tap k
 * reaches q only when (rho - k*DILATION) mod STRIDE == 0, and then from l = m + (rho - k*DILATION)/STRIDE.
 * A work-item keeps one phase rho, so the tap test is uniform and the l it reads are consecutive in m.
 *
 * Grid: dim 0 = m (positions of one phase), dim 1 = input-channel tiles, dim 2 = n (register strategy,
 * which loops over the phases) or n * STRIDE + rho (local strategy).
 *   STRATEGY 0 (register): TILE_CI channels x TILE_L vectors of VEC consecutive m per work-item.
 *   STRATEGY 1 (local): WG_L x WG_CI work-items, positions interleaved WG_L apart; per chunk of CO_TILE
 *     output channels the work-group stages dy's window (CO_TILE x WIN, WIN = SPAN_L + HALO) and the
 *     weights in __local memory.
 *
 *   conv1d_backward_data_rows (few input channels, many output channels; the host's choice): a work-item
 *     owns SEG_M positions m of every phase of one input row, accumulated in private memory (a core's L1),
 *     and walks the output channels CO_GROUP at a time, each over one contiguous run of dy:
 *
 *         for each co group:  for each vector of m:  acc[rho][m..] += sum_{co, k} w[co, k] * dy[co, m - o_k]
 *
 *     with rho = k*DILATION mod STRIDE and o_k = k*DILATION / STRIDE fixed per tap. A register tile reads
 *     a short piece of every dy row (512 rows 12.8 KB apart for wav2vec) and waits on memory; a run of
 *     SEG_M positions lets the hardware prefetch it.
 *
 *   conv1d_backward_data_cols (strides of COLS_STRIDE_MIN or more, where a phase holds a tap or two): the
 *     host first runs the pointwise forward cols[n, (g*C_IN_G + ci)*K + k, l] = sum_co w[g*C_OUT_G + co,
 *     ci, k] * dy[n, g*C_OUT_G + co, l] (lane_weights' copy as its weight), a dense product; this kernel
 *     then adds the columns back where they overlap:
 *
 *         dx[n, c, i] = bias[c] + sum_{l, k : l*STRIDE + k*DILATION = i + pad_l} cols[n, c*K + k, l]
 *
 *     a work-item per run of COLS_RUN positions i of a row, summed in private memory tap by tap, each tap's
 *     column read along l (the columns of one l lie L_src apart: position by position they would be read
 *     a line per element); grid: dim 0 = run, dim 1 = c, dim 2 = n.
 *
 *   conv1d_backward_data_columns (short rows; the host's choice): the columns of the same overlap-add
 *     straight from the layer's weights, whose rows hold a column's entries (ci, k) side by side: lanes
 *     along the entries, the positions of the whole batch counted together, q = n * L_src + l:
 *
 *         output channel co:  w[g*C_OUT_G + co][r_base .. +SPAN)  x  dy[n, g*C_OUT_G + co, l] for COLS_POS q
 *                             (COLS_RV contiguous vectors)           (broadcast scalars)
 *
 *     no copy of the weights, and no row too short for vectors of positions.
 *
 * Macros read: C_IN_G, C_OUT_G, GROUPS, K, STRIDE, DILATION, dtype (common.cl), tunables below.
 * Runtime arguments: L_dst (length of dx), L_src (length of dy), pad_l, has_bias; pos_block (tile_order()
 * in common.cl; conv1d_backward_data only).
 * Each kernel is compiled only under KERNEL_<its name> (Device.kernel defines it): a program holds the
 * kernel it launches, not its neighbours.
 */
#ifndef STRATEGY
#define STRATEGY 0 /* 0 register-blocked without barriers, 1 __local tiles */
#endif
#ifndef TILE_CI
#define TILE_CI 4 /* input channels per work-item */
#endif
#ifndef TILE_L
#define TILE_L 2 /* position vectors (register) or positions (local) per work-item */
#endif
#ifndef WG_L
#define WG_L 8 /* work-group size along positions */
#endif
#ifndef WG_CI
#define WG_CI 1 /* work-group size along channel tiles */
#endif
#ifndef CO_TILE
#define CO_TILE 4 /* output channels staged per __local chunk (STRATEGY 1) */
#endif
/* SEG_M: positions per phase a row-accumulating work-item owns (a multiple of VEC); only the rows plan
 * sets it, and only then is conv1d_backward_data_rows compiled (its loops unroll over the stride). */
#ifndef CO_GROUP
#define CO_GROUP 2 /* output channels a row-accumulating work-item reads per pass over its positions */
#endif
#ifndef M_TILE
#define M_TILE 2 /* vectors of m per step of a row-accumulating work-item (independent sums per phase) */
#endif
#if STRATEGY == 1 && VEC != 1
#error "the local strategy interleaves single positions: build it with VEC=1"
#endif

#define CO_BLOCK (SUM_BLOCK / K > 0 ? SUM_BLOCK / K : 1) /* output channels per blocked partial sum */
#define C_IN (C_IN_G * GROUPS)
#define C_OUT (C_OUT_G * GROUPS)
#define SPAN_L (WG_L * TILE_L * VEC)
#define SPAN_CI (WG_CI * TILE_CI)
#define CI_SPANS ((C_IN_G + SPAN_CI - 1) / SPAN_CI)
#define HALO (((K - 1) * DILATION + STRIDE - 1) / STRIDE) /* furthest l behind m that a tap reads */
#define WIN (SPAN_L + HALO)

static inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((b - 1 - a) / b); }

#ifdef KERNEL_CONV1D_BACKWARD_DATA
/* Positions in grid dim 0, channel tiles in dim 1; tile_order() in common.cl gives the order work-groups
 * visit them. */
__kernel __attribute__((reqd_work_group_size(WG_L, WG_CI, 1)))
void conv1d_backward_data(__global const store_t *restrict dy, __global const store_t *restrict w,
                          __global const store_t *restrict bias, __global store_t *restrict dx,
                          const int L_dst, const int L_src, const int pad_l, const int has_bias,
                          const int pos_block)
{
    const int lane = get_local_id(0);
    const int row = get_local_id(1);
    const int2 tile = tile_order(pos_block); /* (position group, channel tile) */
    const int span = tile.y;
    const int g = span / CI_SPANS;
    const int ci_first = g * C_IN_G + (span % CI_SPANS) * SPAN_CI;
    const int ci_end = (g + 1) * C_IN_G;
    const int ci0 = ci_first + row * TILE_CI;
#if STRATEGY == 0
    /* A work-item covers every stride phase of its positions: dy's window comes from memory once and
     * the other phases reuse it from cache. */
    const int n = get_global_id(2);
    UNROLL_PHASES
    for (int rho = 0; rho < STRIDE; ++rho) {
#else
    const int n = get_global_id(2) / STRIDE;
    const int rho = get_global_id(2) % STRIDE;
    __local acc_t dy_tile[CO_TILE][WIN];
    __local acc_t w_tile[CO_TILE * K][SPAN_CI];
#endif
    const int m_lo = -floor_div(rho - pad_l, STRIDE); /* first m whose i is >= 0 */
    const int m_first = m_lo + tile.x * SPAN_L;
    __global const store_t *dyg = dy + ((long)n * C_OUT + g * C_OUT_G) * L_src;

    /* acc[c][j] holds channel ci_base + c at m = POSITION(j). */
    acc_t acc[TILE_CI][TILE_L * VEC];
    ZERO_TILE(acc, TILE_CI, TILE_L * VEC);

#if STRATEGY == 0
#define POSITION(j) (m_first + lane * (TILE_L * VEC) + (j))
    /* A tile that would overhang the group's last channel slides back to end on it (the host keeps
     * TILE_CI <= C_IN_G); shared rows are stored by their own tile. acc rows are ci_base + c. */
    const int ci_base = ci0 + TILE_CI > ci_end ? ci_end - TILE_CI : ci0;
    const int m0 = POSITION(0);
    /* Tap k reads dy from l = m + tap_off[k]; taps off this phase are skipped. */
    int tap_off[K];
    bool tap_on[K];
    UNROLL_TAPS
    for (int k = 0; k < K; ++k) {
        const int q = rho - k * DILATION;
        tap_on[k] = STRIDE == 1 || q % STRIDE == 0;
        tap_off[k] = STRIDE == 1 ? q : floor_div(q, STRIDE);
    }
    const bool interior = m0 - HALO >= 0 && m0 + TILE_L * VEC <= L_src;

#define LOAD_DY_INTERIOR(r, l) LOADV(r + m0 + (l))
#define LOAD_DY_EDGE(r, l) LOADV_PRIVATE(window + HALO + (l))
#define WIN_T (TILE_L * VEC + HALO) /* dy window of one register tile: m0 - HALO .. m0 + TILE_L*VEC - 1 */
#define STAGE_NOTHING
#define STAGE_WINDOW                                                            \
    for (int j = 0; j < WIN_T; ++j)                                             \
        window[j] = load_masked(dyr, m0 - HALO + j, L_src);
    acc_t window[WIN_T];
/* Summation is blocked as in the forward pass: CO_BLOCK channels per vector partial sum, then acc. */
#define BACKWARD_DATA_ACCUMULATE(LOAD_DY, STAGE)                             \
    __global const store_t *dyr = dyg;                                          \
    __global const store_t *wp = w + ((long)g * C_OUT_G * C_IN_G + ci_base - g * C_IN_G) * K; \
    for (int cb = 0; cb < C_OUT_G; cb += CO_BLOCK) {                            \
        accv_t accv[TILE_CI][TILE_L];                                           \
        UNROLL                                                                  \
        for (int c = 0; c < TILE_CI; ++c)                                       \
            UNROLL                                                              \
            for (int t = 0; t < TILE_L; ++t)                                    \
                accv[c][t] = 0;                                                 \
        const int cb_end = cb + CO_BLOCK < C_OUT_G ? cb + CO_BLOCK : C_OUT_G;   \
        for (int co = cb; co < cb_end; ++co, dyr += L_src, wp += C_IN_G * K) {  \
            STAGE                                                               \
            UNROLL_TAPS                                                         \
            for (int k = 0; k < K; ++k) {                                       \
                if (tap_on[k]) {                                                \
                    accv_t dyv[TILE_L];                                         \
                    UNROLL                                                      \
                    for (int t = 0; t < TILE_L; ++t)                            \
                        dyv[t] = LOAD_DY(dyr, tap_off[k] + t * VEC);            \
                    UNROLL                                                      \
                    for (int c = 0; c < TILE_CI; ++c) {                         \
                        const acc_t wv = LOAD(wp, c * K + k);                   \
                        UNROLL                                                  \
                        for (int t = 0; t < TILE_L; ++t)                        \
                            accv[c][t] += wv * dyv[t];                          \
                    }                                                           \
                }                                                               \
            }                                                                   \
        }                                                                       \
        FOLD_INTO_ACC(accv)                                                     \
    }
    if (interior) {
        BACKWARD_DATA_ACCUMULATE(LOAD_DY_INTERIOR, STAGE_NOTHING)
    } else {
        BACKWARD_DATA_ACCUMULATE(LOAD_DY_EDGE, STAGE_WINDOW)
    }
#else
#define POSITION(j) (m_first + lane + (j) * WG_L)
    const int ci_base = ci0;
    const int me = row * WG_L + lane;
    for (int co0 = 0; co0 < C_OUT_G; co0 += CO_TILE) {
        for (int idx = me; idx < CO_TILE * WIN; idx += WG_L * WG_CI) {
            const int c = idx / WIN, l = m_first - HALO + idx % WIN;
            dy_tile[c][idx % WIN] = (co0 + c < C_OUT_G && l >= 0 && l < L_src) ? LOAD(dyg + (long)(co0 + c) * L_src, l) : (acc_t)0;
        }
        for (int idx = me; idx < CO_TILE * K * SPAN_CI; idx += WG_L * WG_CI) {
            const int o = idx / (CO_TILE * K), ck = idx % (CO_TILE * K);
            const int co = co0 + ck / K, ci = ci_first + o;
            w_tile[ck][o] = (co < C_OUT_G && ci < ci_end)
                ? LOAD(w, ((long)(g * C_OUT_G + co) * C_IN_G + ci - g * C_IN_G) * K + ck % K) : (acc_t)0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        acc_t part[TILE_CI][TILE_L]; /* one chunk's sum, folded into acc: blocked summation */
        ZERO_TILE(part, TILE_CI, TILE_L);
        UNROLL
        for (int c = 0; c < CO_TILE; ++c) {
            UNROLL_TAPS
            for (int k = 0; k < K; ++k) {
                const int q = rho - k * DILATION;
                if (STRIDE == 1 || q % STRIDE == 0) {
                    const int off = HALO + (STRIDE == 1 ? q : floor_div(q, STRIDE));
                    UNROLL
                    for (int cc = 0; cc < TILE_CI; ++cc) {
                        const acc_t wv = w_tile[c * K + k][row * TILE_CI + cc];
                        UNROLL
                        for (int t = 0; t < TILE_L; ++t)
                            part[cc][t] += wv * dy_tile[c][lane + t * WG_L + off];
                    }
                }
            }
        }
        ADD_TILE(acc, part, TILE_CI, TILE_L);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
#endif

    UNROLL
    for (int c = 0; c < TILE_CI; ++c) {
        const int ci = ci_base + c;
        if (ci < ci0 || ci >= ci_end)
            continue;
        const acc_t b = BIAS(ci);
        __global store_t *dxr = dx + ((long)n * C_IN + ci) * L_dst;
        UNROLL
        for (int j = 0; j < TILE_L * VEC; ++j) {
            const int i = rho + STRIDE * POSITION(j) - pad_l;
            if (i < L_dst)
                STORE(dxr, i, acc[c][j] + b);
        }
    }
#if STRATEGY == 0
    }
#endif
}
#endif

#if defined(KERNEL_CONV1D_BACKWARD_DATA_ROWS) && STRATEGY == 0
#define O_MAX ((K - 1) * DILATION / STRIDE) /* furthest dy position behind m that a tap reads */

/* Grid: dim 0 = segment of SEG_M positions m, dim 1 = input channel (over groups), dim 2 = n. */
__kernel __attribute__((reqd_work_group_size(1, 1, 1)))
void conv1d_backward_data_rows(__global const store_t *restrict dy, __global const store_t *restrict w,
                               __global const store_t *restrict bias, __global store_t *restrict dx,
                               const int L_dst, const int L_src, const int pad_l, const int has_bias)
{
    const int row = get_global_id(1);
    const int g = row / C_IN_G, ci = row % C_IN_G;
    const int n = get_global_id(2);
    const int m_lo = pad_l / STRIDE; /* q = i + pad_l = m*STRIDE + rho, i >= 0 */
    const int m_first = m_lo + get_global_id(0) * SEG_M;
    const int m_total = (L_dst - 1 + pad_l) / STRIDE + 1 - m_lo;
    /* positions this work-item keeps, in whole steps */
    const int m_end = min(SEG_M, (m_total - (m_first - m_lo) + M_TILE * VEC - 1) / (M_TILE * VEC) * (M_TILE * VEC));
    acc_t acc[STRIDE][SEG_M];
    __global const store_t *dyg = dy + ((long)n * C_OUT + g * C_OUT_G) * L_src;
    /* ROWS_STEP(NC, mv, LOAD_DY): the contribution of channels co0 .. co0 + NC - 1 to the M_TILE vectors of m
     * from mv on; steps whose dy reads all lie inside the rows (the middle loop below) load without guards. */
#define ROWS_DY_INTERIOR(c, l) LOADV(dyr[c] + (l))
#define ROWS_DY_EDGE(c, l) gather_masked(dyr[c], l, 1, L_src)
#define ROWS_STEP(NC, mv, ROWS_DY)                                                      \
        {                                                                               \
            accv_t part[M_TILE][STRIDE];                                                \
            UNROLL                                                                      \
            for (int t = 0; t < M_TILE; ++t)                                            \
                UNROLL                                                                  \
                for (int r = 0; r < STRIDE; ++r)                                        \
                    part[t][r] = co0 == 0 ? (accv_t)0 : LOADV_PRIVATE(&acc[r][(mv) + t * VEC]); \
            UNROLL                                                                      \
            for (int c = 0; c < (NC); ++c)                                              \
                UNROLL /* fully: part[] is indexed by the tap's phase */                \
                for (int k = 0; k < K; ++k)                                             \
                    UNROLL                                                              \
                    for (int t = 0; t < M_TILE; ++t)                                    \
                        part[t][k * DILATION % STRIDE] +=                               \
                            wk[c][k] * ROWS_DY(c, m_first + (mv) + t * VEC - k * DILATION / STRIDE); \
            UNROLL                                                                      \
            for (int t = 0; t < M_TILE; ++t)                                            \
                UNROLL                                                                  \
                for (int r = 0; r < STRIDE; ++r)                                        \
                    STOREV_PRIVATE(&acc[r][(mv) + t * VEC], part[t][r]);               \
        }
    /* ROWS_GROUP(NC): output channels co0 .. co0 + NC - 1, their weights in registers, over all positions. */
#define ROWS_GROUP(NC)                                                                  \
    {                                                                                   \
        acc_t wk[NC][K];                                                                \
        __global const store_t *dyr[NC];                                                \
        UNROLL                                                                          \
        for (int c = 0; c < (NC); ++c) {                                                \
            dyr[c] = dyg + (long)(co0 + c) * L_src;                                     \
            UNROLL_TAPS                                                                 \
            for (int k = 0; k < K; ++k)                                                 \
                wk[c][k] = LOAD(w, ((long)(g * C_OUT_G + co0 + c) * C_IN_G + ci) * K + k); \
        }                                                                               \
        int mv = 0;                                                                     \
        for (; mv < m_end && (m_first + mv - O_MAX < 0 || m_first + mv + M_TILE * VEC > L_src); mv += M_TILE * VEC) \
            ROWS_STEP(NC, mv, ROWS_DY_EDGE)                                             \
        for (; mv < m_end && m_first + mv + M_TILE * VEC <= L_src; mv += M_TILE * VEC) \
            ROWS_STEP(NC, mv, ROWS_DY_INTERIOR)                                         \
        for (; mv < m_end; mv += M_TILE * VEC)                                          \
            ROWS_STEP(NC, mv, ROWS_DY_EDGE)                                             \
    }
    /* Groups of CO_GROUP channels, then one of the C_OUT_G % CO_GROUP left, built for that many: channels
     * past the last reading some row with weight 0 would turn an Inf or NaN in it into NaN (0 x Inf). */
    int co0 = 0;
    for (; co0 + CO_GROUP <= C_OUT_G; co0 += CO_GROUP)
        ROWS_GROUP(CO_GROUP)
#if C_OUT_G % CO_GROUP != 0
    ROWS_GROUP(C_OUT_G % CO_GROUP)
#endif
    const acc_t b = BIAS(g * C_IN_G + ci);
    __global store_t *dxr = dx + ((long)n * C_IN + g * C_IN_G + ci) * L_dst;
    for (int mv = 0; mv < m_end; ++mv)
        UNROLL
        for (int r = 0; r < STRIDE; ++r) {
            const int i = (m_first + mv) * STRIDE + r - pad_l;
            if (i >= 0 && i < L_dst)
                STORE(dxr, i, acc[r][mv] + b);
        }
}
#endif

#ifdef KERNEL_CONV1D_BACKWARD_DATA_COLS
#ifndef COLS_RUN
#define COLS_RUN 1024 /* positions of one row per work-item, summed in private memory */
#endif
__kernel void conv1d_backward_data_cols(__global const store_t *restrict cols, __global const store_t *restrict bias,
                                        __global store_t *restrict dx, const int L_dst, const int L_src,
                                        const int pad_l, const int has_bias)
{
    const int i0 = get_global_id(0) * COLS_RUN;
    if (i0 >= L_dst)
        return;
    const int c = get_global_id(1); /* channel */
    const long row = c + (long)get_global_id(2) * (C_IN_G * GROUPS);
    __global const store_t *col = cols + row * K * L_src;
    const int run = i0 + COLS_RUN < L_dst ? COLS_RUN : L_dst - i0;
    acc_t sums[COLS_RUN];
    for (int j = 0; j < COLS_RUN; ++j)
        sums[j] = 0;
    /* tap by tap (each column row read along l), so that every position adds its taps in order */
    for (int k = 0; k < K; ++k) {
        const int offset = k * DILATION - pad_l - i0; /* j = l * STRIDE + offset */
        int l = floor_div(-offset + STRIDE - 1, STRIDE);
        int l_end = floor_div(run - 1 - offset, STRIDE);
        l = l < 0 ? 0 : l;
        l_end = l_end < L_src - 1 ? l_end : L_src - 1;
        __global const store_t *tap = col + (long)k * L_src;
        for (; l <= l_end; ++l)
            sums[l * STRIDE + offset] += LOAD(tap, l);
    }
    const acc_t b = BIAS(c);
    __global store_t *out = dx + row * L_dst + i0;
    for (int j = 0; j < run; ++j)
        STORE(out, j, sums[j] + b);
}
#endif

#ifdef KERNEL_CONV1D_BACKWARD_DATA_COLUMNS
/* Grid: dim 0 = tile of COLS_POS positions q, dim 1 = g * (C_IN_G * K / SPAN rounded up) + entry tile;
 * work-groups of one item. The last entry tile slides back to end at the row's end (the host keeps
 * SPAN = COLS_RV * VEC within C_IN_G * K) and stores only its own entries; positions past the last read
 * the last one's dy and store nothing. Runtime arguments: L_src (dy's row), positions (N * L_src). */
#ifndef COLS_POS
#define COLS_POS 6 /* positions per work-item */
#endif
#ifndef COLS_RV
#define COLS_RV 2 /* vectors of VEC entries (ci, k) per work-item */
#endif
#define COLS_R (C_IN_G * K)
#define COLS_SPAN (COLS_RV * VEC)
#define COLS_R_TILES ((COLS_R + COLS_SPAN - 1) / COLS_SPAN)
__kernel EXPLICIT_VECTORS void conv1d_backward_data_columns(__global const store_t *restrict dy,
                                                            __global const store_t *restrict w,
                                                            __global store_t *restrict cols, const int L_src,
                                                            const int positions)
{
    const int first = get_global_id(0) * COLS_POS;
    const int g = get_global_id(1) / COLS_R_TILES;
    const int r0 = (get_global_id(1) - g * COLS_R_TILES) * COLS_SPAN;
    const int r_base = r0 + COLS_SPAN > COLS_R ? COLS_R - COLS_SPAN : r0;
    __global const store_t *dyq[COLS_POS];
    UNROLL
    for (int t = 0; t < COLS_POS; ++t) {
        const int q = first + t < positions ? first + t : positions - 1;
        const int n = q / L_src;
        dyq[t] = dy + ((long)n * C_OUT + g * C_OUT_G) * L_src + (q - n * L_src);
    }
    __global const store_t *wg = w + (long)g * C_OUT_G * COLS_R + r_base;
    accv_t acc[COLS_POS][COLS_RV];
    ZERO_TILE(acc, COLS_POS, COLS_RV);
    for (int co = 0; co < C_OUT_G; ++co) {
        accv_t wv[COLS_RV];
        UNROLL
        for (int j = 0; j < COLS_RV; ++j)
            wv[j] = LOADV(wg + (long)co * COLS_R + j * VEC);
        UNROLL
        for (int t = 0; t < COLS_POS; ++t) {
            const acc_t d = LOAD(dyq[t], co * L_src);
            UNROLL
            for (int j = 0; j < COLS_RV; ++j)
                acc[t][j] += d * wv[j];
        }
    }
    UNROLL
    for (int t = 0; t < COLS_POS; ++t) {
        const int q = first + t;
        if (q >= positions)
            break;
        const int n = q / L_src, l = q - n * L_src;
        __global store_t *col = cols + ((long)n * C_IN_G * GROUPS * K + (long)g * COLS_R) * L_src + l;
        UNROLL
        for (int j = 0; j < COLS_RV; ++j) {
            accv_lanes lanes;
            lanes.v = acc[t][j];
            UNROLL
            for (int v = 0; v < VEC; ++v) {
                const int r = r_base + j * VEC + v;
                if (r >= r0)
                    STORE(col, (long)r * L_src, lanes.s[v]);
            }
        }
    }
}
#endif
