/* Register-tiled matrix products of the training step.
 *
 * Two shapes cover the three products of backpropagation:
 *
 *   bp_dot_*:   C[i][j] = sum_k A[i][k] W[j][k]          z = W a (rows of A and W both
 *                                                         run along k)
 *   bp_bcast_*: C[r][n] = sum_s a(r, s) B[s][n]          delta^(l-1) = delta^l W  and
 *                                                         dC/dW = delta^T a^(l-1)
 *
 * bcast has a second, packed form (bp_pk_bcast_*, BLIS's structure: both operands
 * copied into contiguous micro-panels, a larger register tile) that it uses for the
 * gradient of a mini-batch of several blocks of s, where a walks down columns of
 * delta; it computes the same sums operation for operation.  The forward product of
 * a large mini-batch takes that form too where it is faster (bp_pk_dot, with B = W^T
 * transposed panel by panel as it is copied; bp_dot_packs decides by the layer and
 * the whole mini-batch): its sums are then chains in k order.  Layers narrower than
 * one vector (fewer inputs than lanes) have their own vectorised forms,
 * bp_dot_short and bp_narrow_tile.
 *
 * Written once with GCC/Clang vector extensions and compiled several times with
 * different -march flags (setup.py builds one extension module per instruction
 * set; python/_dispatch.py picks one at import).  Each element of C is summed by
 * one fixed sequence of operations, whatever tile, row block or thread computed
 * it: dot keeps one partial sum per vector lane and combines the lanes in a fixed
 * pairwise tree (per block of k, blocks fixed by K alone, added in order); bcast
 * sums over s in order.  The last values of a row of dot that do not fill a vector
 * go into the same lanes as one zero-padded vector (a masked load: the values after
 * them are never read), so a row's tail costs one FMA per accumulator, not a scalar
 * chain after the lane sums.  Edge tiles have fewer rows (the
 * same per-row arithmetic), repeat the last valid column of W, or overlap the
 * previous vector, recomputing identical values rather than switching to
 * different arithmetic.  Hence results never depend on the
 * thread count (they can differ between instruction sets: FMA rounds once).
 */
#ifndef BPCORE_GEMM_H
#define BPCORE_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "_optim.h"

#if defined(__AVX512F__)
#define BP_VBYTES 64
#define BP_DOT_MR 4
#define BP_DOT_NR 4
#define BP_BC_MR 4
#define BP_BC_NR 4
#define BP_PK_MR 6  /* 24 accumulators + 4 vectors of B + 1 broadcast, of 32 zmm */
#define BP_PK_NR 4
#define BP_ISA "x86-64-v4 (AVX-512)"
#elif defined(__AVX2__)
#define BP_VBYTES 32
#define BP_DOT_MR 3
#define BP_DOT_NR 3
#define BP_BC_MR 4  /* 12 accumulators + 3 rows of B + 1 broadcast: all 16 ymm registers */
#define BP_BC_NR 3
#define BP_PK_MR 4
#define BP_PK_NR 3
#define BP_ISA "x86-64-v3 (AVX2, FMA)"
#else
#define BP_VBYTES 16
#define BP_DOT_MR 3
#define BP_DOT_NR 3
#define BP_BC_MR 4
#define BP_BC_NR 2
#define BP_PK_MR 4
#define BP_PK_NR 2
#define BP_ISA "baseline"
#endif

/* Rows of A and W longer than BP_DOT_KC bytes are summed in blocks of BP_DOT_KC
 * bytes, each block of k over a block of rows of A at a time: a tile of W's rows is
 * then at most 16 KiB (in L1) and the block of A, as many rows as fill half of this
 * core's L2 (bp_l2_bytes, read once at import; BP_DOT_MC rows at most), stays in L2
 * beside the stream of W.  Rows of up to 8 KiB summed whole made the block twice
 * that, and a product with 2048 inputs fetched A from L3; 128 rows of 4 KiB, right
 * for 1 MiB of L2 or more, were the whole L2 of a 512 KiB core (Zen 3) and slower
 * there than 64.  Each k block ends with the horizontal sums of the tile, so blocks
 * of 4 KiB rather than 2 KiB: half as many sums.  The row blocks change no sum, so
 * the L2 size never changes a result. */
#ifndef BP_DOT_MC
#define BP_DOT_MC 128
#endif
#ifndef BP_DOT_KC
#define BP_DOT_KC 4096
#endif

/* This core's L2 in bytes (what bp_dot's row blocks are sized for): 1 MiB until
 * bp_set_l2_bytes is given the size the system reports. */
static ptrdiff_t bp_l2_bytes = 1 << 20;

static inline void bp_set_l2_bytes(long bytes) {
    if (bytes >= 64 * 1024) bp_l2_bytes = (ptrdiff_t)bytes;
}

/* Asks for every cache line of p[0 .. bytes) with __builtin_prefetch's rw and
 * locality (constants, hence a macro); a hint only: other compilers skip it. */
#if defined(__GNUC__) || defined(__clang__)
#define BP_PREFETCH_LINES(p, bytes, rw, locality) do {                                  \
    const char *c_ = (const char *)((uintptr_t)(p) & ~(uintptr_t)63);                   \
    for (const char *e_ = (const char *)(p) + (bytes); c_ < e_; c_ += 64)               \
        __builtin_prefetch(c_, rw, locality);                                           \
} while (0)
#else
#define BP_PREFETCH_LINES(p, bytes, rw, locality) ((void)(p), (void)(bytes))
#endif

/* Asks for the lines of p[0 .. bytes) to be brought into L2 (not L1: they are read
 * a whole step later).  The gather of a mini-batch's rows of X prefetches the rows of
 * the next one this way: a shuffled epoch reads each row from DRAM or L3 at a
 * random place, and the hardware prefetcher cannot guess the next row. */
static inline void bp_prefetch_l2(const void *p, ptrdiff_t bytes) {
    BP_PREFETCH_LINES(p, bytes, 0, 2);
}

/* Asks for the lines of p[0 .. bytes) to be brought into L1 for writing: the packed
 * form's next tile of partial sums in C, read and written a tile later, from L3 or
 * beyond when C is larger than L2 (XL's forward: 8 MiB of it, every block of s). */
static inline void bp_prefetch_w(const void *p, ptrdiff_t bytes) {
    BP_PREFETCH_LINES(p, bytes, 1, 3);
}

/* The L2 size of the system's first CPU as the C library reports it, 0 if unknown. */
static inline long bp_reported_l2_bytes(void) {
#if defined(_SC_LEVEL2_CACHE_SIZE)
    long b = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return b > 0 ? b : 0;
#else
    return 0;
#endif
}

/* bcast: values of s summed per pass over a column panel (a panel's rows of B:
 * BP_BC_SC x BP_BC_NR vectors, 32 KiB for float on AVX-512), and rows of C per
 * block (all panels of a block of rows before the next block, so that the block's
 * values of a stay in L2: 256 rows of a gradient's delta at m = 512 are 512 KiB). */
#ifndef BP_BC_SC
#define BP_BC_SC 128
#endif
#ifndef BP_BC_RC
#define BP_BC_RC 256
#endif
/* bcast copies a panel's block of B (its BP_BC_SC rows of BP_BC_NR vectors, 32 KiB
 * at most) into a contiguous buffer when a block of at least BP_BC_PACK_ROWS rows of C
 * will read it and the block's rows of B are far apart, a multiple of 512 bytes
 * apart, or span more than BP_BC_PACK_SPAN bytes: then they are all in different
 * pages, fall into a few L1 sets and evict each other, or need more pages than
 * half the L1 TLB holds (64 entries of 4 KiB on the Intel cores, 72 on Zen 4), so
 * that each tile's walk down the panel misses the TLB.  That last case is the
 * gradient of W^1 for 64 or more examples of 784 inputs (rows 3 KiB apart).  Rows
 * an odd number of lines apart over fewer pages (N2's gradient: 32 rows, 25 pages)
 * gain nothing from the copy, hence the condition (docs/performance.md has the
 * measurements). */
#ifndef BP_BC_PACK_SPAN
#define BP_BC_PACK_SPAN (128 * 1024)
#endif
#ifndef BP_BC_PACK_ROWS
#define BP_BC_PACK_ROWS 32
#endif

/* The packed form of bcast (bp_pk_bcast_*), for the gradient of a mini-batch of
 * several blocks: values of s per pass (BP_PK_KC bytes of them per row: 256 floats,
 * 128 doubles) and rows of C per block (bp_pk_block_rows: as many as 5/8 of this
 * core's L2 holds at 1 KiB a row, at most BP_PK_MC, a multiple of BP_PK_MR).  The
 * rest of L2 holds the packed panel of B (32-64 KiB), the next panel's rows of B on
 * their way, and the tiles of C.  Both copies live on the stack of the calling
 * thread.  Each block of rows packs every panel of B anew, so the larger the block,
 * the fewer copies of B: 528 rows take a mini-batch of 512 examples (XL's forward)
 * in one block, so W is copied once per call, not twice as with 384
 * (docs/performance.md has the measurements). */
#ifndef BP_PK_KC
#define BP_PK_KC 1024
#endif
#ifndef BP_PK_MC
#define BP_PK_MC 528
#endif
/* Examples from which the forward product takes the packed form (bp_dot_packs), 0 for
 * never, and the bytes of W from which it does.  The AVX2 build (two 256-bit FMA
 * pipes, where bp_dot's 3 x 3 tile loads 6 vectors per 9 FMAs, 3 of them from L2)
 * takes it from 128 examples on.  The AVX-512 build's bp_dot tile (4 x 4 vectors, 8
 * loads per 16 FMAs) is as fast or faster while W stays in the caches, and slower
 * once W is larger (it streams W once per block of rows, the packed form once per
 * call): measured on a Zen 4 core, faster packed from W = 16 MiB on, slower at 4 MiB
 * (tools/gemm_bench.c, kinds o and t; docs/performance.md).  The baseline's packed
 * tile (4 x 2 vectors, no FMA) measured slower than its dot tile: never. */
#ifndef BP_FWD_PK_ROWS
#if defined(__AVX2__)  /* the AVX-512 builds too */
#define BP_FWD_PK_ROWS 128
#else
#define BP_FWD_PK_ROWS 0
#endif
#endif
#ifndef BP_FWD_PK_BYTES
#if defined(__AVX512F__)
#define BP_FWD_PK_BYTES (8 << 20)
#else
#define BP_FWD_PK_BYTES 0
#endif
#endif
/* The delta product D^(l-1) = D^l W^l (bcast with a read along s) takes the packed
 * form for BP_DELTA_PK_ROWS rows or more and a weight operand (the call's rows s of
 * W^l and its columns of units) of BP_DELTA_PK_BYTES or more: there the packed form
 * copies W once per block of rows and bcast reads it once per block of 256 rows from
 * beyond L2; below it bcast's tile, with W's panel packed into L1, is as fast or
 * faster.  Measured on a Zen 4 core in both AVX builds (faster packed from 8 MiB on;
 * at 4 MiB within 3% either way, slower at 1 MiB and below: tools/gemm_bench.c,
 * kinds d and p, docs/performance.md); the baseline never.  Both forms give every
 * element of D the same chain of operations (0, then acc += a * b for s in order),
 * so the choice, made per call, changes no result and may follow a thread's piece. */
#ifndef BP_DELTA_PK_ROWS
#if defined(__AVX2__)
#define BP_DELTA_PK_ROWS 128
#else
#define BP_DELTA_PK_ROWS 0
#endif
#endif
#ifndef BP_DELTA_PK_BYTES
#define BP_DELTA_PK_BYTES (8 << 20)
#endif
typedef char bp_pk_mc_is_whole_tiles[BP_PK_MC % BP_PK_MR == 0 ? 1 : -1];

/* Rows of a per block of the packed form for R rows in all: R itself when they fit
 * (see BP_PK_MC), otherwise equal blocks of whole tiles (a thin last block would
 * copy all of B for a few rows).  The blocks change no sum. */
static inline ptrdiff_t bp_pk_block_rows(ptrdiff_t R) {
    ptrdiff_t fit = bp_l2_bytes * 5 / 8 / BP_PK_KC / BP_PK_MR * BP_PK_MR;
    fit = fit > BP_PK_MC ? BP_PK_MC : fit < 4 * BP_PK_MR ? 4 * BP_PK_MR : fit;
    if (R <= fit) return R;
    const ptrdiff_t blocks = (R + fit - 1) / fit;
    return ((R + blocks - 1) / blocks + BP_PK_MR - 1) / BP_PK_MR * BP_PK_MR;
}

/* bcast's rows per tile when C is narrower than one vector (bp_narrow_tile): one
 * accumulator each, enough independent chains to keep both FMA ports busy. */
#define BP_NN_MR 8

static const char *bp_isa = BP_ISA;


/* What this CPU runs: 4 = x86-64-v4 (AVX-512 F/BW/DQ/VL), 3 = x86-64-v3 (AVX2 + FMA),
 * 1 = other x86-64, 0 = not x86-64 or not known to this compiler. */
static inline int bp_cpu_level(void) {
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return 1;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return 4;
    return 3;
#else
    return 0;
#endif
}

#if defined(__GNUC__) || defined(__clang__)
#define BP_UNROLL _Pragma("GCC unroll 16")
#define BP_INLINE inline __attribute__((always_inline))

typedef float bp_vf __attribute__((vector_size(BP_VBYTES)));
typedef double bp_vd __attribute__((vector_size(BP_VBYTES)));
/* lane masks of comparisons of bp_vf / bp_vd (and their bits, for _optim.h) */
typedef int32_t bp_vmf __attribute__((vector_size(BP_VBYTES)));
typedef int64_t bp_vmd __attribute__((vector_size(BP_VBYTES)));
typedef float bp_v4f __attribute__((vector_size(16)));
typedef double bp_v2d __attribute__((vector_size(16)));
#if BP_VBYTES >= 32
typedef float bp_v8f __attribute__((vector_size(32)));
typedef double bp_v4d __attribute__((vector_size(32)));
#endif
enum { BP_Wf = BP_VBYTES / sizeof(float), BP_Wd = BP_VBYTES / sizeof(double) };

/* Sum of the lanes in a fixed pairwise tree: lane l += lane l + w for w = W/2 ... 1.
 * Each level adds the high half of the vector to the low half, as one add of
 * half-width vectors (lanes read by subscript, not through memory, so that the
 * accumulators stay in registers); a scalar loop here was compiled to one
 * extract and one scalar add per lane, a quarter of a forward tile's time. */
static inline float bp_hsum_f(bp_vf v) {
    bp_v4f s4;
#if BP_VBYTES == 64
    bp_v8f s8 = (bp_v8f){v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
              + (bp_v8f){v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15]};
    s4 = (bp_v4f){s8[0], s8[1], s8[2], s8[3]} + (bp_v4f){s8[4], s8[5], s8[6], s8[7]};
#elif BP_VBYTES == 32
    s4 = (bp_v4f){v[0], v[1], v[2], v[3]} + (bp_v4f){v[4], v[5], v[6], v[7]};
#else
    s4 = v;
#endif
    float l0 = s4[0] + s4[2], l1 = s4[1] + s4[3];
    return l0 + l1;
}

static inline double bp_hsum_d(bp_vd v) {
    bp_v2d s2;
#if BP_VBYTES == 64
    bp_v4d s4 = (bp_v4d){v[0], v[1], v[2], v[3]} + (bp_v4d){v[4], v[5], v[6], v[7]};
    s2 = (bp_v2d){s4[0], s4[1]} + (bp_v2d){s4[2], s4[3]};
#elif BP_VBYTES == 32
    s2 = (bp_v2d){v[0], v[1]} + (bp_v2d){v[2], v[3]};
#else
    s2 = v;
#endif
    return s2[0] + s2[1];
}

/* The 16 sums of a full 4 x 4 AVX-512 tile of bp_dot at once.  Summing each
 * accumulator on its own (bp_hsum_*) takes about seven shuffles per accumulator, all
 * on one port: ~110 cycles per tile and k block, a fifth of a tile's FMA time at
 * k = 1024 and more at shorter rows.  The butterfly below adds the accumulators to
 * each other instead: each level adds, for pairs of vectors, the halves that the
 * halving tree of bp_hsum_* adds (lane l and lane l + w), packing the two results
 * into one vector; 30 shuffles and 15 adds in all for the 16 sums.  Every sum is the
 * same tree of the same lanes as bp_hsum_*, so the results are bitwise those of
 * bp_hsum_* (the tests of the products compare the two).  The accumulators go in
 * in the order that leaves row r's four sums in lanes 4r .. 4r + 3 (float), or in
 * lanes 4(r % 2) .. of the vector r / 2 (double): one store per row of C. */
#if defined(__GNUC__) && BP_VBYTES == 64 && BP_DOT_MR == 4 && BP_DOT_NR == 4
#define BP_DOT_BUTTERFLY 1
#if defined(__clang__)
#define BP_SHUF(x, y, T, ...) __builtin_shufflevector(x, y, __VA_ARGS__)
#else
#define BP_SHUF(x, y, T, ...) __builtin_shuffle(x, y, (T){__VA_ARGS__})
#endif
static BP_INLINE bp_vf bp_sum2_f(bp_vf x, bp_vf y, int level) {
    /* Two accumulators' level sums, x's in the low half, y's in the high. */
    switch (level) {
    case 1:  /* lanes l + l+8 (w = 8), 256-bit halves */
        return BP_SHUF(x, y, bp_vmf, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23)
             + BP_SHUF(x, y, bp_vmf, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
    case 2:  /* w = 4 within each 8-lane half: 128-bit groups 0,2 + 1,3 */
        return BP_SHUF(x, y, bp_vmf, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27)
             + BP_SHUF(x, y, bp_vmf, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
    case 3:  /* w = 2 within each 128-bit group */
        return BP_SHUF(x, y, bp_vmf, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29)
             + BP_SHUF(x, y, bp_vmf, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
    default:  /* w = 1 */
        return BP_SHUF(x, y, bp_vmf, 0, 2, 16, 18, 4, 6, 20, 22, 8, 10, 24, 26, 12, 14, 28, 30)
             + BP_SHUF(x, y, bp_vmf, 1, 3, 17, 19, 5, 7, 21, 23, 9, 11, 25, 27, 13, 15, 29, 31);
    }
}

/* out lane 4r + c = bp_hsum_f(acc[r][c]). */
static BP_INLINE bp_vf bp_tile_sums_f(bp_vf acc[4][4]) {
    bp_vf t[8], u[4], v[2];
    BP_UNROLL for (int i = 0; i < 8; i++)  /* accumulator e = r + 4c, pairs (2i, 2i + 1) */
        t[i] = bp_sum2_f(acc[(2 * i) % 4][(2 * i) / 4], acc[(2 * i + 1) % 4][(2 * i + 1) / 4], 1);
    BP_UNROLL for (int i = 0; i < 4; i++) u[i] = bp_sum2_f(t[2 * i], t[2 * i + 1], 2);
    BP_UNROLL for (int i = 0; i < 2; i++) v[i] = bp_sum2_f(u[2 * i], u[2 * i + 1], 3);
    return bp_sum2_f(v[0], v[1], 4);
}

static BP_INLINE bp_vd bp_sum2_d(bp_vd x, bp_vd y, int level) {
    switch (level) {
    case 1:  /* w = 4: 256-bit halves */
        return BP_SHUF(x, y, bp_vmd, 0, 1, 2, 3, 8, 9, 10, 11)
             + BP_SHUF(x, y, bp_vmd, 4, 5, 6, 7, 12, 13, 14, 15);
    case 2:  /* w = 2: 128-bit groups 0,2 + 1,3 */
        return BP_SHUF(x, y, bp_vmd, 0, 1, 4, 5, 8, 9, 12, 13)
             + BP_SHUF(x, y, bp_vmd, 2, 3, 6, 7, 10, 11, 14, 15);
    default:  /* w = 1 */
        return BP_SHUF(x, y, bp_vmd, 0, 8, 2, 10, 4, 12, 6, 14)
             + BP_SHUF(x, y, bp_vmd, 1, 9, 3, 11, 5, 13, 7, 15);
    }
}

/* out[h] lane 4q + c = bp_hsum_d(acc[2h + q][c]). */
static BP_INLINE void bp_tile_sums_d(bp_vd acc[4][4], bp_vd out[2]) {
    bp_vd a[16], t[8], u[4];
    /* accumulator e = 8h + 4b + g holds row 2h + g/2, column 2(g % 2) + b */
    BP_UNROLL for (int e = 0; e < 16; e++) {
        int h = e / 8, b = (e / 4) % 2, g = e % 4;
        a[e] = acc[2 * h + g / 2][2 * (g % 2) + b];
    }
    BP_UNROLL for (int i = 0; i < 8; i++) t[i] = bp_sum2_d(a[2 * i], a[2 * i + 1], 1);
    BP_UNROLL for (int i = 0; i < 4; i++) u[i] = bp_sum2_d(t[2 * i], t[2 * i + 1], 2);
    BP_UNROLL for (int i = 0; i < 2; i++) out[i] = bp_sum2_d(u[2 * i], u[2 * i + 1], 3);
}
/* Rows i .. i + 3, columns j .. min(j + 4, n) - 1 of C: the tile's sums, stored for
 * the first block of k (k0 = 0), added to C's partial sums for later ones. */
static BP_INLINE void bp_dot_put_f(bp_vf acc[4][4], float *C, ptrdiff_t ldc, ptrdiff_t i,
                                ptrdiff_t j, ptrdiff_t n, ptrdiff_t k0) {
    bp_vf s = bp_tile_sums_f(acc);
    BP_UNROLL for (int r = 0; r < 4; r++) {
        float *out = C + (i + r) * ldc + j;
        bp_v4f x = (bp_v4f){s[4 * r], s[4 * r + 1], s[4 * r + 2], s[4 * r + 3]};
        if (j + 4 <= n) {
            if (k0) { bp_v4f o; memcpy(&o, out, sizeof o); x = o + x; }
            memcpy(out, &x, sizeof x);
        } else {
            for (ptrdiff_t c = 0; c < n - j; c++) out[c] = k0 ? out[c] + x[c] : x[c];
        }
    }
}

static BP_INLINE void bp_dot_put_d(bp_vd acc[4][4], double *C, ptrdiff_t ldc, ptrdiff_t i,
                                ptrdiff_t j, ptrdiff_t n, ptrdiff_t k0) {
    bp_vd s[2];
    bp_tile_sums_d(acc, s);
    BP_UNROLL for (int r = 0; r < 4; r++) {
        double *out = C + (i + r) * ldc + j;
        const int q = 4 * (r % 2);
        bp_v4d x = (bp_v4d){s[r / 2][q], s[r / 2][q + 1], s[r / 2][q + 2], s[r / 2][q + 3]};
        if (j + 4 <= n) {
            if (k0) { bp_v4d o; memcpy(&o, out, sizeof o); x = o + x; }
            memcpy(out, &x, sizeof x);
        } else {
            for (ptrdiff_t c = 0; c < n - j; c++) out[c] = k0 ? out[c] + x[c] : x[c];
        }
    }
}
#define BP_DOT_PUT(SUF, ...) bp_dot_put_##SUF(__VA_ARGS__)
#else
#define BP_DOT_BUTTERFLY 0
#define BP_DOT_PUT(SUF, ...) ((void)0)
#endif

/* The first n < W values at p as a vector, zeros after them, reading only those n
 * (the values after them may be another row's, or not there at all): the tail of a
 * row in bp_dot.  One masked load where the instruction set has it, else
 * bp_load_part_* (a copy through a zeroed buffer). */
#if defined(__AVX512F__)
static inline bp_vf bp_load_tail_f(const float *p, ptrdiff_t n) {
    return (bp_vf)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p);
}
static inline bp_vd bp_load_tail_d(const double *p, ptrdiff_t n) {
    return (bp_vd)_mm512_maskz_loadu_pd((__mmask8)((1u << n) - 1), p);
}
#define BP_LOAD_TAIL(SUF, p, n) bp_load_tail_##SUF(p, n)
#elif defined(__AVX2__)
static inline bp_vf bp_load_tail_f(const float *p, ptrdiff_t n) {
    const bp_vmf lane = {0, 1, 2, 3, 4, 5, 6, 7};
    return (bp_vf)_mm256_maskload_ps(p, (__m256i)(lane < (int32_t)n));
}
static inline bp_vd bp_load_tail_d(const double *p, ptrdiff_t n) {
    const bp_vmd lane = {0, 1, 2, 3};
    return (bp_vd)_mm256_maskload_pd(p, (__m256i)(lane < (int64_t)n));
}
#define BP_LOAD_TAIL(SUF, p, n) bp_load_tail_##SUF(p, n)
#else
#define BP_LOAD_TAIL(SUF, p, n) bp_load_part_##SUF(p, n)
#endif

/* dst[i * ldd + j] = src[j * lds + i] for a square of BP_TR_* values: the transposed
 * copy of W's panels in the packed forward (bp_pk_pack_panel_t).  8 x 8 floats and
 * 4 x 4 doubles in 256-bit registers where AVX2 is there (on AVX-512 too: the
 * panel's columns come in multiples of 8 floats either way); elsewhere the scalar
 * loop of bp_pk_pack_panel_t alone (BP_TR_* = 1). */
#if defined(__AVX2__)
#include <immintrin.h>
#define BP_TR_f 8
#define BP_TR_d 4
static inline void bp_transpose_f(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds) {
    __m256 r0 = _mm256_loadu_ps(src + 0 * lds), r1 = _mm256_loadu_ps(src + 1 * lds);
    __m256 r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds);
    __m256 r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds);
    __m256 r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
static inline void bp_transpose_d(double *dst, ptrdiff_t ldd, const double *src, ptrdiff_t lds) {
    __m256d r0 = _mm256_loadu_pd(src + 0 * lds), r1 = _mm256_loadu_pd(src + 1 * lds);
    __m256d r2 = _mm256_loadu_pd(src + 2 * lds), r3 = _mm256_loadu_pd(src + 3 * lds);
    __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst + 0 * ldd, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + 1 * ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
}
#else
#define BP_TR_f 1
#define BP_TR_d 1
static inline void bp_transpose_f(float *dst, ptrdiff_t ldd, const float *src, ptrdiff_t lds) {
    *dst = *src; (void)ldd; (void)lds;
}
static inline void bp_transpose_d(double *dst, ptrdiff_t ldd, const double *src, ptrdiff_t lds) {
    *dst = *src; (void)ldd; (void)lds;
}
#endif

#define BP_DEFINE_GEMM(T, SUF)                                                          \
static inline bp_v##SUF bp_load_##SUF(const T *p) {                                     \
    bp_v##SUF v; memcpy(&v, p, sizeof v); return v;                                     \
}                                                                                       \
static inline void bp_store_##SUF(T *p, bp_v##SUF v) { memcpy(p, &v, sizeof v); }       \
/* The first n values at p as a vector, zeros after them (n >= W: a whole vector); and \
   a vector's first n lanes stored at p, nothing after them: the edges of the tiles. */ \
static inline bp_v##SUF bp_load_part_##SUF(const T *p, ptrdiff_t n) {                   \
    T t[BP_W##SUF] = {0};                                                               \
    if (n >= BP_W##SUF) return bp_load_##SUF(p);                                        \
    memcpy(t, p, (size_t)n * sizeof(T));                                                \
    return bp_load_##SUF(t);                                                            \
}                                                                                       \
static inline void bp_store_part_##SUF(T *p, bp_v##SUF v, ptrdiff_t n) {                \
    T t[BP_W##SUF];                                                                     \
    if (n >= BP_W##SUF) { bp_store_##SUF(p, v); return; }                               \
    bp_store_##SUF(t, v);                                                               \
    memcpy(p, t, (size_t)n * sizeof(T));                                                \
}                                                                                       \
BP_DEFINE_OPT_VECTOR(T, SUF)  /* the update rules' vector form (_optim.h) */             \
                                                                                        \
/* One mr x NR tile of C = A W^T over k0 <= k < k1 (mr <= MR, a constant after       \
   inlining); columns beyond n repeat the last valid one.  The first block (k0 = 0)  \
   stores its sums, later blocks add theirs to C. */                                    \
static BP_INLINE void bp_dot_tile_##SUF(const T *A, ptrdiff_t lda, ptrdiff_t i, int mr, \
                                        const T *W, ptrdiff_t ldw, ptrdiff_t j,         \
                                        ptrdiff_t n, ptrdiff_t k0, ptrdiff_t k1, T *C,  \
                                        ptrdiff_t ldc) {                                \
    const T *a[BP_DOT_MR], *w[BP_DOT_NR];                                               \
    bp_v##SUF acc[BP_DOT_MR][BP_DOT_NR];                                                \
    ptrdiff_t k, kv = k1 - (k1 - k0) % BP_W##SUF;                                       \
    BP_UNROLL for (int r = 0; r < mr; r++) a[r] = A + (i + r) * lda;                    \
    BP_UNROLL for (int c = 0; c < BP_DOT_NR; c++)                                       \
        w[c] = W + (j + c < n ? j + c : n - 1) * ldw;                                   \
    BP_UNROLL for (int r = 0; r < mr; r++)                                              \
        BP_UNROLL for (int c = 0; c < BP_DOT_NR; c++) acc[r][c] = (bp_v##SUF){0};       \
    for (k = k0; k < kv; k += BP_W##SUF) {                                              \
        bp_v##SUF av[BP_DOT_MR], wv[BP_DOT_NR];                                         \
        BP_UNROLL for (int r = 0; r < mr; r++) av[r] = bp_load_##SUF(a[r] + k);         \
        BP_UNROLL for (int c = 0; c < BP_DOT_NR; c++) wv[c] = bp_load_##SUF(w[c] + k);  \
        BP_UNROLL for (int r = 0; r < mr; r++)                                          \
            BP_UNROLL for (int c = 0; c < BP_DOT_NR; c++) acc[r][c] += av[r] * wv[c];   \
    }                                                                                   \
    if (kv < k1) {  /* the last k1 - kv < W values: one vector each, zeros after */     \
        bp_v##SUF av[BP_DOT_MR], wv[BP_DOT_NR];                                         \
        BP_UNROLL for (int r = 0; r < mr; r++) av[r] = BP_LOAD_TAIL(SUF, a[r] + kv, k1 - kv); \
        BP_UNROLL for (int c = 0; c < BP_DOT_NR; c++)                                   \
            wv[c] = BP_LOAD_TAIL(SUF, w[c] + kv, k1 - kv);                              \
        BP_UNROLL for (int r = 0; r < mr; r++)                                          \
            BP_UNROLL for (int c = 0; c < BP_DOT_NR; c++) acc[r][c] += av[r] * wv[c];   \
    }                                                                                   \
    if (BP_DOT_BUTTERFLY && mr == BP_DOT_MR) {  /* a full tile */                       \
        BP_DOT_PUT(SUF, acc, C, ldc, i, j, n, k0);                                      \
        return;                                                                         \
    }                                                                                   \
    BP_UNROLL for (int r = 0; r < mr; r++) {                                            \
        BP_UNROLL for (int c = 0; c < BP_DOT_NR; c++) {                                 \
            if (j + c >= n) break;                                                      \
            T s = bp_hsum_##SUF(acc[r][c]);                                             \
            T *out = C + (i + r) * ldc + j + c;                                         \
            *out = k0 ? *out + s : s;                                                   \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* C[i][j] = sum_k A[i][k] W[j][k] for i < m, j < n.  Long rows (over BP_DOT_KC        \
   bytes) are summed in blocks of BP_DOT_KC bytes, each block over all tiles of a     \
   block of rows of A before the next, so that a tile's rows of W stay in L1 and the  \
   block of A in L2.  The row blocks are of equal size, at most what half the L2     \
   holds (a thin last block would stream all of W for a few rows).  The k blocks     \
   depend on K alone, never on m, n or the thread count, and the row blocks change   \
   no sum. */                                                                         \
static void bp_dot_short_##SUF(const T *A, ptrdiff_t lda, ptrdiff_t m, const T *W,       \
                               ptrdiff_t ldw, ptrdiff_t n, ptrdiff_t K, T *C,           \
                               ptrdiff_t ldc);  /* rows shorter than a vector: below */ \
static void bp_dot_##SUF(const T *A, ptrdiff_t lda, ptrdiff_t m, const T *W,             \
                         ptrdiff_t ldw, ptrdiff_t n, ptrdiff_t K, T *C, ptrdiff_t ldc) { \
    if (K < BP_W##SUF) {                                                                \
        bp_dot_short_##SUF(A, lda, m, W, ldw, n, K, C, ldc);                            \
        return;                                                                         \
    }                                                                                   \
    const ptrdiff_t kc = K * (ptrdiff_t)sizeof(T) > BP_DOT_KC                           \
        ? BP_DOT_KC / (ptrdiff_t)sizeof(T) : (K ? K : 1);                               \
    const ptrdiff_t fit = bp_l2_bytes / 2 / (kc * (ptrdiff_t)sizeof(T));                \
    const ptrdiff_t rows = fit > BP_DOT_MC ? BP_DOT_MC : fit < 16 ? 16 : fit;           \
    const ptrdiff_t blocks = (m + rows - 1) / rows;                                     \
    const ptrdiff_t mc = blocks > 1                                                      \
        ? ((m + blocks - 1) / blocks + BP_DOT_MR - 1) / BP_DOT_MR * BP_DOT_MR : m;      \
    for (ptrdiff_t i0 = 0; i0 < m; i0 += mc) {                                          \
        ptrdiff_t i1 = i0 + mc < m ? i0 + mc : m;                                       \
        for (ptrdiff_t k0 = 0; k0 < K || k0 == 0; k0 += kc) {                           \
            ptrdiff_t k1 = k0 + kc < K ? k0 + kc : K;                                   \
            for (ptrdiff_t j = 0; j < n; j += BP_DOT_NR)                                \
                for (ptrdiff_t i = i0; i < i1; i += BP_DOT_MR)                          \
                    switch (i1 - i < BP_DOT_MR ? i1 - i : BP_DOT_MR) {                  \
                    case 1: bp_dot_tile_##SUF(A, lda, i, 1, W, ldw, j, n, k0, k1, C, ldc); break; \
                    case 2: bp_dot_tile_##SUF(A, lda, i, 2, W, ldw, j, n, k0, k1, C, ldc); break; \
                    case 3: bp_dot_tile_##SUF(A, lda, i, 3, W, ldw, j, n, k0, k1, C, ldc); break; \
                    default: bp_dot_tile_##SUF(A, lda, i, BP_DOT_MR, W, ldw, j, n, k0, k1, C, ldc); \
                    }                                                                   \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* Rows r0..r0+mr of C over the NR vectors starting at columns col[], summing        \
   s = s0..s1, with row s of B's panel at Bp + (s - s0) * bld and its vectors at     \
   offsets bcol[] (B itself, or the panel packed contiguously: the same values); for \
   s0 > 0 the sums so far are read back from C (exactly: the same                    \
   partial sums, so blocking over s leaves the result unchanged).  With u and the    \
   last block of s, the sums are not stored but applied as an optimizer step to the  \
   parameters at the same place (_optim.h); at[c] is where vector c would start     \
   without the edge overlap, and only its columns from at[c] on are stepped, so no   \
   parameter is stepped twice. */                                                     \
static BP_INLINE void bp_bcast_tile_##SUF(ptrdiff_t r0, int mr, ptrdiff_t s0,           \
                                          ptrdiff_t s1, const T *a, ptrdiff_t ars,      \
                                          ptrdiff_t ass, const T *Bp, ptrdiff_t bld,    \
                                          const ptrdiff_t *bcol,                        \
                                          const ptrdiff_t *col, const ptrdiff_t *at,    \
                                          T *C, ptrdiff_t ldc, const bp_opt_##SUF *u) { \
    const T *ar[BP_BC_MR];                                                              \
    bp_v##SUF acc[BP_BC_MR][BP_BC_NR];                                                  \
    BP_UNROLL for (int r = 0; r < mr; r++) ar[r] = a + (r0 + r) * ars;                  \
    if (u != NULL)  /* the step's parameters and state, on their way during the sums */ \
        BP_UNROLL for (int r = 0; r < mr; r++)                                          \
            bp_opt_prefetch_##SUF(u, (r0 + r) * ldc + col[0], col[BP_BC_NR - 1] + BP_W##SUF - col[0]); \
    BP_UNROLL for (int r = 0; r < mr; r++)                                              \
        BP_UNROLL for (int c = 0; c < BP_BC_NR; c++)                                    \
            acc[r][c] = s0 ? bp_load_##SUF(C + (r0 + r) * ldc + col[c]) : (bp_v##SUF){0}; \
    for (ptrdiff_t s = s0; s < s1; s++) {                                               \
        bp_v##SUF bv[BP_BC_NR];                                                         \
        const T *Bs = Bp + (s - s0) * bld;                                              \
        BP_UNROLL for (int c = 0; c < BP_BC_NR; c++) bv[c] = bp_load_##SUF(Bs + bcol[c]); \
        BP_UNROLL for (int r = 0; r < mr; r++) {                                        \
            T as = ar[r][s * ass];                                                      \
            BP_UNROLL for (int c = 0; c < BP_BC_NR; c++) acc[r][c] += as * bv[c];       \
        }                                                                               \
    }                                                                                   \
    if (u == NULL) {                                                                    \
        BP_UNROLL for (int r = 0; r < mr; r++)                                          \
            BP_UNROLL for (int c = 0; c < BP_BC_NR; c++)                                \
                bp_store_##SUF(C + (r0 + r) * ldc + col[c], acc[r][c]);                 \
        return;                                                                         \
    }                                                                                   \
    if (u->rule != BP_RULE_SGD_VELOCITY) {                                              \
        /* The row's sums go through a buffer on the stack, laid out like C from col[0] \
           (an overlapping edge vector rewrites the same values), not through C: no    \
           one reads the sums of a fused step, and C's lines would be one more stream   \
           beside the parameters and their state.  Each row's columns at[0] ..        \
           col[NR-1]+W are stepped. */                                                 \
        T g[BP_BC_NR * BP_W##SUF];                                                      \
        for (int r = 0; r < mr; r++) {                                                  \
            BP_UNROLL for (int c = 0; c < BP_BC_NR; c++)                                \
                bp_store_##SUF(g + (col[c] - col[0]), acc[r][c]);                       \
            bp_opt_run_##SUF(u, (r0 + r) * ldc + at[0], g + (at[0] - col[0]),           \
                             col[BP_BC_NR - 1] + BP_W##SUF - at[0]);                    \
        }                                                                               \
        return;                                                                         \
    }                                                                                   \
    /* The velocity form, inlined, from a copy of the step's constants: the compiler  \
       then knows that storing a parameter changes none of them, and loads each once   \
       per tile instead of once per vector. */                                         \
    const bp_opt_##SUF uv = *u;                                                         \
    BP_UNROLL for (int r = 0; r < mr; r++)                                              \
        BP_UNROLL for (int c = 0; c < BP_BC_NR; c++) {                                  \
            ptrdiff_t o = (r0 + r) * ldc + col[c];                                      \
            if (at[c] == col[c]) {                                                      \
                bp_opt_vel_vstep_##SUF(&uv, o, acc[r][c]);                              \
            } else {  /* overlapping edge vector: its columns from at[c] on */          \
                for (ptrdiff_t l = at[c] - col[c]; l < BP_W##SUF; l++)                  \
                    bp_opt_vel_step_##SUF(&uv, o + l, acc[r][c][l]);                    \
            }                                                                           \
        }                                                                               \
}                                                                                       \
                                                                                        \
/* One BP_PK_MR x BP_PK_NR-vector tile of C over s = s0 .. s0 + kc - 1 from packed     \
   operands: ap holds the tile's rows of a, value s of row r at ap[s * MR + r] (rows   \
   past the mr valid ones are zeros), bp the panel's rows of B, NR vectors per s      \
   (columns past the nc valid ones are zeros).  The same chain of operations per      \
   element of C as bp_bcast_tile (0 or C's partial sum, then acc += a * b for s in    \
   order); only the valid rows and columns are read and written.  With u (the last    \
   block of s) the sums are not stored in C but applied as an optimizer step to the    \
   parameters laid out like C (u's offsets are C's), through a row buffer and         \
   bp_opt_run, as bp_bcast_tile does for the rules other than the velocity form. */  \
static BP_INLINE void bp_pk_tile_##SUF(ptrdiff_t kc, const T *ap, const T *bp, T *C,    \
                                       ptrdiff_t ldc, int first, int mr, ptrdiff_t nc,  \
                                       const bp_opt_##SUF *u, ptrdiff_t o) {             \
    bp_v##SUF acc[BP_PK_MR][BP_PK_NR];                                                  \
    if (u != NULL)  /* the step's parameters and state, on their way during the sums */ \
        for (int r = 0; r < mr; r++) bp_opt_prefetch_##SUF(u, o + r * ldc, nc);          \
    BP_UNROLL for (int r = 0; r < BP_PK_MR; r++)                                        \
        BP_UNROLL for (int c = 0; c < BP_PK_NR; c++) {                                  \
            ptrdiff_t valid = nc - c * BP_W##SUF;                                       \
            acc[r][c] = first || r >= mr || valid <= 0 ? (bp_v##SUF){0}                 \
                      : bp_load_part_##SUF(C + r * ldc + c * BP_W##SUF, valid);         \
        }                                                                               \
    for (ptrdiff_t s = 0; s < kc; s++) {                                                \
        bp_v##SUF bv[BP_PK_NR];                                                         \
        BP_UNROLL for (int c = 0; c < BP_PK_NR; c++)                                    \
            bv[c] = bp_load_##SUF(bp + (s * BP_PK_NR + c) * BP_W##SUF);                 \
        BP_UNROLL for (int r = 0; r < BP_PK_MR; r++) {                                  \
            T as = ap[s * BP_PK_MR + r];                                                \
            BP_UNROLL for (int c = 0; c < BP_PK_NR; c++) acc[r][c] += as * bv[c];       \
        }                                                                               \
    }                                                                                   \
    if (u != NULL) {                                                                    \
        T g[BP_PK_NR * BP_W##SUF];                                                      \
        for (int r = 0; r < mr; r++) {                                                  \
            BP_UNROLL for (int c = 0; c < BP_PK_NR; c++) bp_store_##SUF(g + c * BP_W##SUF, acc[r][c]); \
            bp_opt_run_##SUF(u, o + r * ldc, g, nc);                                    \
        }                                                                               \
        return;                                                                         \
    }                                                                                   \
    BP_UNROLL for (int r = 0; r < BP_PK_MR; r++)                                        \
        BP_UNROLL for (int c = 0; c < BP_PK_NR; c++) {                                  \
            ptrdiff_t valid = nc - c * BP_W##SUF;                                       \
            if (r < mr && valid > 0)                                                    \
                bp_store_part_##SUF(C + r * ldc + c * BP_W##SUF, acc[r][c], valid);     \
        }                                                                               \
}                                                                                       \
                                                                                        \
/* Columns j .. j + nc - 1 (nc <= NR vectors) of W^T's rows s0 .. s0 + kc - 1, i.e.  \
   rows j.. of W read along k, copied to bp in the layout of bp_pk_pack_panel (NR     \
   vectors per s, zeros past nc): the forward's panel of B = W^T, transposed while it \
   is packed.  Each row of W is read contiguously; the writes go down a column of the \
   panel, NR vectors apart, all in the 24-64 KiB panel (L1). */                       \
static BP_INLINE void bp_pk_pack_panel_t_##SUF(T *bp, const T *W, ptrdiff_t ldw,        \
                                               ptrdiff_t kc, ptrdiff_t nc) {            \
    enum { NRW = BP_PK_NR * BP_W##SUF };                                                \
    ptrdiff_t c = 0;                                                                    \
    if (BP_TR_##SUF > 1) {  /* whole squares of BP_TR rows x BP_TR values of k */      \
        const ptrdiff_t s1 = kc - kc % BP_TR_##SUF;                                     \
        for (; c + BP_TR_##SUF <= nc; c += BP_TR_##SUF) {                               \
            for (ptrdiff_t s = 0; s < s1; s += BP_TR_##SUF)                             \
                bp_transpose_##SUF(bp + s * NRW + c, NRW, W + c * ldw + s, ldw);        \
            for (ptrdiff_t s = s1; s < kc; s++)                                         \
                for (ptrdiff_t r = c; r < c + BP_TR_##SUF; r++) bp[s * NRW + r] = W[r * ldw + s]; \
        }                                                                               \
    }                                                                                   \
    for (; c < nc; c++) {                                                               \
        const T *row = W + c * ldw;                                                     \
        for (ptrdiff_t s = 0; s < kc; s++) bp[s * NRW + c] = row[s];                    \
    }                                                                                   \
    if (nc < NRW)                                                                       \
        for (ptrdiff_t s = 0; s < kc; s++)                                              \
            for (c = nc; c < NRW; c++) bp[s * NRW + c] = (T)0;                          \
}                                                                                       \
                                                                                        \
/* A tile's rows of a copied to its micro-panel: value s of row r (at a + r * ars +   \
   s * ass) to ap[s * MR + r] for s < kc, zeros in the rows past mr. */              \
static BP_INLINE void bp_pk_pack_rows_##SUF(T *ap, const T *a, ptrdiff_t ars,           \
                                            ptrdiff_t ass, ptrdiff_t kc, int mr) {      \
    for (ptrdiff_t s = 0; s < kc; s++)                                                  \
        for (int r = 0; r < BP_PK_MR; r++)                                              \
            ap[s * BP_PK_MR + r] = r < mr ? a[r * ars + s * ass] : (T)0;                \
}                                                                                       \
                                                                                        \
/* C = A W^T for rows shorter than one vector (K < W: a first layer of few inputs,  \
   e.g. tabular data), where bp_dot's tiles would have no vector to run: an outer     \
   product over k instead, by bp_pk_tile from a transposed, zero-padded copy of a     \
   panel of W (K x BP_PK_NR vectors) and a copy of each tile's rows of A.  Each       \
   element is the chain 0 + a_0 w_0 + a_1 w_1 + ... in k order, whatever its row      \
   block. */                                                                          \
static void bp_dot_short_##SUF(const T *A, ptrdiff_t lda, ptrdiff_t m, const T *W,       \
                               ptrdiff_t ldw, ptrdiff_t n, ptrdiff_t K, T *C,           \
                               ptrdiff_t ldc) {                                         \
    enum { NRW = BP_PK_NR * BP_W##SUF };                                                \
    T wt[BP_W##SUF * NRW] __attribute__((aligned(64)));                                 \
    T at[BP_W##SUF * BP_PK_MR];                                                         \
    for (ptrdiff_t j = 0; j < n; j += NRW) {                                            \
        const ptrdiff_t nc = n - j < NRW ? n - j : NRW;                                 \
        bp_pk_pack_panel_t_##SUF(wt, W + j * ldw, ldw, K, nc);                          \
        for (ptrdiff_t i = 0; i < m; i += BP_PK_MR) {                                   \
            const int mr = m - i < BP_PK_MR ? (int)(m - i) : BP_PK_MR;                  \
            bp_pk_pack_rows_##SUF(at, A + i * lda, lda, 1, K, mr);                      \
            bp_pk_tile_##SUF(K, at, wt, C + i * ldc + j, ldc, 1, mr, nc, NULL, 0);      \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* Whether a gradient of S examples (several blocks of bp_bcast's s) of a layer of N \
   inputs (4 or more panels of the packed tile, which share one copy of delta) can  \
   take the packed form; with fewer panels the copies cost more than they save. */   \
static inline int bp_pk_fits_##SUF(ptrdiff_t S, ptrdiff_t N) {                          \
    return S > BP_BC_SC && N >= 4 * BP_PK_NR * BP_W##SUF;                               \
}                                                                                       \
/* Whether such a gradient is summed in one block of the packed form, its optimizer   \
   step fused into the tiles (_kernels.pyx's step_rows then fuses it for these        \
   S > BP_BC_SC too).  With several blocks the partial sums go through memory anyway, \
   and the streaming pass after them was as fast (docs/performance.md). */           \
static inline int bp_pk_fuses_step_##SUF(ptrdiff_t S, ptrdiff_t N) {                    \
    return bp_pk_fits_##SUF(S, N) && S * (ptrdiff_t)sizeof(T) <= BP_PK_KC;              \
}                                                                                       \
/* Whether bcast's delta product (a read along s) of R rows, S values of s and N      \
   columns takes the packed form (see BP_DELTA_PK_ROWS). */                          \
static inline int bp_delta_packs_##SUF(ptrdiff_t R, ptrdiff_t S, ptrdiff_t N) {         \
    return BP_DELTA_PK_ROWS > 0 && R >= BP_DELTA_PK_ROWS && bp_pk_fits_##SUF(S, N)      \
        && S * N * (ptrdiff_t)sizeof(T) >= BP_DELTA_PK_BYTES;                           \
}                                                                                       \
                                                                                        \
/* Rows 0..kc-1 of a panel of B (nc <= NR vectors of columns, row s at B + s * ldb)  \
   copied to bp, NR vectors per row, zeros past nc: vector loads and stores, the row \
   a few ahead prefetched (B's rows are far apart: a column strip of a^(l-1)). */   \
static BP_INLINE void bp_pk_pack_panel_##SUF(T *bp, const T *B, ptrdiff_t ldb,          \
                                             ptrdiff_t kc, ptrdiff_t nc) {              \
    enum { AHEAD = 8 };                                                                 \
    for (ptrdiff_t s = 0; s < kc; s++) {                                                \
        const T *row = B + s * ldb;                                                     \
        T *dst = bp + s * BP_PK_NR * BP_W##SUF;                                         \
        if (s + AHEAD < kc)                                                             \
            for (ptrdiff_t b = 0; b < nc * (ptrdiff_t)sizeof(T) + 63; b += 64)           \
                __builtin_prefetch((const char *)(row + AHEAD * ldb) + b);              \
        BP_UNROLL for (int c = 0; c < BP_PK_NR; c++) {                                  \
            const ptrdiff_t valid = nc - c * BP_W##SUF;                                 \
            bp_store_##SUF(dst + c * BP_W##SUF, valid >= BP_W##SUF                       \
                           ? bp_load_##SUF(row + c * BP_W##SUF)                         \
                           : valid > 0 ? bp_load_part_##SUF(row + c * BP_W##SUF, valid) \
                                       : (bp_v##SUF){0});                               \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* bcast's sums with both operands packed, as BLIS does (with u: the optimizer step  \
   fused into the last block of s, see bp_pk_tile): per                               \
   block of BP_PK_KC bytes of s and block of rows (bp_pk_block_rows), the rows'      \
   values of a are copied tile by tile into contiguous micro-panels (for the gradient \
   a is a column walk of delta, one cache line per value of s and row tile            \
   otherwise), then per panel of columns B's rows are copied likewise, padded with     \
   zeros, and each tile runs from the two copies.  With bt, B is given transposed      \
   (value (s, n) at B[n * ldb + s]: the forward's W) and each panel is transposed as  \
   it is copied.  While a panel's tiles run, the next panel's rows of B are asked     \
   into L2, a share before each tile (B can be far larger than L3: XL's W is 64 MiB), \
   and the next tile's rows of C into L1.  Every element of C is the same chain as in \
   bp_bcast: blocking over s stores exact partial sums, and the zero padding only    \
   feeds lanes that are never stored; so the two forms give the same bits. */        \
static void bp_pk_run_##SUF(ptrdiff_t R, ptrdiff_t N, ptrdiff_t S, const T *a,           \
                            ptrdiff_t ars, ptrdiff_t ass, const T *B, ptrdiff_t ldb,    \
                            int bt, T *C, ptrdiff_t ldc, const bp_opt_##SUF *u) {       \
    enum { KC = BP_PK_KC / sizeof(T), NRW = BP_PK_NR * BP_W##SUF };                     \
    T ap[BP_PK_MC * KC] __attribute__((aligned(64)));                                   \
    T bp[KC * NRW] __attribute__((aligned(64)));                                        \
    const ptrdiff_t rows = bp_pk_block_rows(R);                                         \
    for (ptrdiff_t s0 = 0; s0 < S; s0 += KC) {                                          \
        const ptrdiff_t kc = S - s0 < KC ? S - s0 : KC;                                 \
        const bp_opt_##SUF *last = s0 + kc == S ? u : NULL;                             \
        for (ptrdiff_t i0 = 0; i0 < R; i0 += rows) {                                    \
            const ptrdiff_t mc = R - i0 < rows ? R - i0 : rows;                         \
            const ptrdiff_t tiles = (mc + BP_PK_MR - 1) / BP_PK_MR;                     \
            for (ptrdiff_t i = 0; i < mc; i += BP_PK_MR)                                \
                bp_pk_pack_rows_##SUF(ap + i * kc, a + (i0 + i) * ars + s0 * ass, ars, ass, \
                                      kc, mc - i < BP_PK_MR ? (int)(mc - i) : BP_PK_MR); \
            for (ptrdiff_t j = 0; j < N; j += NRW) {                                    \
                const ptrdiff_t nc = N - j < NRW ? N - j : NRW;                         \
                if (bt)                                                                 \
                    bp_pk_pack_panel_t_##SUF(bp, B + j * ldb + s0, ldb, kc, nc);        \
                else                                                                    \
                    bp_pk_pack_panel_##SUF(bp, B + s0 * ldb + j, ldb, kc, nc);          \
                /* the next panel's source: nn rows of W (bt) or kc rows of B */        \
                const ptrdiff_t jn = j + NRW, nn = N - jn < NRW ? N - jn : NRW;         \
                const ptrdiff_t ahead = jn >= N ? 0 : bt ? nn : kc;                     \
                const ptrdiff_t share = (ahead + tiles - 1) / tiles;                    \
                for (ptrdiff_t i = 0, t = 0; i < mc; i += BP_PK_MR, t++) {              \
                    const int mr = mc - i < BP_PK_MR ? (int)(mc - i) : BP_PK_MR;        \
                    for (ptrdiff_t q = t * share; q < (t + 1) * share && q < ahead; q++) \
                        bp_prefetch_l2(bt ? B + (jn + q) * ldb + s0 : B + (s0 + q) * ldb + jn, \
                                       (bt ? kc : nn) * (ptrdiff_t)sizeof(T));          \
                    if (last == NULL)  /* a fused step reads no C */                    \
                        for (ptrdiff_t r = i + BP_PK_MR; r < i + 2 * BP_PK_MR && r < mc; r++) \
                            bp_prefetch_w(C + (i0 + r) * ldc + j, nc * (ptrdiff_t)sizeof(T)); \
                    bp_pk_tile_##SUF(kc, ap + i * kc, bp, C + (i0 + i) * ldc + j, ldc,  \
                                     s0 == 0, mr, nc, last, (i0 + i) * ldc + j);        \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
static void bp_pk_bcast_##SUF(ptrdiff_t R, ptrdiff_t N, ptrdiff_t S, const T *a,         \
                              ptrdiff_t ars, ptrdiff_t ass, const T *B, ptrdiff_t ldb,  \
                              T *C, ptrdiff_t ldc, const bp_opt_##SUF *u) {             \
    bp_pk_run_##SUF(R, N, S, a, ars, ass, B, ldb, 0, C, ldc, u);                        \
}                                                                                       \
                                                                                        \
/* Whether the forward product of a layer of K inputs and n units for m examples      \
   takes the packed form (bp_pk_dot) rather than bp_dot: by the layer and m alone --  \
   the whole mini-batch, never a thread's share of its rows or units -- so that the  \
   form, and with it every sum, is the same for any thread count.  The copies of W   \
   cost a pass over W per call, small beside m multiply-adds per weight only for      \
   large m; 4 or more panels of units; and W as large as BP_FWD_PK_BYTES. */          \
static inline int bp_dot_packs_##SUF(ptrdiff_t m, ptrdiff_t K, ptrdiff_t n) {           \
    return BP_FWD_PK_ROWS > 0 && m >= BP_FWD_PK_ROWS && K >= BP_W##SUF                  \
        && n >= 4 * BP_PK_NR * BP_W##SUF && n * K * (ptrdiff_t)sizeof(T) >= BP_FWD_PK_BYTES; \
}                                                                                       \
/* C = A W^T as bcast's packed form with B = W^T, each panel of W transposed as it is \
   copied: the outer-product tile reads one vector of the panel and broadcasts one    \
   value of A per FMA row, where bp_dot's tile loads a vector of both operands; each   \
   element is 0 + a_0 w_0 + a_1 w_1 + ... in k order (partial sums per block of k go   \
   through C), whatever its row or column block. */                                  \
static void bp_pk_dot_##SUF(const T *A, ptrdiff_t lda, ptrdiff_t m, const T *W,          \
                            ptrdiff_t ldw, ptrdiff_t n, ptrdiff_t K, T *C,              \
                            ptrdiff_t ldc) {                                            \
    bp_pk_run_##SUF(m, n, K, A, lda, 1, W, ldw, 1, C, ldc, NULL);                       \
}                                                                                       \
/* The forward product in the form bp_dot_packs chose for the whole layer. */         \
static void bp_forward_##SUF(const T *A, ptrdiff_t lda, ptrdiff_t m, const T *W,         \
                             ptrdiff_t ldw, ptrdiff_t n, ptrdiff_t K, T *C,             \
                             ptrdiff_t ldc, int packed) {                               \
    if (packed) bp_pk_dot_##SUF(A, lda, m, W, ldw, n, K, C, ldc);                       \
    else bp_dot_##SUF(A, lda, m, W, ldw, n, K, C, ldc);                                 \
}                                                                                       \
                                                                                        \
/* BP_NN_MR rows r0.. of C when C and B are narrower than one vector (N < W: a layer  \
   of fewer inputs than lanes, e.g. tabular data): each row of B zero-padded to one   \
   vector (bn, rows s0..s1), one accumulator per row of C, so BP_NN_MR independent    \
   chains per s.  Rows past R repeat row R - 1 (its memory; never stored).  Each      \
   element is acc = 0 or C's partial sum, then acc += a * b for s in order: the chain \
   of the other tiles; with u (the last block of s) the sums become a step. */        \
static BP_INLINE void bp_narrow_tile_##SUF(ptrdiff_t r0, ptrdiff_t R, ptrdiff_t s0,     \
                                           ptrdiff_t s1, const T *a, ptrdiff_t ars,     \
                                           ptrdiff_t ass, const T *bn, ptrdiff_t N,     \
                                           T *C, ptrdiff_t ldc, const bp_opt_##SUF *u) { \
    const T *ar[BP_NN_MR];                                                              \
    bp_v##SUF acc[BP_NN_MR];                                                            \
    BP_UNROLL for (int r = 0; r < BP_NN_MR; r++) {                                      \
        ar[r] = a + (r0 + r < R ? r0 + r : R - 1) * ars;                                \
        acc[r] = s0 && r0 + r < R ? bp_load_part_##SUF(C + (r0 + r) * ldc, N)         \
                                  : (bp_v##SUF){0};                                     \
    }                                                                                   \
    for (ptrdiff_t s = s0; s < s1; s++) {                                               \
        const bp_v##SUF bv = bp_load_##SUF(bn + (s - s0) * BP_W##SUF);                  \
        BP_UNROLL for (int r = 0; r < BP_NN_MR; r++) acc[r] += ar[r][s * ass] * bv;     \
    }                                                                                   \
    BP_UNROLL for (int r = 0; r < BP_NN_MR; r++) {                                      \
        if (r0 + r >= R) break;                                                         \
        const ptrdiff_t o = (r0 + r) * ldc;                                             \
        if (u != NULL && u->rule == BP_RULE_SGD_VELOCITY) {                             \
            for (ptrdiff_t n = 0; n < N; n++) bp_opt_vel_step_##SUF(u, o + n, acc[r][n]); \
        } else {                                                                        \
            bp_store_part_##SUF(C + o, acc[r], N);                                      \
            if (u != NULL) bp_opt_run_##SUF(u, o, C + o, N);                            \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* C[r][n] = sum_{s<S} a[r*ars + s*ass] B[s*ldb + n] for r < R, n < N; with u, those   \
   sums are applied as an optimizer step to u->p (and its state), laid out like C, instead of \
   being stored (C then only holds partial sums when S spans several blocks). */     \
static void bp_bcast_sgd_##SUF(ptrdiff_t R, ptrdiff_t N, ptrdiff_t S, const T *a,        \
                               ptrdiff_t ars, ptrdiff_t ass, const T *B, ptrdiff_t ldb, \
                               T *C, ptrdiff_t ldc, const bp_opt_##SUF *u) {            \
    const ptrdiff_t step = BP_W##SUF * BP_BC_NR;                                         \
    T pack[BP_BC_SC * BP_BC_NR * BP_W##SUF] __attribute__((aligned(64)));               \
    const ptrdiff_t ldb_bytes = ldb * (ptrdiff_t)sizeof(T);                             \
    const int pack_b = ldb_bytes % 512 == 0 || ldb_bytes >= 4096;  /* see BP_BC_PACK_ROWS */ \
    if (N < BP_W##SUF) {  /* narrower than one vector: bp_narrow_tile */              \
        T bn[BP_BC_SC * BP_W##SUF] __attribute__((aligned(64)));                        \
        for (ptrdiff_t s0 = 0; s0 < S || s0 == 0; s0 += BP_BC_SC) {                     \
            const ptrdiff_t s1 = s0 + BP_BC_SC < S ? s0 + BP_BC_SC : S;                 \
            for (ptrdiff_t s = s0; s < s1; s++) {                                       \
                memcpy(bn + (s - s0) * BP_W##SUF, B + s * ldb, (size_t)N * sizeof(T));  \
                memset(bn + (s - s0) * BP_W##SUF + N, 0, (size_t)(BP_W##SUF - N) * sizeof(T)); \
            }                                                                           \
            for (ptrdiff_t r0 = 0; r0 < R; r0 += BP_NN_MR)                              \
                bp_narrow_tile_##SUF(r0, R, s0, s1, a, ars, ass, bn, N, C, ldc,         \
                                     s1 == S ? u : NULL);                               \
        }                                                                               \
        return;                                                                         \
    }                                                                                   \
    /* The gradient (a walks down columns of delta): the packed form when it fits    \
       (bp_pk_fits) and, for the sums alone, there are tiles of rows to share its      \
       copies of B.  The same sums either way (see bp_pk_bcast); a fused step takes    \
       the packed form by S and N alone, whatever rows a thread steps, so that which   \
       copy of an inlined rule steps a weight never depends on the thread count.       \
       The delta product (a read along s): by bp_delta_packs. */                      \
    if (ass != 1 ? bp_pk_fits_##SUF(S, N) && (u != NULL || R >= 2 * BP_PK_MR)           \
                 : u == NULL && bp_delta_packs_##SUF(R, S, N)) {                        \
        bp_pk_bcast_##SUF(R, N, S, a, ars, ass, B, ldb, C, ldc, u);                     \
        return;                                                                         \
    }                                                                                   \
    /* Blocks of BP_BC_RC rows; in each, column panel outermost (an overlapping edge  \
       vector must see only its own panel's partial sums), then blocks of BP_BC_SC      \
       values of s, so that the panel's rows of B stay in L1 while every row tile of    \
       the block uses them. */                                                        \
    for (ptrdiff_t q0 = 0; q0 < R; q0 += BP_BC_RC) {                                    \
        const ptrdiff_t q1 = q0 + BP_BC_RC < R ? q0 + BP_BC_RC : R;                     \
        for (ptrdiff_t n0 = 0; n0 < N; n0 += step) {                                    \
            ptrdiff_t col[BP_BC_NR], at[BP_BC_NR];                                      \
            BP_UNROLL for (int c = 0; c < BP_BC_NR; c++) {                              \
                at[c] = n0 + c * BP_W##SUF < N ? n0 + c * BP_W##SUF : N;                \
                col[c] = at[c] + BP_W##SUF <= N ? at[c] : N - BP_W##SUF;  /* overlap */ \
            }                                                                           \
            for (ptrdiff_t s0 = 0; s0 < S || s0 == 0; s0 += BP_BC_SC) {                 \
                ptrdiff_t s1 = s0 + BP_BC_SC < S ? s0 + BP_BC_SC : S;                   \
                const bp_opt_##SUF *last = s1 == S ? u : NULL;                          \
                const T *Bp = B + s0 * ldb;                                             \
                ptrdiff_t bld = ldb, bcol[BP_BC_NR];                                    \
                BP_UNROLL for (int c = 0; c < BP_BC_NR; c++) bcol[c] = col[c];          \
                if ((pack_b || (s1 - s0) * ldb_bytes > BP_BC_PACK_SPAN)                 \
                        && q1 - q0 >= BP_BC_PACK_ROWS) {                                \
                    bld = BP_BC_NR * BP_W##SUF;                                         \
                    for (ptrdiff_t s = s0; s < s1; s++)                                 \
                        BP_UNROLL for (int c = 0; c < BP_BC_NR; c++)                    \
                            bp_store_##SUF(pack + (s - s0) * bld + c * BP_W##SUF,       \
                                           bp_load_##SUF(B + s * ldb + col[c]));        \
                    BP_UNROLL for (int c = 0; c < BP_BC_NR; c++) bcol[c] = c * BP_W##SUF; \
                    Bp = pack;                                                          \
                }                                                                       \
                for (ptrdiff_t r0 = q0; r0 < q1; r0 += BP_BC_MR)                        \
                    switch (q1 - r0 < BP_BC_MR ? q1 - r0 : BP_BC_MR) {                  \
                    case 1: bp_bcast_tile_##SUF(r0, 1, s0, s1, a, ars, ass, Bp, bld, bcol, col, at, C, ldc, last); break; \
                    case 2: bp_bcast_tile_##SUF(r0, 2, s0, s1, a, ars, ass, Bp, bld, bcol, col, at, C, ldc, last); break; \
                    case 3: bp_bcast_tile_##SUF(r0, 3, s0, s1, a, ars, ass, Bp, bld, bcol, col, at, C, ldc, last); break; \
                    default: bp_bcast_tile_##SUF(r0, BP_BC_MR, s0, s1, a, ars, ass, Bp, bld, bcol, col, at, C, ldc, last); \
                    }                                                                   \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
static void bp_bcast_##SUF(ptrdiff_t R, ptrdiff_t N, ptrdiff_t S, const T *a,            \
                           ptrdiff_t ars, ptrdiff_t ass, const T *B, ptrdiff_t ldb,     \
                           T *C, ptrdiff_t ldc) {                                       \
    bp_bcast_sgd_##SUF(R, N, S, a, ars, ass, B, ldb, C, ldc, NULL);                     \
}

#else  /* no vector extensions (MSVC): the same sums as plain loops */

#define BP_DEFINE_GEMM(T, SUF)                                                          \
BP_DEFINE_OPT_VECTOR(T, SUF)  /* bp_opt_update_SUF (_optim.h) */                         \
static inline int bp_pk_fuses_step_##SUF(ptrdiff_t S, ptrdiff_t N) {  /* no packed form */ \
    (void)S; (void)N; return 0;                                                         \
}                                                                                       \
static inline int bp_delta_packs_##SUF(ptrdiff_t R, ptrdiff_t S, ptrdiff_t N) {         \
    (void)R; (void)S; (void)N; return 0;                                                \
}                                                                                       \
static void bp_dot_##SUF(const T *A, ptrdiff_t lda, ptrdiff_t m, const T *W,             \
                         ptrdiff_t ldw, ptrdiff_t n, ptrdiff_t K, T *C, ptrdiff_t ldc) { \
    for (ptrdiff_t i = 0; i < m; i++)                                                   \
        for (ptrdiff_t j = 0; j < n; j++) {                                             \
            T s = 0;                                                                    \
            for (ptrdiff_t k = 0; k < K; k++) s += A[i * lda + k] * W[j * ldw + k];     \
            C[i * ldc + j] = s;                                                         \
        }                                                                               \
}                                                                                       \
static inline int bp_dot_packs_##SUF(ptrdiff_t m, ptrdiff_t K, ptrdiff_t n) {           \
    (void)m; (void)K; (void)n; return 0;                                                \
}                                                                                       \
static void bp_forward_##SUF(const T *A, ptrdiff_t lda, ptrdiff_t m, const T *W,         \
                             ptrdiff_t ldw, ptrdiff_t n, ptrdiff_t K, T *C,             \
                             ptrdiff_t ldc, int packed) {                               \
    (void)packed; bp_dot_##SUF(A, lda, m, W, ldw, n, K, C, ldc);                        \
}                                                                                       \
static void bp_bcast_##SUF(ptrdiff_t R, ptrdiff_t N, ptrdiff_t S, const T *a,            \
                           ptrdiff_t ars, ptrdiff_t ass, const T *B, ptrdiff_t ldb,     \
                           T *C, ptrdiff_t ldc) {                                       \
    for (ptrdiff_t r = 0; r < R; r++)                                                   \
        for (ptrdiff_t n = 0; n < N; n++) {                                             \
            T s_ = 0;                                                                   \
            for (ptrdiff_t s = 0; s < S; s++) s_ += a[r * ars + s * ass] * B[s * ldb + n]; \
            C[r * ldc + n] = s_;                                                        \
        }                                                                               \
}                                                                                       \
static void bp_bcast_sgd_##SUF(ptrdiff_t R, ptrdiff_t N, ptrdiff_t S, const T *a,        \
                               ptrdiff_t ars, ptrdiff_t ass, const T *B, ptrdiff_t ldb, \
                               T *C, ptrdiff_t ldc, const bp_opt_##SUF *u) {            \
    bp_bcast_##SUF(R, N, S, a, ars, ass, B, ldb, C, ldc);                               \
    if (u != NULL)                                                                      \
        for (ptrdiff_t r = 0; r < R; r++) bp_opt_run_##SUF(u, r * ldc, C + r * ldc, N);   \
}
#endif

BP_DEFINE_GEMM(float, f)
BP_DEFINE_GEMM(double, d)

#endif
