/* flip_weights.cl: the weights of a stride-1 input gradient in forward form.
 *
 *   wf[g*C_IN_G + ci, co, K-1-k] = w[g*C_OUT_G + co, ci, k]
 *
 * With them dx = conv1d(dy, wf) at padding (K-1)*DILATION - pad on each side, so the input gradient runs on
 * the forward kernel and its tiles (the host picks this where the built-in table says so).
 * Grid: dim 0 = pair p = row*C_OUT_G + co of wf (row = g*C_IN_G + ci), each copying its taps: a pair's
 * taps are contiguous in w and in wf, and the divisions are two per pair, not three per element.
 * Macros read: dtype; the layer comes as runtime arguments, so that one program serves every layer of a
 * dtype.
 */
__kernel void flip_weights(__global const store_t *restrict w, __global store_t *restrict wf,
                           const int c_in_g, const int c_out_g, const int groups, const int taps)
{
    const int p = get_global_id(0);
    if (p >= c_in_g * groups * c_out_g)
        return;
    const int row = p / c_out_g, co = p - row * c_out_g;
    const int g = row / c_in_g, ci = row - g * c_in_g;
    __global const store_t *src = w + ((long)(g * c_out_g + co) * c_in_g + ci) * taps;
    __global store_t *dst = wf + (long)p * taps;
    for (int k = 0; k < taps; ++k)
        STORE(dst, k, LOAD(src, taps - 1 - k));
}
