/* pad_rows.cl: input rows copied into a padded staging layout (the forward pass of deep reductions).
 *
 *   xp[r, j] = xpad[r, j - pad_l]  for j < padded      (xpad through load_padded(), PAD_MODE)
 *            = 0                   for padded <= j < LDX
 *
 * The forward kernel then reads every tile through its unguarded path: the padding is in place and the
 * zero tail covers the last tile's overhang. Rows are LDX elements long, an odd number of cache lines
 * (host's choice): with row lengths of a multiple of 4 KiB, the rows of one column all map onto the same
 * cache set, and a deep reduction walking down that column thrashes the cache.
 * Grid: dim 0 = j, dim 1 = row r. Macros read: PAD_MODE, dtype. Runtime arguments: L (input row
 * length, >= 1), pad_l, padded (pad_l + L + pad_r), LDX.
 */
__kernel void pad_rows(__global const store_t *restrict x, __global store_t *restrict xp,
                       const int L, const int pad_l, const int padded, const int LDX)
{
    const int j = get_global_id(0);
    if (j >= LDX)
        return;
    const long row = get_global_id(1);
    const acc_t v = j < padded ? load_padded(x + row * L, j - pad_l, L) : (acc_t)0;
    STORE(xp, row * LDX + j, v);
}
