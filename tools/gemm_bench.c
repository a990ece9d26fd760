/* One core's rate on the three products of a training step, straight from _gemm.h.
 *
 *     gcc -O3 -march=x86-64-v3 -Ibpcore tools/gemm_bench.c -o gemm_bench -lm
 *     LD=2864 taskset -c 1 ./gemm_bench KIND m n_in n_out [calls]
 *
 * (-march as the kernel variant to time: x86-64-v4, x86-64-v3, or none for baseline.)
 * KIND, for a layer of n_in inputs and n_out units and m examples:
 *   f  forward   Z = A W^T        bp_forward    (A: m x n_in, W: n_out x n_in), in the
 *                                                form training takes (bp_dot_packs)
 *   o  forward in bp_dot's form (the other one for m >= BP_FWD_PK_ROWS)
 *   t  forward in the packed form, W transposed panel by panel     bp_pk_dot
 *   d  delta     D W              bp_bcast      (D: m x n_out)
 *   g  gradient  D^T A            bp_bcast      (into an n_out x n_in buffer)
 *   G  gradient with the SGD step fused into W  bp_bcast_sgd
 *   p  delta through the packed form            bp_pk_bcast
 * LD is the row stride of A, D and Z in floats (the network's workspace: `units`,
 * Network(...)._layout.units; an odd number of cache lines), default max(n_in, n_out).
 * Arrays are on transparent huge pages, as NumPy's are above 4 MiB.  Prints the best
 * call's GFLOP/s and, per call, its rate over the FMA rate measured just before and
 * after it (median and best): the host's load moves both, their ratio less.  Compare
 * builds by alternating them, several rounds; docs/performance.md has the figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "_gemm.h"

static void *huge_alloc(size_t bytes) {
    void *p;
    const size_t page = (size_t)2 << 20;
    bytes = (bytes + page - 1) / page * page;
    if (posix_memalign(&p, page, bytes)) exit(1);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, bytes, MADV_HUGEPAGE);
#endif
    memset(p, 0, bytes);
    return p;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* GFLOP/s of 12 independent FMA chains on registers (tools/fma_peak.c in short). */
static double fma_rate(long iters) {
    bp_vf a[12], x = (bp_vf){0} + 1.0000001f, y = (bp_vf){0} + 1e-7f;
    for (int i = 0; i < 12; i++) a[i] = (bp_vf){0} + (float)i;
    double t = now();
    for (long it = 0; it < iters; it++) {
        BP_UNROLL for (int i = 0; i < 12; i++) a[i] = a[i] * x + y;
    }
    t = now() - t;
    float s = 0;
    for (int i = 0; i < 12; i++) s += a[i][0];
    volatile float sink = s;
    (void)sink;
    return 2.0 * BP_Wf * 12 * (double)iters / t / 1e9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: [LD=stride] %s f|o|t|d|g|G|p m n_in n_out [calls]\n", argv[0]);
        return 2;
    }
    const char kind = argv[1][0];
    const long m = atol(argv[2]), K = atol(argv[3]), n = atol(argv[4]);
    const int calls = argc > 5 ? atoi(argv[5]) : 20;
    const long ld = getenv("LD") ? atol(getenv("LD")) : (K > n ? K : n);
    if (m < 1 || K < 1 || n < 1 || calls < 1 || calls > 10000 || ld < (K > n ? K : n)) {
        fprintf(stderr, "bad shape, calls or LD (LD >= max(n_in, n_out))\n");
        return 2;
    }
    float *A = huge_alloc(sizeof(float) * m * ld), *D = huge_alloc(sizeof(float) * m * ld);
    float *W = huge_alloc(sizeof(float) * n * K), *C = huge_alloc(sizeof(float) * (m * ld + n * K));
    for (long i = 0; i < m * ld; i++) A[i] = (float)(i % 7) * 0.1f, D[i] = (float)(i % 3) * 0.1f;
    for (long i = 0; i < n * K; i++) W[i] = (float)(i % 5) * 0.1f;
    bp_hyper h = {0};
    h.rule = BP_RULE_SGD_VELOCITY;
    h.lr = 0.01;
    bp_opt_f u;
    bp_opt_init_f(&u, &h, 1e-9, 1.0 / m, 1, 1, W, NULL, NULL);

    double best = 1e30, *rel = malloc(sizeof(double) * calls);
    for (int r = 0; r < calls; r++) {
        const double f0 = fma_rate(200000), t0 = now();
        switch (kind) {
        case 'f': bp_forward_f(A, ld, m, W, K, n, K, C, ld, bp_dot_packs_f(m, K, n)); break;
        case 'o': bp_dot_f(A, ld, m, W, K, n, K, C, ld); break;
        case 't': bp_pk_dot_f(A, ld, m, W, K, n, K, C, ld); break;
        case 'd': bp_bcast_f(m, K, n, D, ld, 1, W, K, C, ld); break;
        case 'g': bp_bcast_f(n, K, m, D, 1, ld, A, ld, C, K); break;
        case 'G': bp_bcast_sgd_f(n, K, m, D, 1, ld, A, ld, C, K, &u); break;
        case 'p': bp_pk_bcast_f(m, K, n, D, ld, 1, W, K, C, ld, NULL); break;
        default: fprintf(stderr, "unknown kind %c\n", kind); return 2;
        }
        const double t = now() - t0, f1 = fma_rate(200000);
        if (t < best) best = t;
        rel[r] = 2.0 * m * K * n / t / 1e9 / (0.5 * (f0 + f1));
    }
    qsort(rel, calls, sizeof(double), by_value);
    printf("%c m=%ld n_in=%ld n_out=%ld LD=%ld (%s): %.1f GFLOP/s best call (%.3f ms); "
           "rate / FMA rate: median %.3f, best %.3f\n",
           kind, m, K, n, ld, bp_isa, 2.0 * m * K * n / best / 1e9, best * 1e3,
           rel[calls / 2], rel[calls - 1]);
    return 0;
}
