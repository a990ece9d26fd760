# cython: language_level=3
"""Per-example math of backpropagation: activations, costs, output errors.

Everything here works on one example's contiguous vectors (a layer's z, a, delta)
and is ``noexcept nogil``; the kernels in ``_kernels.pyx`` call it from inside
their OpenMP regions.  The matrix products live in ``_gemm.h``.  ``real`` is float or double; each function is compiled
once per type.  The activation and cost codes come from ``_codes.h``.
"""
from libc.math cimport exp, log, log1p, fabs

cdef extern from "_vmath.h" nogil:
    void bp_sigmoid_f(const float* z, float* a, Py_ssize_t n)
    void bp_sigmoid_d(const double* z, double* a, Py_ssize_t n)
    void bp_tanh_f(const float* z, float* a, Py_ssize_t n)
    void bp_tanh_d(const double* z, double* a, Py_ssize_t n)
    float bp_softmax_exp_f(const float* z, float max, float* a, Py_ssize_t n)
    double bp_softmax_exp_d(const double* z, double max, double* a, Py_ssize_t n)

ctypedef fused real:
    float
    double

# The codes are defined once, in _codes.h; _kernels.pyx exports them to Python.
cdef extern from "_codes.h" nogil:
    enum bp_activation:
        IDENTITY
        SIGMOID
        TANH
        RELU
        LEAKY_RELU
        SOFTMAX
    enum bp_cost:
        QUADRATIC
        SQUARED_ERROR
        CROSS_ENTROPY
        LOG_LIKELIHOOD

# Slope of leaky_relu for z <= 0; python/_config.py LEAKY_SLOPE holds the same value.
cdef extern from *:
    """
    #define BP_LEAKY_SLOPE 0.01
    """
    const double LEAKY_SLOPE "BP_LEAKY_SLOPE"


cdef inline void activate(int act, const real* z, real* a, Py_ssize_t n) noexcept nogil:
    """a = sigma(z) for one layer of one example (softmax normalises the whole layer)."""
    cdef Py_ssize_t j
    cdef real m, total
    if act == SIGMOID:
        # 1/(1+e^-z) for z >= 0, e^z/(1+e^z) below, so exp never overflows (_vmath.h)
        if real is float:
            bp_sigmoid_f(z, a, n)
        else:
            bp_sigmoid_d(z, a, n)
    elif act == TANH:
        # vectorised through the same exp (_vmath.h), not libm's scalar tanh per unit
        if real is float:
            bp_tanh_f(z, a, n)
        else:
            bp_tanh_d(z, a, n)
    elif act == RELU:
        for j in range(n):
            a[j] = z[j] if z[j] > 0 else 0
    elif act == LEAKY_RELU:
        for j in range(n):
            a[j] = z[j] if z[j] > 0 else <real>LEAKY_SLOPE * z[j]
    elif act == SOFTMAX:
        # a_j = e^(z_j - max z) / sum_k e^(z_k - max z)
        m = z[0]
        for j in range(1, n):
            if z[j] > m:
                m = z[j]
        if real is float:
            total = bp_softmax_exp_f(z, m, a, n)
        else:
            total = bp_softmax_exp_d(z, m, a, n)
        for j in range(n):
            a[j] /= total
    else:  # IDENTITY
        for j in range(n):
            a[j] = z[j]


cdef inline void times_derivative(int act, const real* z, const real* a, real* d,
                                  Py_ssize_t n) noexcept nogil:
    """d *= sigma'(z), with sigma' written through a = sigma(z) where that is exact."""
    cdef Py_ssize_t j
    if act == SIGMOID:
        for j in range(n):
            d[j] *= a[j] * (1 - a[j])
    elif act == TANH:
        for j in range(n):
            d[j] *= 1 - a[j] * a[j]
    elif act == RELU:
        for j in range(n):
            if not z[j] > 0:
                d[j] = 0
    elif act == LEAKY_RELU:
        for j in range(n):
            if not z[j] > 0:
                d[j] *= <real>LEAKY_SLOPE
    # IDENTITY: sigma' = 1; SOFTMAX only appears in the fused output error.


cdef inline void output_delta(int cost, int act, const real* z, const real* a, const real* y,
                              real* d, Py_ssize_t n) noexcept nogil:
    """delta^L = dC_x/da^L (.) sigma'(z^L), or its fused form a - y."""
    cdef Py_ssize_t j
    if cost == SQUARED_ERROR:
        for j in range(n):
            d[j] = 2 * (a[j] - y[j])
    else:
        for j in range(n):
            d[j] = a[j] - y[j]
    if cost == QUADRATIC or cost == SQUARED_ERROR:
        times_derivative(act, z, a, d, n)
    # CROSS_ENTROPY (sigmoid) and LOG_LIKELIHOOD (softmax): sigma' cancels, delta^L = a - y.


cdef inline double example_cost(int cost, const real* z, const real* a, const real* y,
                                Py_ssize_t n) noexcept nogil:
    """C_x, the cost of one example, accumulated in double."""
    cdef Py_ssize_t j
    cdef double c = 0, diff, zj, m, lse
    if cost == QUADRATIC or cost == SQUARED_ERROR:
        for j in range(n):
            diff = <double>a[j] - <double>y[j]
            c += diff * diff
        return 0.5 * c if cost == QUADRATIC else c
    if cost == CROSS_ENTROPY:
        # -y ln a - (1-y) ln(1-a) with a = sigmoid(z), written in z so it stays
        # finite when a rounds to 0 or 1: max(z, 0) - z y + ln(1 + e^-|z|)
        for j in range(n):
            zj = z[j]
            c += (zj if zj > 0 else 0) - zj * y[j] + log1p(exp(-fabs(zj)))
        return c
    # LOG_LIKELIHOOD: -sum_j y_j ln a_j with ln a_j = z_j - logsumexp(z)
    m = z[0]
    for j in range(1, n):
        if z[j] > m:
            m = z[j]
    lse = 0
    for j in range(n):
        lse += exp(<double>z[j] - m)
    lse = m + log(lse)
    for j in range(n):
        if y[j] != 0:
            c += y[j] * (lse - z[j])
    return c
