/* flip_weights.cl: the weights of a stride-1 input gradient in forward form.
 *
 *   wf[g*C_IN_G + ci, co, K-1-k] = w[g*C_OUT_G + co, ci, k]
 *
 * With them dx = conv1d(dy, wf) at padding (K-1)*DILATION - pad on each side, so the input gradient runs on
 * the forward kernel and its tiles (the host picks this where the built-in table says so).
 * Grid: dim 0 = element e of wf. Macros read: C_IN_G, C_OUT_G, GROUPS, K, dtype.
 */
__kernel void flip_weights(__global const store_t *restrict w, __global store_t *restrict wf)
{
    const int e = get_global_id(0);
    if (e >= C_IN_G * GROUPS * C_OUT_G * K)
        return;
    const int k = e % K, co = e / K % C_OUT_G, row = e / (K * C_OUT_G); /* row = g*C_IN_G + ci */
    const int g = row / C_IN_G, ci = row % C_IN_G;
    STORE(wf, e, LOAD(w, ((g * C_OUT_G + co) * C_IN_G + ci) * K + (K - 1 - k)));
}
