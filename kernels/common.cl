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

/* Loops over tile dimensions are unrolled so that the accumulator arrays live in registers. Tap loops
 * unroll fully only while K is small: code size, and PoCL's compile time, grow with K x tile (a fully
 * unrolled K=40 kernel took half a minute to build); guarded edge paths do not unroll them at all. */
#define UNROLL _Pragma("unroll")
#define NO_UNROLL _Pragma("nounroll")
#ifndef UNROLL_K_MAX
#define UNROLL_K_MAX 8 /* largest K whose tap loop unrolls fully */
#endif
#if K <= UNROLL_K_MAX
#define UNROLL_TAPS _Pragma("unroll")
#else
#define UNROLL_TAPS _Pragma("unroll 4")
#endif
/* Loops over stride phases are left to the compiler (which unrolls them: their taps then follow a constant
 * pattern) only up to a small stride: unrolled over a stride of 1000, the input gradient never finished
 * building. */
#define UNROLL_PHASES_MAX 8
#if defined(STRIDE) && STRIDE > UNROLL_PHASES_MAX
#define UNROLL_PHASES NO_UNROLL
#else
#define UNROLL_PHASES
#endif

#ifndef SUM_BLOCK
#define SUM_BLOCK 512 /* products per register partial sum before it is folded into the total */
#endif

/* The bias of channel i where the call has one (has_bias, a runtime argument: a layer's forward and the
 * bias-free forward its input gradient runs as share one program), else 0. */
#define BIAS(i) (has_bias ? LOAD(bias, i) : (acc_t)0)

#ifndef PAD_MODE
#define PAD_MODE 0 /* 0 zeros, 1 reflect, 2 replicate, 3 circular */
#endif

/* row[i] inside [0, len), zero outside (len >= 1). Branch-free: the load is clamped into the row and the
 * value selected, so lanes of a vector gather stay straight-line code. */
static inline acc_t load_masked(__global const store_t *row, int i, int len)
{
    const acc_t v = LOAD(row, i < 0 ? 0 : (i >= len ? len - 1 : i));
    return (i >= 0 && i < len) ? v : (acc_t)0;
}

/* Kernels that write their SIMD out (accv_t vectors, lane transposes) and launch in work-groups of more
 * than one item: Intel's CPU compiler would also pack work-items into vector lanes, turning every explicit
 * vector load and store into a gather or scatter. Its vector-length hint of 1 keeps one work-item per
 * thread of code; other compilers do not know the attribute and do not define the macro. */
#if defined(cl_intel_vec_len_hint)
#define EXPLICIT_VECTORS __attribute__((intel_vec_len_hint(1)))
#else
#define EXPLICIT_VECTORS
#endif

/* Maps index i of the padded row onto the row [0, len) and reads it; zero where nothing maps.
 * The final range test also covers lanes past the end of a tile, whose i may lie beyond the padding. */
static inline acc_t load_padded(__global const store_t *row, int i, int len)
{
#if PAD_MODE == 1
    i = i < 0 ? -i : (i >= len ? 2 * (len - 1) - i : i);
#elif PAD_MODE == 2
    i = i < 0 ? 0 : (i >= len ? len - 1 : i);
#elif PAD_MODE == 3
    i = i < 0 ? i + len : (i >= len ? i - len : i);
#endif
    return load_masked(row, i, len);
}

/* Vectors of VEC consecutive output positions, for register-blocked kernels on CPUs: PoCL vectorises
 * only innermost loops and the loop over work-items is the outermost one, so SIMD is written out.
 *   accv_t                       VEC lanes of acc_t; accv_lanes views them as an array
 *   gather(p, s)                 lanes p[0], p[s], ..., p[(VEC-1)*s]
 *   gather_padded(r, i, s, len)  lanes load_padded(r, i + j*s, len)
 *   gather_masked(r, i, s, len)  lanes load_masked(r, i + j*s, len)
 *   LOADV(p)                     lanes p[0 .. VEC-1]: one unaligned vector load where the type allows.
 *   LOADV_PRIVATE(p)             the same from private memory (acc_t elements); STOREV_PRIVATE(p, x) the reverse.
 *   STOREV(p, x)                 the reverse, where HAS_STOREV (float and double storage) says it exists.
 * vloadn would be the obvious contiguous load but is an out-of-line call on
 * PoCL; a packed struct gives the unaligned vector load instead.
 */
#ifndef VEC
#define VEC 8 /* consecutive positions per vector (1, 2, 4, 8 or 16) */
#endif
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#if defined(DTYPE_DOUBLE)
#define ACC_NAME double
#else
#define ACC_NAME float
#endif
#if VEC == 1
typedef acc_t accv_t;
#else
typedef CAT(ACC_NAME, VEC) accv_t;
#endif
typedef union { accv_t v; acc_t s[VEC]; } accv_lanes;

/* Lanes that take no part in a sum are set to 0 by a select (one blend), never multiplied by a 0/1 mask:
 * a lane holding Inf or NaN times 0 is NaN, which would then reach the sum.
 *   lanev_t      VEC lanes of the integer type select() takes with accv_t (int, long for double)
 *   LANE_IDS     the lanes' numbers 0 .. VEC-1
 *   keep_lanes(x, first, len)  lanes j of x with first + j in [0, len), the others 0
 */
#if defined(DTYPE_DOUBLE)
#define LANE_INT long
#else
#define LANE_INT int
#endif
#if VEC == 1
typedef LANE_INT lanev_t;
#define LANE_IDS ((lanev_t)0)
#else
typedef CAT(LANE_INT, VEC) lanev_t;
#if VEC == 2
#define LANE_IDS ((lanev_t)(0, 1))
#elif VEC == 4
#define LANE_IDS ((lanev_t)(0, 1, 2, 3))
#elif VEC == 8
#define LANE_IDS ((lanev_t)(0, 1, 2, 3, 4, 5, 6, 7))
#else
#define LANE_IDS ((lanev_t)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
#endif
#endif

static inline accv_t keep_lanes(accv_t x, int first, int len)
{
#if VEC == 1
    return (first >= 0 && first < len) ? x : (acc_t)0;
#else
    const lanev_t i = (lanev_t)first + LANE_IDS;
    return select((accv_t)0, x, (i >= (lanev_t)0) & (i < (lanev_t)len));
#endif
}

/* The lanes' sum, first to last: the same order, and bits, on every run. */
static inline acc_t sum_lanes(accv_t x)
{
    accv_lanes lanes;
    lanes.v = x;
    acc_t sum = 0;
    UNROLL
    for (int v = 0; v < VEC; ++v)
        sum += lanes.s[v];
    return sum;
}

static inline accv_t gather(__global const store_t *p, int s)
{
    accv_lanes lanes;
    UNROLL
    for (int v = 0; v < VEC; ++v)
        lanes.s[v] = LOAD(p, v * s);
    return lanes.v;
}

static inline accv_t gather_padded(__global const store_t *row, int i, int s, int len)
{
    accv_lanes lanes;
    UNROLL
    for (int v = 0; v < VEC; ++v)
        lanes.s[v] = load_padded(row, i + v * s, len);
    return lanes.v;
}

static inline accv_t gather_masked(__global const store_t *row, int i, int s, int len)
{
    accv_lanes lanes;
    UNROLL
    for (int v = 0; v < VEC; ++v)
        lanes.s[v] = load_masked(row, i + v * s, len);
    return lanes.v;
}

/* Lane shuffles of two vectors with constant lane lists: one instruction where the compiler has the
 * builtin (clang's, which PoCL uses); the kernels that shuffle keep a lane-by-lane path for the others. */
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define HAS_SHUFFLEVECTOR 1
#endif
#endif

#if VEC > 1
typedef struct __attribute__((packed)) { accv_t v; } unaligned_accv;
#define LOADV_PRIVATE(p) (((const unaligned_accv *)(p))->v)
#define STOREV_PRIVATE(p, x) (((unaligned_accv *)(p))->v = (x))
#else
#define LOADV_PRIVATE(p) (*(p))
#define STOREV_PRIVATE(p, x) (*(p) = (x))
#endif
#if !defined(DTYPE_HALF) && VEC > 1
#define LOADV(p) (((__global const unaligned_accv *)(p))->v)
#define HAS_STOREV 1
#if defined(__has_builtin)
#if __has_builtin(__builtin_nontemporal_store)
#define HAS_NONTEMPORAL_STORE 1
#endif
#endif
#if defined(NT_STORES) && NT_STORES && defined(HAS_NONTEMPORAL_STORE)
/* Outputs too big to stay in cache: aligned vectors bypass it (no read of the line before the write;
 * depthwise forward 70 -> 84 GF/s), the others store as usual. */
#define STOREV(p, x)                                                                  \
    do {                                                                              \
        if (((size_t)(p) & (sizeof(accv_t) - 1)) == 0)                                \
            __builtin_nontemporal_store((x), (__global accv_t *)(p));                 \
        else                                                                          \
            ((__global unaligned_accv *)(p))->v = (x);                                \
    } while (0)
#else
#define STOREV(p, x) (((__global unaligned_accv *)(p))->v = (x))
#endif
#else
#define LOADV(p) gather(p, 1)
#endif

/* v[0..3] = elements i .. i+3 of a row, through the padding map (load_padded; padded = 1) or zero outside
 * [0, len) (load_masked), one vector load where all four lie inside the row: how local-strategy kernels
 * stage a run of positions. */
#if !defined(DTYPE_HALF)
typedef struct __attribute__((packed)) { CAT(ACC_NAME, 4) v; } unaligned_acc4;
#endif
static inline void load_run4(__global const store_t *row, int i, int len, int padded, acc_t *v)
{
#if !defined(DTYPE_HALF)
    if (i >= 0 && i + 4 <= len) {
        const CAT(ACC_NAME, 4) q = ((__global const unaligned_acc4 *)(row + i))->v;
        v[0] = q.s0;
        v[1] = q.s1;
        v[2] = q.s2;
        v[3] = q.s3;
        return;
    }
#endif
    UNROLL
    for (int e = 0; e < 4; ++e)
        v[e] = padded ? load_padded(row, i + e, len) : load_masked(row, i + e, len);
}

/* Edges of a row: a register tile whose window crosses the row's ends copies the window into private
 * memory once per channel (scalar loads through the padding map) and runs the same vector loop on the
 * copy: gathering every lane of every tap through the map instead costs some 30 times the interior. */
static inline accv_t gather_private(const acc_t *p, int s)
{
    accv_lanes lanes;
    UNROLL
    for (int v = 0; v < VEC; ++v)
        lanes.s[v] = p[v * s];
    return lanes.v;
}

/* A[0 .. ROWS)[0 .. COLS) = 0, unrolled so that a register tile stays in registers. */
#define ZERO_TILE(A, ROWS, COLS)                                                \
    UNROLL                                                                      \
    for (int r_ = 0; r_ < (ROWS); ++r_)                                         \
        UNROLL                                                                  \
        for (int c_ = 0; c_ < (COLS); ++c_)                                     \
            A[r_][c_] = 0
/* A[r][c] += B[r][c] over the same tile: a block's partial sums folded into the running totals. */
#define ADD_TILE(A, B, ROWS, COLS)                                              \
    UNROLL                                                                      \
    for (int r_ = 0; r_ < (ROWS); ++r_)                                         \
        UNROLL                                                                  \
        for (int c_ = 0; c_ < (COLS); ++c_)                                     \
            A[r_][c_] += B[r_][c_]

/* acc[c][t*VEC + v] += lane v of vector accumulator ACCV[c][t], for the TILE rows and TILE_L vectors a
 * register-blocked kernel keeps. */
#define FOLD_INTO_ACC(ACCV)                                                     \
    UNROLL                                                                      \
    for (int c_ = 0; c_ < (int)(sizeof(ACCV) / sizeof(ACCV[0])); ++c_)         \
        UNROLL                                                                  \
        for (int t_ = 0; t_ < TILE_L; ++t_) {                                   \
            accv_lanes lanes_;                                                  \
            lanes_.v = ACCV[c_][t_];                                            \
            UNROLL                                                              \
            for (int v_ = 0; v_ < VEC; ++v_)                                    \
                acc[c_][t_ * VEC + v_] += lanes_.s[v_];                         \
        }

/* Order of the work-groups over (position block, channel tile), grid dims 0 and 1. PoCL runs work-groups
 * by linear id, dim 0 fastest: plain grid order sweeps a sample's whole row for each channel tile, so a
 * deep reduction (C_in_g x window beyond the core's cache) reloads its input from far memory every time.
 * pos_block > 0 renumbers them: blocks of pos_block position groups, every channel tile of a block before
 * the next block, so the block's input window stays in cache while the channel tiles pass over it.
 * pos_block (position groups per cache block, 0: grid order) is a runtime argument: it follows the input
 * length, which would otherwise cost a build per length class. */
static inline int2 tile_order(const int pos_block)
{
    if (pos_block <= 0)
        return (int2)(get_group_id(0), get_group_id(1));
    const int positions = get_num_groups(0), rows = get_num_groups(1);
    const int linear = get_group_id(0) + positions * get_group_id(1);
    const int block = linear / (pos_block * rows);
    const int within = linear - block * (pos_block * rows);
    const int width = positions - block * pos_block < pos_block ? positions - block * pos_block : pos_block;
    return (int2)(block * pos_block + within % width, within / width);
}
