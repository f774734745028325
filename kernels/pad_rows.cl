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
 * Grid: dim 0 = e in [0, LDX), dim 1 = row r. Macros read: PAD_MODE, PHASES, dtype. Runtime arguments:
 * L (input row length, >= 1), pad_l, padded (pad_l + L + pad_r), LDP.
 */
#ifndef PHASES
#define PHASES 1 /* stride phases per staged row */
#endif
__kernel void pad_rows(__global const store_t *restrict x, __global store_t *restrict xp,
                       const int L, const int pad_l, const int padded, const int LDP)
{
    const int e = get_global_id(0);
    if (e >= PHASES * LDP)
        return;
    const long row = get_global_id(1);
    const int q = (e % LDP) * PHASES + e / LDP; /* index into the padded row */
    const acc_t v = q < padded ? load_padded(x + row * L, q - pad_l, L) : (acc_t)0;
    STORE(xp, row * (PHASES * LDP) + e, v);
}
