/* flip_weights.cl: the weights of a stride-1 input gradient in forward form.
 *
 *   wf[g*C_IN_G + ci, co, K-1-k] = w[g*C_OUT_G + co, ci, k]
 *
 * With them dx = conv1d(dy, wf) at padding (K-1)*DILATION - pad on each side, so the input gradient runs on
 * the forward kernel and its tiles (the host picks this where the built-in table says so).
 * Grid: dim 0 = element e of wf. Macros read: dtype; the layer comes as runtime arguments, so that one
 * program serves every layer of a dtype.
 */
__kernel void flip_weights(__global const store_t *restrict w, __global store_t *restrict wf,
                           const int c_in_g, const int c_out_g, const int groups, const int taps)
{
    const int e = get_global_id(0);
    if (e >= c_in_g * groups * c_out_g * taps)
        return;
    const int k = e % taps, co = e / taps % c_out_g, row = e / (taps * c_out_g); /* row = g*c_in_g + ci */
    const int g = row / c_in_g, ci = row % c_in_g;
    STORE(wf, e, LOAD(w, ((g * c_out_g + co) * c_in_g + ci) * taps + (taps - 1 - k)));
}
