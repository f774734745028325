/* fma_peak.cl: the multiply-add throughput of a device, the benchmark's "peak" column.
 *
 *   a[i] = a[i] * b + c   ACC independent chains of float16 per work-item, `iters` times
 *
 * ACC chains hide the multiply-add latency (4 cycles x 2 units on a CPU core needs 8); the sums are
 * written out so that nothing is optimised away. FLOPs = 2 * 16 * ACC * iters * work-items.
 * Macros read: ACC.
 */
#ifndef ACC
#define ACC 12 /* independent float16 chains per work-item */
#endif

__kernel void fma_peak(__global float *out, const int iters, const float b, const float c)
{
    float16 a[ACC];
#pragma unroll
    for (int i = 0; i < ACC; ++i)
        a[i] = (float16)(get_global_id(0) + i) * 1e-3f;
    for (int n = 0; n < iters; ++n)
#pragma unroll
        for (int i = 0; i < ACC; ++i)
            a[i] = a[i] * b + c; /* contracted into one multiply-add, as in the kernels */
    float16 s = 0;
#pragma unroll
    for (int i = 0; i < ACC; ++i)
        s += a[i];
    out[get_global_id(0)] = dot(s.lo.lo, s.lo.hi) + dot(s.hi.lo, s.hi.hi);
}
