/* common.cl: definitions shared by every clconv kernel (prepended to each pass's source).
 *
 * Storage and accumulation types:
 *   DTYPE_DOUBLE  storage double, accumulate double (needs cl_khr_fp64)
 *   DTYPE_HALF    storage half through vload_half/vstore_half, accumulate float (no cl_khr_fp16 needed)
 *   (neither)     storage float, accumulate float
 * Padding modes (PAD_MODE), applied by load_padded() to an index into the padded row:
 *   0 zeros, 1 reflect (edge excluded), 2 replicate, 3 circular.
 * Element offsets that can pass 2^31 (batch * channels * length) are formed in `long`.
 */
#if defined(DTYPE_DOUBLE)
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double store_t;
typedef double acc_t;
#define LOAD(p, i) ((acc_t)(p)[i])
#define STORE(p, i, v) ((p)[i] = (v))
#elif defined(DTYPE_HALF)
typedef half store_t;
typedef float acc_t;
#define LOAD(p, i) vload_half((i), (p))
#define STORE(p, i, v) vstore_half((v), (i), (p))
#else
typedef float store_t;
typedef float acc_t;
#define LOAD(p, i) ((p)[i])
#define STORE(p, i, v) ((p)[i] = (v))
#endif

#ifndef PAD_MODE
#define PAD_MODE 0 /* 0 zeros, 1 reflect, 2 replicate, 3 circular */
#endif

/* Maps index i of the padded row onto the row [0, len) and reads it; zero where nothing maps.
 * The final range test also covers lanes past the end of a tile, whose i may lie beyond the padding. */
inline acc_t load_padded(__global const store_t *row, int i, int len)
{
#if PAD_MODE == 1
    i = i < 0 ? -i : (i >= len ? 2 * (len - 1) - i : i);
#elif PAD_MODE == 2
    i = i < 0 ? 0 : (i >= len ? len - 1 : i);
#elif PAD_MODE == 3
    i = i < 0 ? i + len : (i >= len ? i - len : i);
#endif
    return (i >= 0 && i < len) ? LOAD(row, i) : (acc_t)0;
}
