/* The update rules of bpcore.optim, each written once.
 *
 * Every rule is one macro body over a type V that is either a scalar T or a
 * GCC/Clang vector of T (scalar ops on a vector apply lane by lane): the velocity
 * form of SGD in BP_OPT_VELOCITY_BODY, SGD and Adam/AdamW in BP_OPT_BODY.  A step
 * takes g, the SUM over the m examples of a mini-batch of dC_x/dp, for the
 * parameters of a region (the weights or the biases of one layer); its callers are
 *
 *   - the epilogue of the fused gradient tile in _gemm.h (bp_bcast_sgd_*), when a
 *     mini-batch is summed in one block;
 *   - bp_opt_run_* / bp_opt_update_*, which step a run of consecutive parameters
 *     from a buffer of sums: the streaming pass of an epoch, the biases, and
 *     apply_update.
 *
 * The rules, in the seeds' notation (g = scale * sum: the mean gradient, scale =
 * 1/m; lambda = weight decay, applied to weights only: a bias region has wd = 0):
 *
 *   BP_RULE_SGD           torch.optim.SGD (dampening 0):
 *                         d = g + lambda p;  b <- mu b + d (momentum buffer);
 *                         d = d + mu b (Nesterov) or b;  p <- p - eta d
 *   BP_RULE_SGD_VELOCITY  network2.py's and scikit-learn's form, the velocity
 *                         holding the step: d = eta (g + lambda p);  v <- mu v - d;
 *                         p <- p + v  (Nesterov: p <- p + mu v - d; no momentum:
 *                         p <- p - d).  This is fit(lr=, momentum=, l2=), whose
 *                         arithmetic it keeps exactly (eta/m is one constant,
 *                         so d = (eta/m) sum + (eta lambda) p).
 *   BP_RULE_ADAM          torch.optim.Adam and, decoupled, AdamW:
 *                         g <- g + lambda p (Adam) or p <- (1 - eta lambda) p (AdamW);
 *                         m1 <- b1 m1 + (1 - b1) g;  m2 <- b2 m2 + (1 - b2) g^2;
 *                         p <- p - (eta / (1 - b1^t)) m1 / (sqrt(m2) / sqrt(1 - b2^t) + eps)
 *
 * With constant eta the two SGD forms take the same steps (v = -eta b); they differ
 * when eta changes between steps.  The constants of a step (bias corrections, the
 * products of hyperparameters) are computed once per step in double by
 * bp_opt_init_* and rounded to T.  Each parameter's step reads only that
 * parameter, its own state and its own gradient, and is computed by the same
 * instructions whichever path or thread steps it (see "Two kinds of instantiation"
 * below), so the result never depends on the thread count.
 */
#ifndef BPCORE_OPTIM_H
#define BPCORE_OPTIM_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif

/* Rule codes; _kernels.pyx exports them as the cpdef enum ``Rule``. */
enum bp_rule {
    BP_RULE_SGD = 0,
    BP_RULE_SGD_VELOCITY = 1,
    BP_RULE_ADAM = 2
};

/* The hyperparameters of an optimizer and its step count, as Python sets them. */
typedef struct {
    int rule;
    int nesterov;             /* SGD */
    int decoupled;            /* Adam: 1 = AdamW's decay p <- (1 - lr wd) p */
    double lr, momentum, beta1, beta2, eps, weight_decay;
    long long t;              /* steps taken so far */
} bp_hyper;

/* How many buffers of n_params a rule keeps: velocity / momentum buffer; m1 and m2. */
static inline int bp_rule_buffers(const bp_hyper *h) {
    if (h->rule == BP_RULE_ADAM) return 2;
    return h->momentum != 0 ? 1 : 0;
}

#define BP_DEFINE_OPT(T, SUF)                                                           \
/* One step's constants, for one region (the weights or the biases of a layer) */       \
typedef struct {                                                                        \
    int rule, momentum, nesterov;                                                       \
    T lr, scale, step, mu, wd, lr_wd, keep, b1, b2, c1, c2, step_size, bc2_sqrt, eps;   \
    T *p, *s0, *s1;           /* parameters, first and second state buffer */           \
} bp_opt_##SUF;                                                                         \
                                                                                        \
/* The constants of step t (1-based) for the region at p (state at s0, s1): lr_sum     \
   multiplies the gradient sum in the velocity form (lr/m), scale makes the sum a      \
   mean (1/m); decay: whether weight decay applies (weights: yes, biases: no). */      \
static inline void bp_opt_init_##SUF(bp_opt_##SUF *u, const bp_hyper *h, double lr_sum, \
                                     double scale, long long t, int decay, T *p, T *s0, \
                                     T *s1) {                                           \
    double wd = decay ? h->weight_decay : 0.0;                                          \
    int decoupled = h->rule == BP_RULE_ADAM && h->decoupled;                            \
    u->rule = h->rule;                                                                  \
    u->momentum = h->momentum != 0;                                                     \
    u->nesterov = h->nesterov;                                                          \
    u->lr = (T)h->lr;                                                                   \
    u->scale = (T)scale;                                                                \
    u->step = (T)lr_sum;                                                                \
    u->mu = (T)h->momentum;                                                             \
    u->wd = (T)(decoupled ? 0.0 : wd);                                                  \
    u->lr_wd = (T)(h->lr * wd);                                                         \
    u->keep = (T)(decoupled ? 1.0 - h->lr * wd : 1.0);                                  \
    u->b1 = (T)h->beta1;                                                                \
    u->b2 = (T)h->beta2;                                                                \
    u->c1 = (T)(1.0 - h->beta1);                                                        \
    u->c2 = (T)(1.0 - h->beta2);                                                        \
    u->step_size = u->bc2_sqrt = 0;  /* Adam's bias corrections (the SGDs need no pow) */ \
    if (h->rule == BP_RULE_ADAM) {                                                      \
        u->step_size = (T)(h->lr / (1.0 - pow(h->beta1, (double)t)));                   \
        u->bc2_sqrt = (T)sqrt(1.0 - pow(h->beta2, (double)t));                          \
    }                                                                                   \
    u->eps = (T)h->eps;                                                                 \
    u->p = p;                                                                           \
    u->s0 = s0;                                                                         \
    u->s1 = s1;                                                                         \
}

BP_DEFINE_OPT(float, f)
BP_DEFINE_OPT(double, d)

/* Two kinds of instantiation.  The velocity form (fit(lr=)'s rule) is inlined into its
   callers, a scalar and a vector form: the arithmetic bpcore has always used, bit for
   bit.  Every other rule is compiled exactly once per dtype, as one out-of-line
   function stepping one vector (bp_opt_vec_*), which every caller uses for every
   parameter (the last few of a run through a vector of copies): with FMA, a
   compiler may fuse a different one of the two products of  a*b + c*d  in different
   inlined copies of the same source (it did: docs/design.md), so one copy is the only
   way to make every path -- fused tile, streaming pass, apply_update, any thread
   count -- give the same bits. */

/* The velocity form of SGD; u, o and g: the step's constants, the offset in the
   region, the gradient sum; V is T or a vector of T, LOAD/STORE read and write a V. */
#define BP_OPT_VELOCITY_BODY(V, LOAD, STORE, FLUSH)                                          \
    V p = LOAD(u->p + o);                                                               \
    V d = u->step * g + u->lr_wd * p;                                                   \
    if (u->momentum) {                                                                  \
        V v = FLUSH(u->mu * LOAD(u->s0 + o) - d);                                       \
        STORE(u->s0 + o, v);                                                            \
        if (u->nesterov) p = p + (u->mu * v - d);                                       \
        else p = p + v;                                                                 \
    } else {                                                                            \
        p = p - d;                                                                      \
    }                                                                                   \
    STORE(u->p + o, p);

/* SGD and Adam / AdamW on the values at P, S0, S1 (parameters, first and second state
   buffer) from the sums at G. */
#define BP_OPT_BODY(V, LOAD, STORE, SQRT, FLUSH)                                            \
    V g = LOAD(G), p = LOAD(P);                                                         \
    if (u->rule == BP_RULE_SGD) {                                                       \
        V d = u->scale * g + u->wd * p;                                                 \
        if (u->momentum) {                                                              \
            V b = FLUSH(u->mu * LOAD(S0) + d);                                          \
            STORE(S0, b);                                                               \
            if (u->nesterov) d = d + u->mu * b;                                         \
            else d = b;                                                                 \
        }                                                                               \
        p = p - u->lr * d;                                                              \
    } else {  /* BP_RULE_ADAM */                                                        \
        V d = u->scale * g + u->wd * p;     /* Adam's L2 term; wd = 0 for AdamW */      \
        p = u->keep * p;                    /* AdamW's decay; keep = 1 for Adam */      \
        V m1 = FLUSH(u->b1 * LOAD(S0) + u->c1 * d);                                     \
        V m2 = FLUSH(u->b2 * LOAD(S1) + u->c2 * (d * d));                               \
        STORE(S0, m1);                                                                  \
        STORE(S1, m2);                                                                  \
        p = p - u->step_size * (m1 / (SQRT(m2) / u->bc2_sqrt + u->eps));                \
    }                                                                                   \
    STORE(P, p);

#define BP_OPT_TINY_f FLT_MIN
#define BP_OPT_TINY_d DBL_MIN
#define BP_OPT_SIGN_f ((int32_t)0x80000000u)
#define BP_OPT_SIGN_d ((int64_t)0x8000000000000000ull)

#define BP_OPT_SLOAD(q) (*(q))
#define BP_OPT_SSTORE(q, x) (*(q) = (x))

#if defined(__clang__)
#define BP_OPT_ONCE __attribute__((noinline))
#elif defined(__GNUC__)
#define BP_OPT_ONCE __attribute__((noinline, noclone))
#elif defined(_MSC_VER)
#define BP_OPT_ONCE __declspec(noinline)
#else
#define BP_OPT_ONCE
#endif

/* A state buffer's new value (momentum, velocity, Adam's moments), with a subnormal
 * value stored as a zero of its sign.  A parameter whose gradient stays zero (a dead
 * unit, an input pixel that is zero in every image) has its state decay
 * geometrically, mu^k v, through the subnormal range (at mu = 0.9: ~150 steps in
 * float32, ~340 in float64), and on x86 every operation with a subnormal operand or
 * result takes a microcode assist (~100+ cycles): on MNIST with momentum 0.9 a
 * few per cent of the velocities were subnormal after one epoch, and the epochs
 * after it ~45% slower.  The flush changes a state by less than the smallest
 * normal number (1.2e-38, 2.2e-308); all other arithmetic stays IEEE (no FTZ/DAZ
 * mode is set). */
static inline float bp_opt_sflush_f(float x) { return fabsf(x) < FLT_MIN ? x * 0.0f : x; }
static inline double bp_opt_sflush_d(double x) { return fabs(x) < DBL_MIN ? x * 0.0 : x; }

/* The scalar velocity step of one parameter (edge columns of the fused tile). */
static inline void bp_opt_vel_step_f(const bp_opt_f *u, ptrdiff_t o, float g) {
    BP_OPT_VELOCITY_BODY(float, BP_OPT_SLOAD, BP_OPT_SSTORE, bp_opt_sflush_f)
}
static inline void bp_opt_vel_step_d(const bp_opt_d *u, ptrdiff_t o, double g) {
    BP_OPT_VELOCITY_BODY(double, BP_OPT_SLOAD, BP_OPT_SSTORE, bp_opt_sflush_d)
}

/* Instantiated by _gemm.h inside BP_DEFINE_GEMM, where the vector type bp_vSUF is
   defined:
     bp_opt_vel_vstep_SUF(u, o, g)    the velocity step of a vector of parameters;
     bp_opt_run_SUF(u, o, g, n)       parameters o..o+n-1 of the region from the sums
                                      g[0..n-1], any rule;
     bp_opt_update_SUF(u, g, n)       bp_opt_run_SUF(u, 0, g, n). */
#if defined(__GNUC__) || defined(__clang__)

/* r = sqrt(x) lane by lane, for the vector widths _gemm.h picks (BP_VBYTES). */
#if defined(__AVX512F__)
#define BP_OPT_VSQRT_f(r, x) r = (bp_vf)_mm512_sqrt_ps((__m512)(x))
#define BP_OPT_VSQRT_d(r, x) r = (bp_vd)_mm512_sqrt_pd((__m512d)(x))
#elif defined(__AVX2__)
#define BP_OPT_VSQRT_f(r, x) r = (bp_vf)_mm256_sqrt_ps((__m256)(x))
#define BP_OPT_VSQRT_d(r, x) r = (bp_vd)_mm256_sqrt_pd((__m256d)(x))
#elif defined(__SSE2__)
#define BP_OPT_VSQRT_f(r, x) r = (bp_vf)_mm_sqrt_ps((__m128)(x))
#define BP_OPT_VSQRT_d(r, x) r = (bp_vd)_mm_sqrt_pd((__m128d)(x))
#else
#define BP_OPT_VSQRT_f(r, x) for (int l_ = 0; l_ < BP_Wf; l_++) r[l_] = sqrtf((x)[l_])
#define BP_OPT_VSQRT_d(r, x) for (int l_ = 0; l_ < BP_Wd; l_++) r[l_] = sqrt((x)[l_])
#endif

#define BP_DEFINE_OPT_VECTOR(T, SUF)                                                    \
static inline bp_v##SUF bp_opt_vload_##SUF(const T *q) {                                \
    bp_v##SUF v; memcpy(&v, q, sizeof v); return v;                                     \
}                                                                                       \
static inline void bp_opt_vstore_##SUF(T *q, bp_v##SUF v) { memcpy(q, &v, sizeof v); }  \
static inline bp_v##SUF bp_opt_vsqrt_##SUF(bp_v##SUF x) {                               \
    bp_v##SUF r;                                                                        \
    BP_OPT_VSQRT_##SUF(r, x);                                                           \
    return r;                                                                           \
}                                                                                       \
/* bp_opt_sflush_SUF lane by lane: the lanes below the smallest normal number in  \
   magnitude keep only their sign bit. */                                             \
static inline bp_v##SUF bp_opt_vflush_##SUF(bp_v##SUF x) {                              \
    const T tiny = BP_OPT_TINY_##SUF;                                                   \
    bp_vm##SUF small = (x < tiny) & (x > -tiny);  /* all ones where subnormal or 0 */   \
    bp_vm##SUF bits;                                                                    \
    memcpy(&bits, &x, sizeof bits);                                                     \
    bits &= ~small | BP_OPT_SIGN_##SUF;                                                 \
    memcpy(&x, &bits, sizeof x);                                                        \
    return x;                                                                           \
}                                                                                       \
static inline void bp_opt_vel_vstep_##SUF(const bp_opt_##SUF *u, ptrdiff_t o,           \
                                          bp_v##SUF g) {                                \
    BP_OPT_VELOCITY_BODY(bp_v##SUF, bp_opt_vload_##SUF, bp_opt_vstore_##SUF,            \
                         bp_opt_vflush_##SUF)                                           \
}                                                                                       \
/* The one compiled copy of the other rules: one vector of parameters. */               \
static BP_OPT_ONCE void bp_opt_vec_##SUF(const bp_opt_##SUF *u, T *P, T *S0, T *S1,      \
                                         const T *G) {                                  \
    BP_OPT_BODY(bp_v##SUF, bp_opt_vload_##SUF, bp_opt_vstore_##SUF, bp_opt_vsqrt_##SUF,  \
                bp_opt_vflush_##SUF)                                                    \
}                                                                                       \
static inline void bp_opt_run_##SUF(const bp_opt_##SUF *u, ptrdiff_t o, const T *g,     \
                                    ptrdiff_t n) {                                      \
    ptrdiff_t i = 0;                                                                    \
    if (u->rule == BP_RULE_SGD_VELOCITY) {                                              \
        /* from a copy of the constants, which no store to a parameter can change: the \
           compiler loads each once, not once per vector */                            \
        const bp_opt_##SUF uv = *u;                                                     \
        for (; i + BP_W##SUF <= n; i += BP_W##SUF)                                      \
            bp_opt_vel_vstep_##SUF(&uv, o + i, bp_opt_vload_##SUF(g + i));              \
        for (; i < n; i++) bp_opt_vel_step_##SUF(&uv, o + i, g[i]);                     \
        return;                                                                         \
    }                                                                                   \
    for (; i + BP_W##SUF <= n; i += BP_W##SUF)                                          \
        bp_opt_vec_##SUF(u, u->p + o + i, u->s0 ? u->s0 + o + i : NULL,                 \
                         u->s1 ? u->s1 + o + i : NULL, g + i);                          \
    if (i < n) {  /* the last few, in a vector of copies: the same instructions */      \
        T tp[BP_W##SUF] = {0}, t0[BP_W##SUF] = {0}, t1[BP_W##SUF] = {0}, tg[BP_W##SUF] = {0}; \
        size_t k = (size_t)(n - i) * sizeof(T);                                         \
        memcpy(tp, u->p + o + i, k);                                                    \
        memcpy(tg, g + i, k);                                                           \
        if (u->s0) memcpy(t0, u->s0 + o + i, k);                                        \
        if (u->s1) memcpy(t1, u->s1 + o + i, k);                                        \
        bp_opt_vec_##SUF(u, tp, t0, t1, tg);                                            \
        memcpy(u->p + o + i, tp, k);                                                    \
        if (u->s0) memcpy(u->s0 + o + i, t0, k);                                        \
        if (u->s1) memcpy(u->s1 + o + i, t1, k);                                        \
    }                                                                                   \
}                                                                                       \
static inline void bp_opt_update_##SUF(const bp_opt_##SUF *u, const T *g, ptrdiff_t n) { \
    bp_opt_run_##SUF(u, 0, g, n);                                                       \
}                                                                                       \
/* Ask for the lines of parameters o..o+n-1 of the region and of their state (for      \
   writing), ahead of a step: the fused tile of _gemm.h issues this before its sums,  \
   whose time covers the latency of the next cache level. */                          \
static inline void bp_opt_prefetch_##SUF(const bp_opt_##SUF *u, ptrdiff_t o, ptrdiff_t n) { \
    for (ptrdiff_t i = 0; i < n; i += 64 / (ptrdiff_t)sizeof(T)) {                      \
        __builtin_prefetch(u->p + o + i, 1, 3);                                         \
        if (u->s0) __builtin_prefetch(u->s0 + o + i, 1, 3);                             \
        if (u->s1) __builtin_prefetch(u->s1 + o + i, 1, 3);                             \
    }                                                                                   \
}

#else  /* no vector extensions: scalar forms */

#define BP_DEFINE_OPT_VECTOR(T, SUF)                                                    \
static BP_OPT_ONCE void bp_opt_vec_##SUF(const bp_opt_##SUF *u, T *P, T *S0, T *S1,      \
                                         const T *G) {                                  \
    BP_OPT_BODY(T, BP_OPT_SLOAD, BP_OPT_SSTORE, sqrt, bp_opt_sflush_##SUF)               \
}                                                                                       \
static inline void bp_opt_run_##SUF(const bp_opt_##SUF *u, ptrdiff_t o, const T *g,     \
                                    ptrdiff_t n) {                                      \
    for (ptrdiff_t i = 0; i < n; i++) {                                                 \
        if (u->rule == BP_RULE_SGD_VELOCITY) bp_opt_vel_step_##SUF(u, o + i, g[i]);     \
        else bp_opt_vec_##SUF(u, u->p + o + i, u->s0 ? u->s0 + o + i : NULL,            \
                              u->s1 ? u->s1 + o + i : NULL, g + i);                     \
    }                                                                                   \
}                                                                                       \
static inline void bp_opt_update_##SUF(const bp_opt_##SUF *u, const T *g, ptrdiff_t n) { \
    bp_opt_run_##SUF(u, 0, g, n);                                                       \
}

#endif

#endif
