/* The FMA limit of this machine's cores: independent multiply-adds on registers only.
 *
 *     gcc -O2 -march=x86-64-v4 -fopenmp tools/fma_peak.c -o fma_peak && ./fma_peak
 *
 * (-march=x86-64-v3 on a CPU without AVX-512: the AVX-512 line then must not run.)
 * Prints GFLOP/s for 512-bit and 256-bit float32 vectors on 1 and 2 threads: the roof
 * that docs/performance.md compares bpcore's products with, besides NumPy's sgemm.
 * 24 accumulators cover the latency of two FMA pipes; each multiply-add is 2 FLOP.
 */
#include <stdio.h>
#include <omp.h>

#define N 24

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

int main(void) {
    const long iters = 20000000;
    volatile float sink = 0;
    for (int wide = 1; wide >= 0; wide--) {
#ifndef __AVX512F__
        if (wide) continue;
#endif
        for (int nt = 1; nt <= 2; nt++) {
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
