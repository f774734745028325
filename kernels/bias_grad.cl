/* bias_grad.cl: the bias gradient, db[c] = sum_{n, l} dy[n, c, l] (+ db[c] when accumulating).
 *
 * One work-item per channel sums VEC-lane vectors along each row in blocks of SUM_BLOCK vectors (blocked
 * summation keeps float32 accurate over long rows), then the lanes, in a fixed order: the same bits on
 * every run. Grid: dim 0 = channel. Macros read: dtype, VEC, SUM_BLOCK; the channel count C is a runtime
 * argument, so that one program serves every layer of a dtype.
 */
__kernel void bias_grad(__global const store_t *restrict dy, __global store_t *restrict db,
                        const int N, const int C, const int L, const int accumulate)
{
    const int c = get_global_id(0);
    if (c >= C)
        return;
    accv_t acc = 0;
    for (int n = 0; n < N; ++n) {
        __global const store_t *row = dy + ((long)n * C + c) * L;
        for (int l0 = 0; l0 < L; l0 += SUM_BLOCK * VEC) {
            const int l_end = l0 + SUM_BLOCK * VEC < L ? l0 + SUM_BLOCK * VEC : L;
            accv_t part = 0;
            int l = l0;
            for (; l + VEC <= l_end; l += VEC)
                part += LOADV(row + l);
            part += gather_masked(row, l, 1, l_end);
            acc += part;
        }
    }
    const acc_t sum = sum_lanes(acc);
    STORE(db, c, accumulate ? LOAD(db, c) + sum : sum);
}
