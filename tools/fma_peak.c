/* The FMA limit of this machine's cores: independent multiply-adds on registers only.
 *
 *     gcc -O2 -march=native -fopenmp tools/fma_peak.c -o fma_peak && ./fma_peak [threads...]
 *
 * (-march=native compiles the widths this CPU has: the 512-bit line only with AVX-512.)
 * Prints GFLOP/s for 512-bit and 256-bit float32 vectors on each thread count given
 * (default 1 and 2; benchmarks/compare.py passes its own): the roof
 * that docs/performance.md compares bpcore's products with, besides NumPy's sgemm.
 * Independent accumulators cover the latency of two FMA pipes (4-5 cycles x 2 needs
 * 8-10); each multiply-add is 2 FLOP.  They must all stay in registers: with AVX-512's
 * 32 registers 24 fit, with AVX2's 16 only 12 (24 there spilled to the stack and
 * measured half the FMA rate of an AVX2-only Zen 3).
 */
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>

#if defined(__AVX512F__)
#define N 24  /* 32 vector registers */
#else
#define N 12  /* 16 vector registers: 12 accumulators and the two operands, no spills */
#endif

#define RUN(V, LANES)                                                                \
    {                                                                                \
        V a[N], x = (V){0} + 1.0000001f, y = (V){0} + 1e-7f;                        \
        for (int i = 0; i < N; i++) a[i] = (V){0} + (float)i;                        \
        for (long it = 0; it < iters; it++) {                                        \
            _Pragma("GCC unroll 24") for (int i = 0; i < N; i++) a[i] = a[i] * x + y; \
        }                                                                            \
        for (int i = 0; i < N; i++) sink += a[i][0];                                 \
    }

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));

int main(int argc, char** argv) {
    const long iters = 20000000;
    volatile float sink = 0;
    int default_threads[] = {1, 2}, counts[64], n_counts = 0;
    for (int i = 1; i < argc && n_counts < 64; i++) counts[n_counts++] = atoi(argv[i]);
    if (n_counts == 0) {
        counts[0] = default_threads[0], counts[1] = default_threads[1];
        n_counts = 2;
    }
    for (int wide = 1; wide >= 0; wide--) {
#ifndef __AVX512F__
        if (wide) continue;
#endif
        for (int c = 0; c < n_counts; c++) {
            int nt = counts[c] > 0 ? counts[c] : 1;
            double best = 1e30;
            for (int rep = 0; rep < 3; rep++) {
                double t = omp_get_wtime();
#pragma omp parallel num_threads(nt)
                {
                    if (wide) RUN(v16, 16) else RUN(v8, 8)
                }
                t = omp_get_wtime() - t;
                if (t < best) best = t;
            }
            double flop = 2.0 * (wide ? 16 : 8) * N * (double)iters * nt;
            printf("%s, %d thread(s): %.0f GFLOP/s\n", wide ? "512-bit" : "256-bit", nt,
                   flop / best / 1e9);
        }
    }
    return 0;
}
