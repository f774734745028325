/* conv1d_backward_weight_reduce.cl: the second pass of the weight gradient (conv1d_backward_weight.cl).
 *
 *   dw[j] = sum_chunk partial[chunk][j] (+ dw[j] when accumulating),   j < w_size
 *   db[j - w_size] = the same over the bias sums,                      w_size <= j < p_size
 *
 * Chunks are summed in order, no atomics: the bits are the same on every run. Grid: dim 0 = j.
 * Macros read: dtype; the sizes come as runtime arguments, so that one program serves every layer of a
 * dtype. Without bias sums (p_size = w_size) db is never written, and the host passes dw for it.
 */
__kernel void conv1d_backward_weight_reduce(__global const acc_t *restrict partial, __global store_t *dw,
                                            __global store_t *db, const int w_size, const int p_size,
                                            const int chunks, const int accumulate, const int accumulate_bias)
{
    const int j = get_global_id(0);
    if (j >= p_size)
        return;
    acc_t sum = 0;
    for (int p = 0; p < chunks; ++p)
        sum += partial[(long)p * p_size + j];
    if (j >= w_size)
        STORE(db, j - w_size, accumulate_bias ? LOAD(db, j - w_size) + sum : sum);
    else
        STORE(dw, j, accumulate ? LOAD(dw, j) + sum : sum);
}
