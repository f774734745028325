/* bias_grad.cl: the bias gradient, db[c] = sum_{n, l} dy[n, c, l] (+ db[c] when accumulating).
 *
 * bias_grad (CPUs): one work-item per channel sums VEC-lane vectors along each row in blocks of SUM_BLOCK
 *   vectors (blocked summation keeps float32 accurate over long rows), then the lanes, in a fixed order:
 *   the same bits on every run. Grid: dim 0 = channel.
 * bias_grad_tree (GPUs): one work-group of WG_SUM work-items per channel. Work-item i sums elements
 *   i, i + WG_SUM, ... of every row (neighbouring work-items read neighbouring elements), one partial
 *   sum per row; then the work-group adds its WG_SUM sums pairwise in __local memory, halving each step:
 *
 *       s[i] += s[i + h]   for h = WG_SUM/2, WG_SUM/4, ..., 1   (a fixed tree: the same bits every run)
 *
 *   Grid: dim 0 = channel x WG_SUM.
 * Macros read: dtype, VEC, SUM_BLOCK, WG_SUM; the channel count C is a runtime argument, so that one
 * program serves every layer of a dtype.
 * Each kernel is compiled only under KERNEL_<its name> (Device.kernel defines it): a program holds the
 * kernel it launches, not its neighbours.
 */
#ifndef WG_SUM
#define WG_SUM 256 /* work-items per channel of bias_grad_tree (a power of two) */
#endif
#ifdef KERNEL_BIAS_GRAD
__kernel EXPLICIT_VECTORS void bias_grad(__global const store_t *restrict dy, __global store_t *restrict db,
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
#endif

#ifdef KERNEL_BIAS_GRAD_TREE
__kernel __attribute__((reqd_work_group_size(WG_SUM, 1, 1)))
void bias_grad_tree(__global const store_t *restrict dy, __global store_t *restrict db,
                    const int N, const int C, const int L, const int accumulate)
{
    const int c = get_group_id(0), i = get_local_id(0);
    __local acc_t sums[WG_SUM];
    acc_t total = 0;
    for (int n = 0; n < N; ++n) {
        __global const store_t *row = dy + ((long)n * C + c) * L;
        acc_t part = 0;
        for (int l = i; l < L; l += WG_SUM)
            part += LOAD(row, l);
        total += part;
    }
    sums[i] = total;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int h = WG_SUM / 2; h > 0; h /= 2) {
        if (i < h)
            sums[i] += sums[i + h];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (i == 0)
        STORE(db, c, accumulate ? LOAD(db, c) + sums[0] : sums[0]);
}
#endif
