/* weight_layout.cl: weights reordered for the register-blocked forward pass.
 *
 *   w_t[((g*C_IN_G + ci)*K + k)*C_OUT_G + co] = w[((g*C_OUT_G + co)*C_IN_G + ci)*K + k]
 *
 * The forward pass reads TILE_CO consecutive output channels at one (ci, k); in torch's layout those lie
 * C_IN_G*K apart (a cache line each), here they are adjacent. Grid: dim 0 = element of w_t.
 * Macros read: C_IN_G, C_OUT_G, GROUPS, K, dtype.
 */
__kernel void weights_ci_k_co(__global const store_t *restrict w, __global store_t *restrict w_t)
{
    const int j = get_global_id(0);
    if (j >= GROUPS * C_IN_G * K * C_OUT_G)
        return;
    const int co = j % C_OUT_G, k = (j / C_OUT_G) % K, ci = (j / (C_OUT_G * K)) % C_IN_G, g = j / (C_OUT_G * K * C_IN_G);
    STORE(w_t, j, LOAD(w, ((g * C_OUT_G + co) * C_IN_G + ci) * K + k));
}
