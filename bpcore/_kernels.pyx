# cython: language_level=3
"""The compiled core: forward pass, delta propagation, gradients and optimizer steps.

Entry points
    ``train_epoch`` (an epoch of mini-batches, one optimizer step after each),
    ``gradient`` (the gradient sum of a batch, no update), ``apply_update`` (one
    optimizer step from a gradient sum: data-parallel training calls these two
    around an allreduce) and ``forward``.  The update rules are in _optim.h, each
    written once; ``Hyper`` carries an optimizer's rule, hyperparameters and step
    count.  ``Rule``, ``Activation`` and ``Cost`` are the codes the Python layer uses.

Parameter layout (one flat buffer per network, genann-style)
    For l = 1..L: W^l (n_l x n_{l-1}, row-major, so W^l[j, k] = w^l_jk) at
    ``w_off[l]``, then b^l (n_l) at ``b_off[l]``.  Gradients and each of the
    optimizer's state buffers (SGD's velocity, Adam's two moments) use the same
    layout in buffers of the same size; the state is one (buffers, n_params) array.

Workspace layout
    One row per example of the mini-batch; in it, layer l's n_l units start at
    ``u_off[l]`` (l = 0..L; layer 0 holds the example's inputs, gathered from X
    through the epoch's permutation).  Z holds z^l, A holds a^l, D holds delta^l;
    a layer of a block of examples is thus a matrix with leading dimension
    ``units``, which the products of ``_gemm.h`` take directly.

Alignment
    Every offset above is a multiple of a 64-byte cache line, so that in buffers
    that start on a line (the Python side allocates them so) each W^l, b^l and
    layer of a workspace row starts on a line, and so does every row of W^l when
    n_{l-1} fills whole lines.  A 64-byte vector load that straddles two lines
    costs two: the products of a 1024-4096-4096-1024 step ran at 117 GFLOP/s
    from buffers 16 bytes off a line and 146 GFLOP/s from aligned ones (one
    AVX-512 core).  The gaps are never read by the kernels.

    ``units``, the workspace row stride, is moreover an odd number of lines.
    The gradient and delta products walk down columns of the workspace (one
    row per example); with a stride of a multiple of 4 KiB, as 10,240 floats
    are, every row's line falls in the same L1 set, and the 128 rows of a block
    evict each other.  An odd stride spreads 64 consecutive rows over all 64
    sets: the gradient products of that network went from 136 to 210 GFLOP/s
    (AVX-512) and from 49 to 90 (AVX2).

Parallel scheme (one OpenMP region per epoch, two barriers per mini-batch)
    1. per-example phase, the mini-batch split into one block of rows per
       thread: gather, forward pass, cost, delta^L and delta^l for all layers of
       the block (no barrier between layers: a block needs only its own rows);
    2. per-row phase, each layer's rows of W in chunks (``row_chunk``) that the
       threads take in turn from a shared counter, so that a thread the host
       slows down takes fewer: rows j of dC/dW^l = sum_i delta^l_ij a^{l-1}_i / m,
       summed over the examples in index order, then their optimizer step.
    Every number is computed by exactly one thread, in an order that does not
    depend on which thread or how many (see _gemm.h): trained weights are
    bitwise the same for any thread count.
"""
from cython.parallel cimport parallel

from libc.string cimport memcpy

from bpcore._math cimport real, activate, times_derivative, output_delta, example_cost

import numpy as np

cdef extern from "_omp.h" nogil:
    int bp_openmp_enabled()
    int bp_openmp_version()
    int bp_thread_num()
    int bp_team_size()
    int bp_max_threads()
    void bp_barrier()
    Py_ssize_t bp_take(Py_ssize_t* counter)
    double bp_seconds()

cdef extern from "Python.h":
    # Declared without an exception value: a KeyboardInterrupt it sets stays
    # pending until train() returns to Python (see raise_pending).
    int check_signals "PyErr_CheckSignals" ()
    const char* bp_compile_args
    const char* bp_openmp_reason
    const char* bp_compiler

cdef extern from "_optim.h" nogil:
    ctypedef struct bp_hyper:
        int rule, nesterov, decoupled
        double lr, momentum, beta1, beta2, eps, weight_decay
        long long t
    int bp_rule_buffers(const bp_hyper* h)
    ctypedef struct bp_opt_f:
        pass
    ctypedef struct bp_opt_d:
        pass
    void bp_opt_init_f(bp_opt_f* u, const bp_hyper* h, double lr_sum, double scale, long long t,
                       int decay, float* p, float* s0, float* s1)
    void bp_opt_init_d(bp_opt_d* u, const bp_hyper* h, double lr_sum, double scale, long long t,
                       int decay, double* p, double* s0, double* s1)
    void bp_opt_update_f(const bp_opt_f* u, const float* g, Py_ssize_t n)
    void bp_opt_update_d(const bp_opt_d* u, const double* g, Py_ssize_t n)

    # The update rules' codes (bpcore.optim reads them back).
    cpdef enum Rule "bp_rule":
        SGD "BP_RULE_SGD"
        SGD_VELOCITY "BP_RULE_SGD_VELOCITY"
        ADAM "BP_RULE_ADAM"

# The activation and cost codes, defined in _codes.h; python/_config.py reads the
# names (in lower case) and their order from these.
cdef extern from "_codes.h":
    cpdef enum Activation "bp_activation":
        IDENTITY
        SIGMOID
        TANH
        RELU
        LEAKY_RELU
        SOFTMAX
    cpdef enum Cost "bp_cost":
        QUADRATIC
        SQUARED_ERROR
        CROSS_ENTROPY
        LOG_LIKELIHOOD

cdef extern from "_gemm.h" nogil:
    enum: BP_BC_SC
    const char* bp_isa
    int bp_cpu_level()
    void bp_dot_f(const float* A, Py_ssize_t lda, Py_ssize_t m, const float* W, Py_ssize_t ldw,
                  Py_ssize_t n, Py_ssize_t K, float* C, Py_ssize_t ldc)
    void bp_dot_d(const double* A, Py_ssize_t lda, Py_ssize_t m, const double* W,
                  Py_ssize_t ldw, Py_ssize_t n, Py_ssize_t K, double* C, Py_ssize_t ldc)
    void bp_bcast_f(Py_ssize_t R, Py_ssize_t N, Py_ssize_t S, const float* a, Py_ssize_t ars,
                    Py_ssize_t ass, const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc)
    void bp_bcast_d(Py_ssize_t R, Py_ssize_t N, Py_ssize_t S, const double* a, Py_ssize_t ars,
                    Py_ssize_t ass, const double* B, Py_ssize_t ldb, double* C, Py_ssize_t ldc)
    void bp_bcast_sgd_f(Py_ssize_t R, Py_ssize_t N, Py_ssize_t S, const float* a,
                        Py_ssize_t ars, Py_ssize_t ass, const float* B, Py_ssize_t ldb,
                        float* C, Py_ssize_t ldc, const bp_opt_f* u)
    void bp_bcast_sgd_d(Py_ssize_t R, Py_ssize_t N, Py_ssize_t S, const double* a,
                        Py_ssize_t ars, Py_ssize_t ass, const double* B, Py_ssize_t ldb,
                        double* C, Py_ssize_t ldc, const bp_opt_d* u)


cdef struct LayoutC:
    Py_ssize_t n_layers       # L
    Py_ssize_t units          # n_0 + ... + n_L, padded: the length of a workspace row
    const Py_ssize_t* sizes   # n_0 .. n_L
    const Py_ssize_t* w_off   # [l] = offset of W^l in the parameter buffer (l = 1..L)
    const Py_ssize_t* b_off   # [l] = offset of b^l
    const Py_ssize_t* u_off   # [l] = offset of layer l in a workspace row (l = 0..L)
    const int* act            # [l] = activation code of layer l
    int cost


cdef struct Data:
    const void* X             # (n, n_0) inputs, row-major, of the network's dtype
    const void* Y             # (n, n_L) targets
    const void* weights       # per-example factor of delta^L, indexed like X; NULL = 1
    const Py_ssize_t* order   # example used at each position; NULL = 0, 1, 2, ...
    Py_ssize_t n              # examples
    Py_ssize_t batch_size     # m; the last mini-batch may be smaller
    void* Z                   # (batch_size, units) workspaces
    void* A
    void* D
    double* costs             # cost of the example at each position, or NULL
    Py_ssize_t rows_taken     # chunks of rows of W taken so far in this mini-batch's phase 2
    double next_poll          # bp_seconds() after which thread 0 checks for signals
    bint interrupted          # set by thread 0 when a signal handler raised


cdef struct Update:
    const bp_hyper* hyper     # the optimizer; NULL: phase 2 only sums the gradient
    void* state               # its buffers, bp_rule_buffers(hyper) rows of n_params
    Py_ssize_t n_params
    Py_ssize_t steps          # optimizer steps completed in this call


#: Where the buffers given to the kernels should start (bytes): a cache line.
BUFFER_ALIGNMENT = 64


cdef inline Py_ssize_t aligned(Py_ssize_t offset, Py_ssize_t line) noexcept:
    """The first multiple of line at or after offset."""
    return (offset + line - 1) // line * line


cdef class Layout:
    """Sizes, offsets and codes of one network, as the kernels read them.

    Parameters
    ----------
    sizes : sequence of int
        n_0, ..., n_L.
    act_codes : sequence of int
        Activation code of layers 1..L (``_config.ACTIVATIONS`` index).
    cost_code : int
        ``_config.COSTS`` index.
    itemsize : int
        Bytes per number (4: float32, 8: float64), for the alignment of offsets.
    """
    cdef LayoutC c
    cdef readonly object sizes, w_off, b_off, u_off, act
    cdef readonly Py_ssize_t n_params
    cdef readonly Py_ssize_t line  # elements per cache line: every offset is a multiple

    def __init__(self, sizes, act_codes, int cost_code, int itemsize):
        cdef Py_ssize_t L = len(sizes) - 1, l, offset = 0, units = 0
        if L < 1 or len(act_codes) != L:
            raise ValueError("Layout needs len(sizes) >= 2 and one activation per layer")
        if itemsize not in (4, 8):
            raise ValueError("Layout needs itemsize 4 or 8")
        cdef Py_ssize_t line = BUFFER_ALIGNMENT // itemsize  # elements per cache line
        self.sizes = np.asarray(sizes, dtype=np.intp)
        self.w_off = np.zeros(L + 1, dtype=np.intp)
        self.b_off = np.zeros(L + 1, dtype=np.intp)
        self.u_off = np.zeros(L + 1, dtype=np.intp)
        self.act = np.full(L + 1, -1, dtype=np.intc)
        units = self.sizes[0]
        for l in range(1, L + 1):
            self.w_off[l] = offset = aligned(offset, line)
            offset += self.sizes[l] * self.sizes[l - 1]
            self.b_off[l] = offset = aligned(offset, line)
            offset += self.sizes[l]
            self.u_off[l] = units = aligned(units, line)
            units += self.sizes[l]
            self.act[l] = act_codes[l - 1]
        self.n_params = aligned(offset, line)
        units = aligned(units, 2 * line)
        units += line  # an odd number of lines
        self.line = line
        cdef const Py_ssize_t[::1] s = self.sizes, w = self.w_off, b = self.b_off, u = self.u_off
        cdef const int[::1] a = self.act
        self.c.n_layers = L
        self.c.units = units
        self.c.sizes = &s[0]
        self.c.w_off = &w[0]
        self.c.b_off = &b[0]
        self.c.u_off = &u[0]
        self.c.act = &a[0]
        self.c.cost = cost_code

    @property
    def units(self):
        return self.c.units


cdef inline void split(Py_ssize_t n, int tid, int nt, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """[lo, hi): thread tid's share of range(n) in a static, contiguous split."""
    cdef Py_ssize_t chunk = n // nt, rest = n % nt
    lo[0] = tid * chunk + (tid if tid < rest else rest)
    hi[0] = lo[0] + chunk + (1 if tid < rest else 0)


cdef inline void dot_rows(const real* A, Py_ssize_t lda, Py_ssize_t m, const real* W,
                          Py_ssize_t ldw, Py_ssize_t n, Py_ssize_t K, real* C,
                          Py_ssize_t ldc) noexcept nogil:
    if real is float:
        bp_dot_f(A, lda, m, W, ldw, n, K, C, ldc)
    else:
        bp_dot_d(A, lda, m, W, ldw, n, K, C, ldc)


cdef inline void bcast_rows(Py_ssize_t R, Py_ssize_t N, Py_ssize_t S, const real* a,
                            Py_ssize_t ars, Py_ssize_t ass, const real* B, Py_ssize_t ldb,
                            real* C, Py_ssize_t ldc) noexcept nogil:
    if real is float:
        bp_bcast_f(R, N, S, a, ars, ass, B, ldb, C, ldc)
    else:
        bp_bcast_d(R, N, S, a, ars, ass, B, ldb, C, ldc)


cdef void forward_block(const LayoutC* net, const real* params, const real* x, Py_ssize_t ldx,
                        Py_ssize_t rows, real* Z, real* A) noexcept nogil:
    """z^l = W^l a^{l-1} + b^l and a^l = sigma(z^l), l = 1..L, for a block of examples.

    Row i of x (stride ldx) is a^0 of example i; its z^l and a^l go to row i of
    Z and A (stride ``units``) at ``u_off[l]``.  Z^l = A^{l-1} (W^l)^T is one
    register-tiled product per layer.
    """
    cdef Py_ssize_t l, i, j, n_in, n_out, ld = net.units
    cdef const real* a_in = x
    cdef Py_ssize_t ld_in = ldx
    cdef const real* b
    cdef real* z
    for l in range(1, net.n_layers + 1):
        n_in = net.sizes[l - 1]
        n_out = net.sizes[l]
        b = params + net.b_off[l]
        dot_rows(a_in, ld_in, rows, params + net.w_off[l], n_in, n_out, n_in,
                 Z + net.u_off[l], ld)
        for i in range(rows):
            z = Z + i * ld + net.u_off[l]
            for j in range(n_out):
                z[j] += b[j]
            activate(net.act[l], z, A + i * ld + net.u_off[l], n_out)
        a_in = A + net.u_off[l]
        ld_in = ld


cdef inline Py_ssize_t example_at(const Data* data, Py_ssize_t position) noexcept nogil:
    """Index in X and Y of the example visited at ``position`` of the epoch."""
    return position if data.order == NULL else data.order[position]


cdef void backward_block(const LayoutC* net, const real* params, const Data* data,
                         Py_ssize_t first, Py_ssize_t rows, const real* Z, const real* A,
                         real* D) noexcept nogil:
    """delta^L from the cost, then delta^{l-1} = (W^l)^T delta^l (.) sigma'(z^{l-1}).

    Row i of the block is the example at position ``first + i``.  As rows of D:
    D^{l-1} = D^l W^l, a register-tiled product per layer.
    """
    cdef Py_ssize_t L = net.n_layers, l, i, j, x, ld = net.units, n_out = net.sizes[L]
    cdef const real* Y = <const real*>data.Y
    cdef const real* weights = <const real*>data.weights
    cdef real* d
    cdef real w
    for i in range(rows):
        x = example_at(data, first + i)
        d = D + i * ld + net.u_off[L]
        output_delta(net.cost, net.act[L], Z + i * ld + net.u_off[L], A + i * ld + net.u_off[L],
                     Y + x * n_out, d, n_out)
        if weights != NULL:
            # A weighted cost sum_x w_x C_x has the gradient sum_x w_x dC_x/dtheta.  Every
            # delta^l of example x is linear in its delta^L (delta^l = (W^(l+1))^T
            # delta^(l+1) (.) sigma'(z^l), sigma' not depending on delta), and its
            # gradients are delta^l_x and delta^l_x (a^(l-1)_x)^T: scaling delta^L_x by
            # w_x here scales all of them, so the sums of phase 2 are the weighted sums.
            w = weights[x]
            for j in range(n_out):
                d[j] *= w
    for l in range(L, 1, -1):
        bcast_rows(rows, net.sizes[l - 1], net.sizes[l], D + net.u_off[l], ld, 1,
                   params + net.w_off[l], net.sizes[l - 1], D + net.u_off[l - 1], ld)
        for i in range(rows):
            times_derivative(net.act[l - 1], Z + i * ld + net.u_off[l - 1],
                             A + i * ld + net.u_off[l - 1], D + i * ld + net.u_off[l - 1],
                             net.sizes[l - 1])


cdef inline void bias_sums(const LayoutC* net, const real* D, real* grads, Py_ssize_t m,
                           Py_ssize_t l, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Rows j0..j1 of m dC/db^l = sum_i delta^l_i, summed over i in order."""
    cdef Py_ssize_t ld = net.units, i, j
    cdef real gb
    for j in range(j0, j1):
        gb = 0
        for i in range(m):
            gb += D[i * ld + net.u_off[l] + j]
        grads[net.b_off[l] + j] = gb


cdef void gradient_sums(const LayoutC* net, const real* A, const real* D, real* grads,
                        Py_ssize_t m, Py_ssize_t l, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Rows j0..j1 of m dC/dW^l = sum_i delta^l_i (a^{l-1}_i)^T and of m dC/db^l = sum_i delta^l_i.

    As a product: G[j, k] = sum_i D[i, j] A[i, k], summed over i in order.  These
    sums are what ``gradient`` returns; an epoch's streaming pass (``update_rows``)
    scales them by 1/m inside the optimizer step, and ``gradient_step`` fuses the
    sums of W^l with that step instead.
    """
    cdef Py_ssize_t n_in = net.sizes[l - 1], ld = net.units
    if j1 <= j0:
        return
    bcast_rows(j1 - j0, n_in, m, D + net.u_off[l] + j0, 1, ld, A + net.u_off[l - 1], ld,
               grads + net.w_off[l] + j0 * n_in, n_in)
    bias_sums(net, D, grads, m, l, j0, j1)


cdef inline void opt_region(const bp_hyper* hyper, const Update* upd, real* params,
                            Py_ssize_t offset, double lr_sum, double scale, long long t,
                            bint decay, bp_opt_f* uf, bp_opt_d* ud) noexcept nogil:
    """The step constants of step t for the parameters from ``offset`` on (_optim.h)."""
    cdef real* s0 = NULL
    cdef real* s1 = NULL
    cdef int buffers = bp_rule_buffers(hyper)
    if buffers >= 1:
        s0 = <real*>upd.state + offset
    if buffers >= 2:
        s1 = <real*>upd.state + upd.n_params + offset
    if real is float:
        bp_opt_init_f(uf, hyper, lr_sum, scale, t, decay, params + offset, s0, s1)
    else:
        bp_opt_init_d(ud, hyper, lr_sum, scale, t, decay, params + offset, s0, s1)


cdef inline void opt_update(bp_opt_f* uf, bp_opt_d* ud, const real* g, Py_ssize_t n) noexcept nogil:
    """One optimizer step of the n parameters of a region from their gradient sums g."""
    if real is float:
        bp_opt_update_f(uf, g, n)
    else:
        bp_opt_update_d(ud, g, n)


cdef void update_rows(const LayoutC* net, real* params, const real* grads, const Update* upd,
                      double lr_sum, double scale, long long t, Py_ssize_t l, Py_ssize_t j0,
                      Py_ssize_t j1) noexcept nogil:
    """Optimizer step t of rows j0..j1 of W^l (with weight decay) and of b^l (without),
    from the gradient sums in ``grads``: a streaming pass over the rows."""
    cdef Py_ssize_t n_in = net.sizes[l - 1]
    cdef Py_ssize_t w = net.w_off[l] + j0 * n_in, b = net.b_off[l] + j0
    cdef bp_opt_f uf
    cdef bp_opt_d ud
    if j1 <= j0:
        return
    opt_region(upd.hyper, upd, params, w, lr_sum, scale, t, True, &uf, &ud)
    opt_update(&uf, &ud, grads + w, (j1 - j0) * n_in)
    opt_region(upd.hyper, upd, params, b, lr_sum, scale, t, False, &uf, &ud)
    opt_update(&uf, &ud, grads + b, j1 - j0)


cdef void gradient_step(const LayoutC* net, const real* A, const real* D, real* grads,
                        real* params, const Update* upd, double lr_sum, double scale,
                        long long t, Py_ssize_t m, Py_ssize_t l, Py_ssize_t j0,
                        Py_ssize_t j1) noexcept nogil:
    """Rows j0..j1 of W^l and b^l: the gradient sums of ``gradient_sums`` and optimizer
    step t (weight decay on W only), the step of W fused into the end of its sums, so
    that each weight is read and written once (bp_bcast_sgd_*)."""
    cdef Py_ssize_t n_in = net.sizes[l - 1], ld = net.units
    cdef Py_ssize_t w = net.w_off[l] + j0 * n_in, b = net.b_off[l] + j0
    cdef bp_opt_f uf
    cdef bp_opt_d ud
    if j1 <= j0:
        return
    opt_region(upd.hyper, upd, params, w, lr_sum, scale, t, True, &uf, &ud)
    if real is float:
        bp_bcast_sgd_f(j1 - j0, n_in, m, D + net.u_off[l] + j0, 1, ld, A + net.u_off[l - 1],
                       ld, grads + w, n_in, &uf)
    else:
        bp_bcast_sgd_d(j1 - j0, n_in, m, D + net.u_off[l] + j0, 1, ld, A + net.u_off[l - 1],
                       ld, grads + w, n_in, &ud)
    bias_sums(net, D, grads, m, l, j0, j1)
    opt_region(upd.hyper, upd, params, b, lr_sum, scale, t, False, &uf, &ud)
    opt_update(&uf, &ud, grads + b, j1 - j0)


cdef void step_rows(const LayoutC* net, const real* A, const real* D, real* grads,
                    real* params, Update* upd, Py_ssize_t m, Py_ssize_t batch,
                    Py_ssize_t l, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Phase 2 of mini-batch ``batch`` (0-based in the call) for rows j0..j1 of layer l:
    the gradient sums, then the optimizer's step with g = (1/m) sum.

    The step is fused into the gradient sums when a mini-batch is summed in one
    block of _gemm.h (m <= BP_BC_SC: each weight read and written once); with
    several blocks a separate streaming pass over the weights was faster (their
    sums are read back from memory either way; docs/performance.md).  The choice
    depends on m alone, so results stay independent of the thread count.
    """
    cdef long long t = upd.hyper.t + batch + 1
    cdef double lr_sum = upd.hyper.lr / m, scale = 1.0 / m
    if l == 1 and j0 == 0:  # one chunk per mini-batch: its thread counts the step
        upd.steps = batch + 1
    if m <= BP_BC_SC:
        gradient_step(net, A, D, grads, params, upd, lr_sum, scale, t, m, l, j0, j1)
    else:
        gradient_sums(net, A, D, grads, m, l, j0, j1)
        update_rows(net, params, grads, upd, lr_sum, scale, t, l, j0, j1)


cdef inline Py_ssize_t row_chunk(Py_ssize_t rows, int nt) noexcept nogil:
    """Rows of W per chunk of phase 2: about four chunks per thread, a multiple of 4
    rows and at least 16 (one chunk per layer on one thread)."""
    cdef Py_ssize_t chunk = (rows + 4 * nt - 1) // (4 * nt)
    if nt == 1:
        return rows if rows > 0 else 1
    return max(16, (chunk + 3) // 4 * 4)


cdef inline bint take_rows(const LayoutC* net, Data* data, int nt, Py_ssize_t* l,
                           Py_ssize_t* j0, Py_ssize_t* j1) noexcept nogil:
    """The next chunk of phase 2, rows j0..j1 of W^l (layers in order); False when none is left."""
    cdef Py_ssize_t chunk = bp_take(&data.rows_taken), size, per, count
    l[0] = 1
    while l[0] <= net.n_layers:
        size = net.sizes[l[0]]
        per = row_chunk(size, nt)
        count = (size + per - 1) // per
        if chunk < count:
            j0[0] = chunk * per
            j1[0] = min(size, j0[0] + per)
            return True
        chunk -= count
        l[0] += 1
    return False


#: How often a training epoch checks for Ctrl-C and other signals.
cdef double POLL_SECONDS = 0.05


cdef int raise_pending() except -1:
    """Make the caller propagate the exception a signal handler left pending."""
    return -1


cdef void run_minibatches(const LayoutC* net, real* params, real* grads, Data* data,
                          Update* upd) noexcept nogil:
    """What each thread of the team runs: all mini-batches of one epoch (or one gradient).

    Every ``POLL_SECONDS`` thread 0 takes the GIL during phase 2 to run
    pending signal handlers; if one raised (Ctrl-C), every thread stops after
    that mini-batch's step, which the barrier that ends it has completed.
    """
    cdef int tid = bp_thread_num(), nt = bp_team_size()
    cdef Py_ssize_t start, m, i, i0, i1, j0, j1, l, row
    cdef Py_ssize_t L = net.n_layers, n_in = net.sizes[0], n_out = net.sizes[L]
    cdef Py_ssize_t ld = net.units
    cdef const real* X = <const real*>data.X
    cdef const real* Y = <const real*>data.Y
    cdef real* Z = <real*>data.Z
    cdef real* A = <real*>data.A
    cdef real* D = <real*>data.D
    start = 0
    while start < data.n:
        m = min(data.batch_size, data.n - start)
        # 1. per example, this thread's rows i0..i1 of the mini-batch
        split(m, tid, nt, &i0, &i1)
        if tid == 0:
            data.rows_taken = 0  # phase 2 of the mini-batch before ended at the barrier
        for i in range(i0, i1):  # gather a^0 into the workspace
            memcpy(A + i * ld, X + example_at(data, start + i) * n_in, n_in * sizeof(real))
        if i1 > i0:
            row = i0 * ld
            forward_block(net, <const real*>params, A + row, ld, i1 - i0, Z + row, A + row)
            if data.costs != NULL:
                for i in range(i0, i1):
                    data.costs[start + i] = example_cost(
                        net.cost, Z + i * ld + net.u_off[L], A + i * ld + net.u_off[L],
                        Y + example_at(data, start + i) * n_out, n_out)
            backward_block(net, <const real*>params, data, start + i0, i1 - i0,
                           Z + row, A + row, D + row)
        bp_barrier()
        # 2. per row of W: gradient and optimizer step
        if tid == 0 and bp_seconds() >= data.next_poll:
            with gil:
                data.interrupted = check_signals() != 0
            data.next_poll = bp_seconds() + POLL_SECONDS
        while take_rows(net, data, nt, &l, &j0, &j1):
            if upd.hyper == NULL:
                gradient_sums(net, A, D, grads, m, l, j0, j1)
            else:
                step_rows(net, A, D, grads, params, upd, m, start // data.batch_size, l, j0, j1)
        bp_barrier()
        if data.interrupted:
            break
        start += m


cdef void forward_rows(const LayoutC* net, const real* params, const real* X, const real* Y,
                       real* out, real* Z, real* A, Py_ssize_t chunk, double* costs,
                       Py_ssize_t n) noexcept nogil:
    """Outputs a^L (and costs when Y is given) of n examples.

    Each thread takes its share of the rows in blocks of ``chunk``, with its
    own ``chunk`` scratch rows of Z and A.
    """
    cdef int tid = bp_thread_num(), nt = bp_team_size()
    cdef Py_ssize_t i, i0, i1, b0, rows, k, L = net.n_layers, ld = net.units
    cdef Py_ssize_t n_in = net.sizes[0], n_out = net.sizes[L], last = net.u_off[L]
    cdef real* z = Z + tid * chunk * ld
    cdef real* a = A + tid * chunk * ld
    split(n, tid, nt, &i0, &i1)
    b0 = i0
    while b0 < i1:
        rows = min(chunk, i1 - b0)
        forward_block(net, params, X + b0 * n_in, n_in, rows, z, a)
        for i in range(rows):
            for k in range(n_out):
                out[(b0 + i) * n_out + k] = a[i * ld + last + k]
            if Y != NULL:
                costs[b0 + i] = example_cost(net.cost, z + i * ld + last, a + i * ld + last,
                                             Y + (b0 + i) * n_out, n_out)
        b0 += rows


def _check_params(Layout layout, Py_ssize_t size, str name):
    if size != layout.n_params:
        raise ValueError(f"{name} has {size} entries, the layout needs {layout.n_params}")


cdef class Hyper:
    """An optimizer's rule, hyperparameters and step count, as the kernels read them.

    ``rule`` is a :class:`Rule` code; ``t`` is the number of steps taken so far,
    advanced by ``train_epoch`` and ``apply_update``.  Built by ``bpcore.optim``;
    the kernels take the values as they are (the optimizer checks them).
    """
    cdef public int rule
    cdef public double lr, momentum, beta1, beta2, eps, weight_decay
    cdef public bint nesterov, decoupled
    cdef public long long t

    def __init__(self, int rule, double lr, double momentum=0.0, bint nesterov=False,
                 double beta1=0.9, double beta2=0.999, double eps=1e-8,
                 double weight_decay=0.0, bint decoupled=False, long long t=0):
        if rule != SGD and rule != SGD_VELOCITY and rule != ADAM:
            raise ValueError(f"rule must be a Rule code, got {rule}")
        if t < 0:
            raise ValueError(f"t must be >= 0, got {t}")
        self.rule, self.lr, self.momentum, self.nesterov = rule, lr, momentum, nesterov
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay, self.decoupled, self.t = weight_decay, decoupled, t

    @property
    def buffers(self):
        """How many state buffers of n_params the rule needs (0, 1 or 2)."""
        cdef bp_hyper h
        self.fill(&h)
        return bp_rule_buffers(&h)

    cdef void fill(self, bp_hyper* h) noexcept:
        h.rule, h.nesterov, h.decoupled = self.rule, self.nesterov, self.decoupled
        h.lr, h.momentum, h.weight_decay = self.lr, self.momentum, self.weight_decay
        h.beta1, h.beta2, h.eps, h.t = self.beta1, self.beta2, self.eps, self.t


cdef int check_state(Layout layout, Hyper hyper, const void* state, Py_ssize_t rows,
                     Py_ssize_t cols, Update* upd) except -1:
    """upd for this optimizer and state (rows of n_params), or ValueError."""
    cdef int need = hyper.buffers
    if need > 0 and (state == NULL or rows < need or cols != layout.n_params):
        raise ValueError(f"state must have {need} rows of {layout.n_params} entries for this "
                         f"rule, got {'None' if state == NULL else (rows, cols)}")
    upd.state = <void*>state if need > 0 else NULL
    upd.n_params = layout.n_params
    upd.steps = 0
    return 0


cdef int fill_data(Data* data, Layout layout, const real[:, ::1] X, const real[:, ::1] Y,
                   const Py_ssize_t[::1] order, const real[::1] sample_weight,
                   Py_ssize_t batch_size, real[:, ::1] Z, real[:, ::1] A, real[:, ::1] D,
                   double[::1] costs, int num_threads) except -1:
    """Check what would corrupt memory and fill data; 1 if there are no examples."""
    cdef LayoutC* net = &layout.c
    cdef Py_ssize_t n = X.shape[0], k
    if X.shape[1] != net.sizes[0] or Y.shape[0] != n or Y.shape[1] != net.sizes[net.n_layers]:
        raise ValueError("X and Y do not match the layout")
    if order is not None:
        if order.shape[0] != n:
            raise ValueError("order must have one entry per example")
        for k in range(n):  # an index out of range would read past X and Y
            if order[k] < 0 or order[k] >= n:
                raise ValueError(f"order[{k}] = {order[k]} is not an example index (0..{n - 1})")
    if sample_weight is not None and sample_weight.shape[0] != n:
        raise ValueError("sample_weight must have one entry per example")
    if batch_size < 1 or num_threads < 1:
        raise ValueError("batch_size and num_threads must be >= 1")
    cdef Py_ssize_t rows = min(batch_size, n)
    if (Z.shape[0] < rows or A.shape[0] < rows or D.shape[0] < rows or Z.shape[1] != net.units
            or A.shape[1] != net.units or D.shape[1] != net.units):
        raise ValueError("workspaces need min(batch_size, n) rows of layout.units")
    if costs is not None and costs.shape[0] != n:
        raise ValueError("costs must have one entry per example")
    if n == 0:
        return 1
    data.X = &X[0, 0]
    data.Y = &Y[0, 0]
    data.weights = NULL if sample_weight is None else &sample_weight[0]
    data.order = NULL if order is None else &order[0]
    data.n = n
    data.batch_size = batch_size
    data.Z = &Z[0, 0]
    data.A = &A[0, 0]
    data.D = &D[0, 0]
    data.costs = NULL if costs is None else &costs[0]
    data.next_poll = bp_seconds() + POLL_SECONDS
    data.interrupted = False
    data.rows_taken = 0
    return 0


def train_epoch(Layout layout, real[::1] params, real[::1] grads, real[:, ::1] state,
                Hyper hyper, const real[:, ::1] X, const real[:, ::1] Y,
                const Py_ssize_t[::1] order, const real[::1] sample_weight,
                Py_ssize_t batch_size, real[:, ::1] Z, real[:, ::1] A, real[:, ::1] D,
                double[::1] costs, int num_threads):
    """One epoch of mini-batch training in place, one optimizer step per mini-batch.

    Visits X[order[0]], X[order[1]], ... (order None: 0, 1, 2, ...) in mini-batches
    of ``batch_size`` (the last one may be smaller); after each mini-batch of m
    examples every parameter takes one step of ``hyper``'s rule (_optim.h) with
    g = (1/m) sum_x w_x dC_x/dtheta, w_x = ``sample_weight[x]`` (None: 1; fit passes
    w_x / mean w), and ``hyper.t`` advances by one per step.  ``state`` holds the
    rule's buffers (``hyper.buffers`` rows of n_params; None when it needs none),
    ``grads`` is scratch, ``costs[i]`` (or None) receives the cost of the example at
    position i, computed with the parameters before its step (unweighted).  A signal
    handler that raises (Ctrl-C: KeyboardInterrupt) stops the epoch within ~50 ms,
    after a completed step (``hyper.t`` counts it), and its exception propagates.
    The caller checks the arguments; this re-checks only what would corrupt memory.
    """
    cdef LayoutC* net = &layout.c
    _check_params(layout, params.shape[0], "params")
    _check_params(layout, grads.shape[0], "grads")
    cdef Update upd
    check_state(layout, hyper, NULL if state is None else &state[0, 0],
                0 if state is None else state.shape[0], 0 if state is None else state.shape[1],
                &upd)
    cdef Data data
    if fill_data(&data, layout, X, Y, order, sample_weight, batch_size, Z, A, D, costs,
                 num_threads):
        return
    cdef bp_hyper h
    hyper.fill(&h)
    upd.hyper = &h
    cdef real* p = &params[0]
    cdef real* g = &grads[0]
    with nogil, parallel(num_threads=num_threads):
        run_minibatches(net, p, g, &data, &upd)
    hyper.t += upd.steps
    if data.interrupted:
        raise_pending()


def gradient(Layout layout, const real[::1] params, real[::1] grads, const real[:, ::1] X,
             const real[:, ::1] Y, const real[::1] sample_weight, real[:, ::1] Z,
             real[:, ::1] A, real[:, ::1] D, int num_threads, double[::1] costs=None):
    """grads <- sum over the rows x of X of w_x dC_x/dtheta (a sum, not a mean; no update).

    w_x = ``sample_weight[x]`` (None: 1).  The workspaces need X.shape[0] rows.
    ``grads`` has the layout of ``params`` (its alignment gaps are left untouched).
    ``costs[i]`` (or None) receives the cost C_x of row i (unweighted): data-parallel
    training reports them as ``train_epoch`` does.
    """
    cdef LayoutC* net = &layout.c
    _check_params(layout, params.shape[0], "params")
    _check_params(layout, grads.shape[0], "grads")
    cdef Data data
    cdef Py_ssize_t n = X.shape[0]
    cdef const Py_ssize_t[::1] no_order = None
    if fill_data(&data, layout, X, Y, no_order, sample_weight, max(n, 1), Z, A, D, costs,
                 num_threads):
        return
    cdef Update upd
    upd.hyper = NULL
    upd.state = NULL
    cdef real* p = <real*>&params[0]  # phase 2 without an optimizer never writes it
    cdef real* g = &grads[0]
    with nogil, parallel(num_threads=num_threads):
        run_minibatches(net, p, g, &data, &upd)
    if data.interrupted:
        raise_pending()


cdef void apply_rows(const LayoutC* net, real* params, const real* grads, const Update* upd,
                     double lr_sum, double scale, long long t) noexcept nogil:
    """Each thread's share of every region (W^l, b^l): one optimizer step from the sums.

    A region is split at multiples of a cache line, so that which parameters are
    stepped in whole vectors and which one by one (a region's last few) never
    depends on the thread count.
    """
    cdef int tid = bp_thread_num(), nt = bp_team_size(), decay
    cdef Py_ssize_t l, n, off, lo, hi, line = 64 // sizeof(real)
    cdef bp_opt_f uf
    cdef bp_opt_d ud
    for l in range(1, net.n_layers + 1):
        for decay in range(2):
            if decay:
                off, n = net.w_off[l], net.sizes[l] * net.sizes[l - 1]
            else:
                off, n = net.b_off[l], net.sizes[l]
            split((n + line - 1) // line, tid, nt, &lo, &hi)
            lo, hi = lo * line, min(hi * line, n)
            if hi > lo:
                opt_region(upd.hyper, upd, params, off + lo, lr_sum, scale, t, decay, &uf, &ud)
                opt_update(&uf, &ud, grads + off + lo, hi - lo)


def apply_update(Layout layout, real[::1] params, const real[::1] grads, real[:, ::1] state,
                 Hyper hyper, double scale, int num_threads):
    """One optimizer step of every parameter from a gradient sum: g = scale * grads.

    The same step as one mini-batch of ``train_epoch`` takes (scale = 1/m; the
    velocity form of SGD multiplies the sums by lr * scale); ``hyper.t`` advances
    by one.
    """
    cdef LayoutC* net = &layout.c
    _check_params(layout, params.shape[0], "params")
    _check_params(layout, grads.shape[0], "grads")
    if num_threads < 1:
        raise ValueError("num_threads must be >= 1")
    cdef Update upd
    check_state(layout, hyper, NULL if state is None else &state[0, 0],
                0 if state is None else state.shape[0], 0 if state is None else state.shape[1],
                &upd)
    cdef bp_hyper h
    hyper.fill(&h)
    upd.hyper = &h
    cdef real* p = &params[0]
    cdef const real* g = &grads[0]
    cdef double lr_sum = h.lr * scale
    cdef long long t = h.t + 1
    with nogil, parallel(num_threads=num_threads):
        apply_rows(net, p, g, &upd, lr_sum, scale, t)
    hyper.t = t


def forward(Layout layout, const real[::1] params, const real[:, ::1] X, real[:, ::1] out,
            real[:, ::1] Z, real[:, ::1] A, const real[:, ::1] Y, double[::1] costs,
            int num_threads):
    """out[i] = a^L(X[i]); with Y given, costs[i] = C_x of example i.

    Z and A are scratch: each thread uses Z.shape[0] // num_threads rows of
    ``layout.units``.
    """
    cdef LayoutC* net = &layout.c
    cdef Py_ssize_t n = X.shape[0]
    _check_params(layout, params.shape[0], "params")
    if X.shape[1] != net.sizes[0] or out.shape[0] != n or out.shape[1] != net.sizes[net.n_layers]:
        raise ValueError("X and out do not match the layout")
    if num_threads < 1 or Z.shape[0] < num_threads or A.shape[0] != Z.shape[0] \
            or Z.shape[1] != net.units or A.shape[1] != net.units:
        raise ValueError("scratch needs at least num_threads rows of layout.units")
    cdef Py_ssize_t chunk = Z.shape[0] // num_threads
    if (Y is None) != (costs is None):
        raise ValueError("Y and costs go together")
    if Y is not None and (Y.shape[0] != n or Y.shape[1] != net.sizes[net.n_layers]
                          or costs.shape[0] != n):
        raise ValueError("Y and costs do not match X")
    if n == 0:
        return
    cdef const real* p = &params[0]
    cdef const real* x = &X[0, 0]
    cdef const real* y = NULL if Y is None else &Y[0, 0]
    cdef double* c = NULL if costs is None else &costs[0]
    cdef real* o = &out[0, 0]
    cdef real* z = &Z[0, 0]
    cdef real* a = &A[0, 0]
    with nogil, parallel(num_threads=num_threads):
        forward_rows(net, p, x, y, o, z, a, chunk, c, n)


def max_threads():
    """omp_get_max_threads() of the calling thread (1 without OpenMP)."""
    return bp_max_threads()


def cpu_level():
    """4: x86-64-v4 (AVX-512), 3: x86-64-v3 (AVX2 + FMA), 1: older x86-64, 0: other CPUs."""
    return bp_cpu_level()


def compiled_info():
    """How this extension was compiled: OpenMP, flags, compiler."""
    return {
        "openmp": bool(bp_openmp_enabled()),
        "openmp_version": bp_openmp_version(),
        "openmp_reason": bp_openmp_reason.decode(),
        "compile_args": bp_compile_args.decode(),
        "compiler": bp_compiler.decode(),
        "isa": bp_isa.decode(),
    }
