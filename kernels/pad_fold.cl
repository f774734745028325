/* pad_fold.cl: the adjoint of reflect, replicate and circular padding (used by the input gradient).
 *
 *   dx[r, i] = sum over padded positions q in [-pad_l, L + pad_r) that PAD_MODE maps onto i of dxp[r, q + pad_l]
 *
 * One work-item per (row r, position i) gathers its contributions in a fixed order (the position itself,
 * then the left padding, then the right), so the result is the same on every run without atomics.
 * Grid: dim 0 = i, dim 1 = row. Macros read: PAD_MODE (1 reflect, 2 replicate, 3 circular), dtype.
 */
__kernel void pad_fold(__global const store_t *restrict dxp, __global store_t *restrict dx,
                       const int L, const int pad_l, const int pad_r)
{
    const int i = get_global_id(0);
    if (i >= L)
        return;
    const long row = get_global_id(1);
    __global const store_t *src = dxp + row * (L + pad_l + pad_r) + pad_l; /* src[q], q in [-pad_l, L + pad_r) */
    acc_t sum = LOAD(src, i);
#if PAD_MODE == 1
    if (i >= 1 && i <= pad_l)
        sum += LOAD(src, -i);
    if (2 * (L - 1) - i >= L && 2 * (L - 1) - i < L + pad_r)
        sum += LOAD(src, 2 * (L - 1) - i);
#elif PAD_MODE == 2
    if (i == 0)
        for (int q = -pad_l; q < 0; ++q)
            sum += LOAD(src, q);
    if (i == L - 1)
        for (int q = L; q < L + pad_r; ++q)
            sum += LOAD(src, q);
#elif PAD_MODE == 3
    if (i - L >= -pad_l)
        sum += LOAD(src, i - L);
    if (i + L < L + pad_r)
        sum += LOAD(src, i + L);
#endif
    STORE(dx, row * L + i, sum);
}
