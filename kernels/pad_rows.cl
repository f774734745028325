/* pad_rows.cl: input rows copied into a padded staging layout (deep or strided reductions).
 *
 *   xp[r, ph, j] = xpad[r, j * PHASES + ph - pad_l]  for j * PHASES + ph < padded  (load_padded(), PAD_MODE)
 *                = 0                                 beyond, up to the phase length LDP
 *
 * A staged row holds PHASES phases of LDP elements each (LDX = PHASES * LDP). The kernels then read every
 * tile through their unguarded paths: the padding is in place and the zero tail covers the last tile's
 * overhang. With PHASES = the stride, the inputs of consecutive output positions are consecutive in a
 * phase: vector loads instead of element-wise gathers. LDP is an odd number of cache lines (host's
 * choice): with row lengths of a multiple of 4 KiB, the rows of one column all map onto the same cache
 * set, and a deep reduction walking down that column thrashes the cache.
 * Grid: dim 0 = r * (LDX / LINE) + line of LINE elements e in [0, LDX): rows and their lines in one
 * dimension, so that short rows (a few lines) fill whole work-groups instead of one work-group each.
 * Macros read: PAD_MODE, PHASES, LINE, dtype. Runtime arguments: L (input row length, >= 1), pad_l, padded
 * (pad_l + L + pad_r), LDP, rows.
 *
 * pad_rows_blocked: the padded rows in blocks of VEC channels side by side, accumulation type, for the
 * weight gradient with lanes along input channels (conv1d_backward_weight_blocked):
 *
 *   xb[(rb * LDB + q) * VEC + v] = xpad[ng * C_IN_G + b * VEC + v, q - pad_l]  for b * VEC + v < C_IN_G
 *                                = 0                                             for the channels beyond
 *   with rb = ng * CI_BLOCKS + b, ng = n * GROUPS + g, q in [0, LDB = padded).
 * A work-item copies a VEC x VEC square: positions q0 .. q0 + VEC of the block's VEC rows. Inside the
 * rows it loads VEC row vectors and transposes them in registers (log2(VEC) rounds of lane interleaves),
 * so that it stores VEC whole vectors; squares on the padding, past LDB or with missing channels go
 * element by element. Grid: dim 0 = rb * ceil(LDB / VEC) + q0 / VEC. Macros read: C_IN_G, VEC, PAD_MODE, dtype.
 * Runtime arguments: L, pad_l, LDB, rows (of xb).
 * pad_columns: the padded input of every output position as one column, the taps of each input channel
 * side by side, in the accumulation type, for the passes of short rows (conv1d_forward_columns,
 * conv1d_backward_weight_columns).
 * Columns are cut into panels of SPAN entries, and a panel's columns lie one after the other, so that a
 * work-item of the pass streams its panel from contiguous memory:
 *
 *   xc[((g * PANELS + t) * Q + q) * SPAN + e] = xpad[n, g*C_IN_G + ci, l*STRIDE + k*DILATION - pad_l]
 *   with ci * K + k = t * SPAN + e, q = n * L_out + l in [0, Q = N * L_out); zero past C_IN_G * K.
 * A work-item writes LINE consecutive entries of one panel's column. Grid: dim 0 = ((g * PANELS + t) * Q +
 * q) * (SPAN / LINE) + line. Macros read: C_IN_G, GROUPS, K, STRIDE, DILATION, PAD_MODE, SPAN, PANELS,
 * LINE, dtype. Runtime arguments: L, pad_l, L_out, Q.
 * Each kernel is compiled only under KERNEL_<its name> (Device.kernel defines it): a program holds the
 * kernel it launches, not its neighbours.
 */
#ifndef PHASES
#define PHASES 1 /* stride phases per staged row */
#endif
#ifndef LINE
#define LINE 16 /* elements per work-item: one cache line, which divides LDP */
#endif
#ifdef KERNEL_PAD_ROWS
__kernel EXPLICIT_VECTORS void pad_rows(__global const store_t *restrict x, __global store_t *restrict xp,
                       const int L, const int pad_l, const int padded, const int LDP, const int rows)
{
    const int lines = PHASES * LDP / LINE;
    const long item = get_global_id(0);
    const long row = item / lines;
    if (row >= rows)
        return;
    const int e0 = (int)(item - row * lines) * LINE;
    __global const store_t *xr = x + row * L;
    __global store_t *out = xp + row * (PHASES * LDP) + e0;
#if PHASES == 1
    /* a line inside the row is a plain copy (the element-wise map below runs some 3 times slower): one
     * vector where the type has vector stores (the host builds with VEC = LINE) */
    if (e0 - pad_l >= 0 && e0 - pad_l + LINE <= L) {
#if defined(HAS_STOREV) && VEC == LINE
        *(__global accv_t *)out = LOADV(xr + e0 - pad_l);
#else
        UNROLL
        for (int v = 0; v < LINE; ++v)
            STORE(out, v, LOAD(xr, e0 - pad_l + v));
#endif
        return;
    }
#endif
    const int phase = e0 / LDP, j0 = e0 - phase * LDP; /* a line lies in one phase: LINE divides LDP */
#if PHASES > 1 && defined(HAS_STOREV) && VEC == LINE
    /* A line whose inputs lie inside the row: every PHASES-th element of a contiguous run, then one vector
     * store (element by element through the padding map, strided copies ran at a quarter of the plain
     * copy's speed). Strides 2 and 4 pick the lanes out of whole vectors by shuffles. */
    const int first = j0 * PHASES + phase - pad_l;
    if (first >= 0 && first + LINE * PHASES <= L) {
        __global const store_t *run = xr + first;
#if PHASES == 2 && LINE == 16 && defined(HAS_SHUFFLEVECTOR)
        const accv_t a = LOADV(run), b = LOADV(run + 16);
        *(__global accv_t *)out = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
#elif PHASES == 4 && LINE == 16 && defined(HAS_SHUFFLEVECTOR)
        const accv_t a = LOADV(run), b = LOADV(run + 16), c = LOADV(run + 32), d = LOADV(run + 48);
        const float8 ab = __builtin_shufflevector(a, b, 0, 4, 8, 12, 16, 20, 24, 28);
        const float8 cd = __builtin_shufflevector(c, d, 0, 4, 8, 12, 16, 20, 24, 28);
        *(__global accv_t *)out = __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
        accv_lanes lanes;
        UNROLL
        for (int v = 0; v < LINE; ++v)
            lanes.s[v] = LOAD(run, v * PHASES);
        *(__global accv_t *)out = lanes.v;
#endif
        return;
    }
#endif
    for (int v = 0; v < LINE; ++v) {
        const int q = (j0 + v) * PHASES + phase; /* index into the padded row */
        STORE(out, v, q < padded ? load_padded(xr, q - pad_l, L) : (acc_t)0);
    }
}
#endif

#ifdef KERNEL_PAD_ROWS_BLOCKED
#define CI_BLOCKS ((C_IN_G + VEC - 1) / VEC)
#if defined(HAS_SHUFFLEVECTOR) && (VEC == 4 || VEC == 8 || VEC == 16)
#define HAS_INTERLEAVE 1
#endif
#ifdef HAS_INTERLEAVE
/* The lanes of a and b alternating, from their first halves (LO) or their second halves (HI). */
#if VEC == 16
#define INTERLEAVE_LO(a, b) __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
#define INTERLEAVE_HI(a, b) __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
#elif VEC == 8
#define INTERLEAVE_LO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11)
#define INTERLEAVE_HI(a, b) __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15)
#else
#define INTERLEAVE_LO(a, b) __builtin_shufflevector(a, b, 0, 4, 1, 5)
#define INTERLEAVE_HI(a, b) __builtin_shufflevector(a, b, 2, 6, 3, 7)
#endif
#endif

__kernel EXPLICIT_VECTORS void pad_rows_blocked(__global const store_t *restrict x, __global acc_t *restrict xb,
                               const int L, const int pad_l, const int LDB, const int rows)
{
    const int squares = (LDB + VEC - 1) / VEC;
    const long item = get_global_id(0);
    const int rb = (int)(item / squares);
    if (rb >= rows)
        return;
    const int q0 = (int)(item - (long)rb * squares) * VEC;
    const int b = rb % CI_BLOCKS;
    const long first_row = (long)(rb / CI_BLOCKS) * C_IN_G + b * VEC;
    __global acc_t *out = xb + ((long)rb * LDB + q0) * VEC;
#ifdef HAS_INTERLEAVE
    if (q0 - pad_l >= 0 && q0 - pad_l + VEC <= L && q0 + VEC <= LDB && (b + 1) * VEC <= C_IN_G) {
        /* Row v's vector in r[v]; each round pairs r[j] with r[j + VEC/2] and interleaves them, and after
         * log2(VEC) rounds r[i] holds position q0 + i of the VEC rows. */
        accv_t r[VEC];
        UNROLL
        for (int v = 0; v < VEC; ++v)
            r[v] = LOADV(x + (first_row + v) * L + q0 - pad_l);
        UNROLL
        for (int round = 1; round < VEC; round *= 2) {
            accv_t next[VEC];
            UNROLL
            for (int j = 0; j < VEC / 2; ++j) {
                next[2 * j] = INTERLEAVE_LO(r[j], r[j + VEC / 2]);
                next[2 * j + 1] = INTERLEAVE_HI(r[j], r[j + VEC / 2]);
            }
            UNROLL
            for (int j = 0; j < VEC; ++j)
                r[j] = next[j];
        }
        UNROLL
        for (int i = 0; i < VEC; ++i)
            *(__global accv_t *)(out + i * VEC) = r[i];
        return;
    }
#endif
    for (int i = 0; i < VEC && q0 + i < LDB; ++i)
        for (int v = 0; v < VEC; ++v)
            out[i * VEC + v] = b * VEC + v < C_IN_G ? load_padded(x + (first_row + v) * L, q0 + i - pad_l, L) : (acc_t)0;
}
#endif

#ifdef KERNEL_PAD_COLUMNS
__kernel EXPLICIT_VECTORS void pad_columns(__global const store_t *restrict x, __global acc_t *restrict xc,
                                           const int L, const int pad_l, const int L_out, const int Q)
{
    const long item = get_global_id(0);
    const long column = item / (SPAN / LINE); /* (g * PANELS + t) * Q + q */
    if (column >= (long)GROUPS * PANELS * Q)
        return;
    const int panel = (int)(column / Q), q = (int)(column - (long)panel * Q);
    const int g = panel / PANELS;
    const int e0 = (panel - g * PANELS) * SPAN + (int)(item - column * (SPAN / LINE)) * LINE;
    const int n = q / L_out, l = q - n * L_out;
    __global const store_t *xn = x + ((long)n * GROUPS + g) * C_IN_G * L;
    __global acc_t *out = xc + item * LINE;
    UNROLL
    for (int v = 0; v < LINE; ++v) {
        const int e = e0 + v, ci = e / K, k = e - ci * K;
        const acc_t value = load_padded(xn + (long)(ci < C_IN_G ? ci : C_IN_G - 1) * L, l * STRIDE + k * DILATION - pad_l, L);
        out[v] = ci < C_IN_G ? value : (acc_t)0;
    }
}
#endif
