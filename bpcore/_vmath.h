/* Vectorised exp for the activations that need it: sigmoid, tanh and softmax.
 *
 * All of them only ever take exp of a number <= 0 (sigmoid: e^-|z|; tanh: e^-2|z|;
 * softmax: e^(z - max z)), so one routine covers them: bp_expneg(x) = e^x for x <= 0,
 * written with the vector types of _gemm.h and so compiled once per instruction set,
 * like the products.
 *
 *   n = round(x / ln 2),  r = x - n ln 2 (|r| <= ln(2)/2, Cody-Waite: ln 2 = hi + lo),
 *   e^r by its Taylor polynomial (degree 13 for double, 7 for float: truncation error
 *   below 5e-18 and 6e-9 relative, under half an ulp), e^x = e^r 2^n, the power of two
 *   built from its exponent bits in two halves 2^n1 2^n2 (n1 + n2 = n) so that results
 *   down to the smallest subnormal stay exact powers of two.
 *
 * x below the smallest argument whose exp is not 0 is clamped there (the result then
 * rounds to 0 as exp(x) would); NaN stays NaN (it fails every comparison).  The error
 * against libm's exp is about 1 ulp, far below the tests' tolerances, and the result
 * of an element never depends on its neighbours, the tail or the thread count: a
 * partial vector at the end of an array is computed with the same arithmetic.
 *
 * tanh(z) = (1 - e) / (1 + e) with e = e^-2|z| for |z| >= 0.625 (e <= 0.29: no
 * cancellation), and Cephes' odd rational (double) or polynomial (float) in z^2
 * below, where 1 - e would cancel; the sign of z put back.  Against libm's tanh:
 * a few ulp (tests/test_kernel_variants.py bounds it); libm's scalar call per unit
 * cost a tanh layer more than its products (docs/performance.md has the figures).
 */
#ifndef BPCORE_VMATH_H
#define BPCORE_VMATH_H

#include <math.h>
#include "_gemm.h"

#if defined(__GNUC__) || defined(__clang__)

/* Integer vectors of the width of bp_vf / bp_vd, for exponent-bit arithmetic. */
typedef int bp_vif __attribute__((vector_size(BP_VBYTES)));
typedef long long bp_vid __attribute__((vector_size(BP_VBYTES)));

/* Lanes where mask is all ones take a, the others b. */
#define BP_SELECT(VI, mask, a, b) ((__typeof__(a))(((mask) & (VI)(a)) | (~(mask) & (VI)(b))))

static inline bp_vd bp_expneg_vd(bp_vd x) {
    const double shifter = 0x1.8p52;  /* adding it rounds to an integer, kept in the low bits */
    const bp_vd lo = (bp_vd){0} - 745.2;  /* exp(-745.2) rounds to 0 */
    x = BP_SELECT(bp_vid, x < lo, lo, x);
    bp_vd t = x * 0x1.71547652b82fep0 + shifter;           /* x / ln 2 + shifter */
    bp_vd n = t - shifter;
    bp_vd r = x - n * 0x1.62e42fee00000p-1;                /* ln 2, high bits */
    r = r - n * 0x1.a39ef35793c76p-33;                     /* ln 2, low bits */
    bp_vd p = (bp_vd){0} + 1.0 / 6227020800.0;             /* 1/13! ... 1/0!, Horner */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    /* n in [-1075, 0]: n1 = round(n / 2), n2 = n - n1, both >= -538 (normal). */
    bp_vd t1 = n * 0.5 + shifter;
    bp_vid n1 = (bp_vid)t1 - (bp_vid)((bp_vd){0} + shifter);
    bp_vid n2 = ((bp_vid)t - (bp_vid)((bp_vd){0} + shifter)) - n1;
    bp_vd s1 = (bp_vd)((n1 + 1023) << 52), s2 = (bp_vd)((n2 + 1023) << 52);
    return p * s1 * s2;
}

static inline bp_vf bp_expneg_vf(bp_vf x) {
    const float shifter = 0x1.8p23f;
    const bp_vf lo = (bp_vf){0} - 104.0f;  /* expf(-104) rounds to 0 */
    x = BP_SELECT(bp_vif, x < lo, lo, x);
    bp_vf t = x * 0x1.715476p0f + shifter;
    bp_vf n = t - shifter;
    bp_vf r = x - n * 0x1.62e4p-1f;                        /* ln 2 = hi + lo */
    r = r - n * 0x1.7f7d1cp-20f;
    bp_vf p = (bp_vf){0} + 1.0f / 5040.0f;                 /* 1/7! ... 1/0!, Horner */
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* n in [-151, 0]: n1 = round(n / 2), n2 = n - n1, both >= -76 (normal). */
    bp_vf t1 = n * 0.5f + shifter;
    bp_vif n1 = (bp_vif)t1 - (bp_vif)((bp_vf){0} + shifter);
    bp_vif n2 = ((bp_vif)t - (bp_vif)((bp_vf){0} + shifter)) - n1;
    bp_vf s1 = (bp_vf)((n1 + 127) << 23), s2 = (bp_vf)((n2 + 127) << 23);
    return p * s1 * s2;
}

/* tanh of a vector (see the top of the file): the two branches computed for every
 * lane and one selected, so that a lane's result never depends on its neighbours. */
static inline bp_vd bp_tanh_vd(bp_vd x) {
    const bp_vid sign = (bp_vid){0} + (long long)0x8000000000000000ull;
    bp_vd ax = (bp_vd)((bp_vid)x & ~sign);
    bp_vd e = bp_expneg_vd(-2 * ax);
    bp_vd big = (1 - e) / (1 + e);
    bp_vd s = ax * ax;                           /* Cephes tanh.c, |x| < 0.625 */
    bp_vd p = (s * -9.64399179425052238628e-1 - 9.92877231001918586564e1) * s
              - 1.61468768441708447952e3;
    bp_vd q = ((s + 1.12811678491632931402e2) * s + 2.23548839060100448583e3) * s
              + 4.84406305325125486048e3;
    bp_vd t = BP_SELECT(bp_vid, ax < 0.625, ax + ax * s * (p / q), big);
    return (bp_vd)((bp_vid)t | ((bp_vid)x & sign));  /* tanh is odd: x's sign, -0 too */
}

static inline bp_vf bp_tanh_vf(bp_vf x) {
    const bp_vif sign = (bp_vif){0} + (int)0x80000000u;
    bp_vf ax = (bp_vf)((bp_vif)x & ~sign);
    bp_vf e = bp_expneg_vf(-2 * ax);
    bp_vf big = (1 - e) / (1 + e);
    bp_vf s = ax * ax;                           /* Cephes tanhf.c, |x| < 0.625 */
    bp_vf p = (((-5.70498872745e-3f * s + 2.06390887954e-2f) * s - 5.37397155531e-2f) * s
               + 1.33314422036e-1f) * s - 3.33332819422e-1f;
    bp_vf t = BP_SELECT(bp_vif, ax < 0.625f, p * s * ax + ax, big);
    return (bp_vf)((bp_vif)t | ((bp_vif)x & sign));
}

/* NAME(z, a, n): a_j = VF(z_j) for j < n, a vector at a time; the last partial vector
 * through bp_load_part / bp_store_part (_gemm.h: zeros after the n values, only
 * those stored), so a lane's result never depends on the tail. */
#define BP_DEFINE_VMAP(T, SUF, NAME, VF)                                               \
static void NAME(const T *z, T *a, ptrdiff_t n) {                                       \
    ptrdiff_t j = 0;                                                                    \
    for (; j + BP_W##SUF <= n; j += BP_W##SUF)                                          \
        bp_store_##SUF(a + j, VF(bp_load_##SUF(z + j)));                                \
    if (j < n)                                                                          \
        bp_store_part_##SUF(a + j, VF(bp_load_part_##SUF(z + j, n - j)), n - j);        \
}

/* a = sigmoid(z) = 1 / (1 + e^-z) for z >= 0, e^z / (1 + e^z) below: exp never
 * overflows. */
#define BP_DEFINE_VMATH(T, SUF, VI)                                                    \
static inline bp_v##SUF bp_sigmoid_v##SUF(bp_v##SUF z) {                                \
    VI pos = z >= 0;                                                                    \
    bp_v##SUF e = bp_expneg_v##SUF(BP_SELECT(VI, pos, -z, z));      /* e^-|z| */        \
    return BP_SELECT(VI, pos, (bp_v##SUF){0} + 1, e) / (1 + e);                         \
}                                                                                       \
BP_DEFINE_VMAP(T, SUF, bp_sigmoid_##SUF, bp_sigmoid_v##SUF)                             \
BP_DEFINE_VMAP(T, SUF, bp_tanh_##SUF, bp_tanh_v##SUF)                                   \
/* a_j = e^(z_j - max) for all j; returns their sum, taken in index order. */           \
static T bp_softmax_exp_##SUF(const T *z, T max, T *a, ptrdiff_t n) {                   \
    ptrdiff_t j = 0;                                                                    \
    T total = 0;                                                                        \
    for (; j + BP_W##SUF <= n; j += BP_W##SUF)                                          \
        bp_store_##SUF(a + j, bp_expneg_v##SUF(bp_load_##SUF(z + j) - max));            \
    if (j < n)                                                                          \
        bp_store_part_##SUF(a + j, bp_expneg_v##SUF(bp_load_part_##SUF(z + j, n - j) - max), \
                            n - j);                                                     \
    for (j = 0; j < n; j++) total += a[j];                                              \
    return total;                                                                       \
}

BP_DEFINE_VMATH(float, f, bp_vif)
BP_DEFINE_VMATH(double, d, bp_vid)

#else  /* no vector extensions (MSVC): libm, element by element */

#define BP_DEFINE_VMATH(T, SUF, EXP, TANH)                                              \
static void bp_sigmoid_##SUF(const T *z, T *a, ptrdiff_t n) {                           \
    for (ptrdiff_t j = 0; j < n; j++) {                                                 \
        T e = EXP(z[j] >= 0 ? -z[j] : z[j]);                                            \
        a[j] = (z[j] >= 0 ? 1 : e) / (1 + e);                                           \
    }                                                                                   \
}                                                                                       \
static T bp_softmax_exp_##SUF(const T *z, T max, T *a, ptrdiff_t n) {                   \
    T total = 0;                                                                        \
    for (ptrdiff_t j = 0; j < n; j++) { a[j] = EXP(z[j] - max); total += a[j]; }        \
    return total;                                                                       \
}                                                                                       \
static void bp_tanh_##SUF(const T *z, T *a, ptrdiff_t n) {                              \
    for (ptrdiff_t j = 0; j < n; j++) a[j] = TANH(z[j]);                                \
}

BP_DEFINE_VMATH(float, f, expf, tanhf)
BP_DEFINE_VMATH(double, d, exp, tanh)
#endif

#endif
