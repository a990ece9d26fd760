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
    costs two (docs/performance.md has the measured effect).  The gaps are never
    read by the kernels.

    ``units``, the workspace row stride, is moreover an odd number of lines.
    The gradient and delta products walk down columns of the workspace (one
    row per example); with a stride of a multiple of 4 KiB, as 10,240 floats
    are, every row's line falls in the same L1 set, and the 128 rows of a block
    evict each other.  An odd stride spreads 64 consecutive rows over all 64
    sets.

Parallel scheme (one OpenMP region per epoch, no barrier per mini-batch)
    The epoch is cut into pieces (``Schedule``; docs/design.md) in phases; a piece
    starts once every piece of the phase before it is complete.  One thread runs
    each mini-batch as one block of examples (gather, forward pass, cost, delta^L
    .. delta^1) and then each layer's rows of W (rows j of dC/dW^l = sum_i
    delta^l_ij a^{l-1}_i / m, summed over the examples in index order, then their
    optimizer step).  A team runs it layer by layer: the gather, z^l (l = 1..L),
    the output error, delta^(l-1) (l = L..2) and the rows of W, each layer cut into
    two pieces of units per thread, the same units of every layer for the same
    thread in every phase (its *home* pieces: the rows of W it steps are those it
    multiplies, in its own cache).  A thread claims its home pieces first, then
    those of a member that has not claimed them yet (slowed down or kept off its
    core by the host);
    one that holds the others up far longer than its piece should take is excluded
    for a while, and a thread left alone claims runs of pieces at once, computed
    as one piece (``extend_run``; _sched.h).  Every number is computed by exactly
    one piece, in an order that does not depend on which thread or how many, nor
    on how rows or units are blocked (see _gemm.h): trained weights are bitwise the
    same for any thread count and either cut (tests/test_cuts.py).
"""
from cython.parallel cimport parallel

from libc.math cimport sqrt
from libc.string cimport memcpy

from bpcore._math cimport real, activate, times_derivative, output_delta, example_cost

import numpy as np

cdef extern from "_omp.h" nogil:
    int bp_openmp_enabled()
    int bp_openmp_version()
    int bp_thread_num()
    int bp_team_size()
    int bp_max_threads()
    double bp_seconds()
    void bp_barrier()

cdef extern from "_sched.h" nogil:
    ctypedef long long bp_ns
    ctypedef struct bp_member:
        long long ticket
        bp_ns since
        long long work
        bp_ns excluded_until
        double ns_per_work[2]
        bp_ns released
        long long pieces
        long long runs
        long long claimed
    ctypedef struct bp_team:
        long long next
        long long completed
        long long stopping
        long long stop_at
        long long ready
        long long exclusions
        bp_member* member
    enum: BP_MAX_TEAM
    enum: BP_TEAM_MEMORY
    long BP_NAP_NS
    long long BP_LOAD(long long* p)
    long long BP_LOAD_SC(long long* p)
    void BP_STORE(long long* p, long long v)
    void BP_STORE_SC(long long* p, long long v)
    long long BP_FETCH_ADD(long long* p, long long v)
    bint BP_CAS(long long* p, long long expected, long long desired)
    long long BP_ADD_RELEASE(long long* p, long long v)
    void BP_PAUSE()
    bp_ns bp_now()
    long long bp_claimed(long long w, long long first)
    long long bp_claim_word(long long first, long long claimed)
    enum: BP_CLAIM_BITS
    long long BP_CLAIM_MASK
    void bp_nap(long ns)
    void bp_sleep(bp_team* team, bp_ns ns)
    void bp_wake_all(bp_team* team)
    bp_ns BP_FURTHER_NOTICE
    ctypedef struct bp_cpuset:
        pass
    void bp_pin_plan(bp_team* team, int nt, int want)
    bint bp_pin(const bp_team* team, int tid, bp_cpuset* saved)
    void bp_unpin(const bp_cpuset* saved)
    void bp_team_init(bp_team* team, int nt, const double* memory)
    void bp_team_save(const bp_team* team, int nt, double* memory)
    void bp_learn_speed(bp_member* me, int kind, bp_ns took, long long work)
    bp_ns bp_alone(const bp_team* team, int nt, int me, bp_ns now)
    int bp_exclude_slow(bp_team* team, int nt, int waiter, int kind, long long need,
                        bp_ns wait_start, bp_ns now)
    void bp_end_exclusions(bp_team* team, int nt, int waiter, bp_ns now, bp_ns waited)
    bp_ns bp_exclusion_length(bp_ns waited, bp_ns now, bp_ns last_end, bp_ns last_out)

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
    enum: BP_BC_NR
    enum: BP_Wf
    enum: BP_Wd
    bint bp_pk_fuses_step_f(Py_ssize_t S, Py_ssize_t N)
    bint bp_pk_fuses_step_d(Py_ssize_t S, Py_ssize_t N)
    const char* bp_isa
    int bp_cpu_level()
    Py_ssize_t bp_l2_bytes
    void bp_set_l2_bytes(long bytes)
    long bp_reported_l2_bytes()
    void bp_prefetch_l2(const void* p, Py_ssize_t bytes)
    bint bp_dot_packs_f(Py_ssize_t m, Py_ssize_t K, Py_ssize_t n)
    bint bp_dot_packs_d(Py_ssize_t m, Py_ssize_t K, Py_ssize_t n)
    bint bp_delta_packs_f(Py_ssize_t R, Py_ssize_t S, Py_ssize_t N)
    bint bp_delta_packs_d(Py_ssize_t R, Py_ssize_t S, Py_ssize_t N)
    void bp_forward_f(const float* A, Py_ssize_t lda, Py_ssize_t m, const float* W,
                      Py_ssize_t ldw, Py_ssize_t n, Py_ssize_t K, float* C, Py_ssize_t ldc,
                      bint packed)
    void bp_forward_d(const double* A, Py_ssize_t lda, Py_ssize_t m, const double* W,
                      Py_ssize_t ldw, Py_ssize_t n, Py_ssize_t K, double* C, Py_ssize_t ldc,
                      bint packed)
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
    double next_poll          # bp_seconds() after which thread 0 checks for signals
    bint interrupted          # set by thread 0 when a signal handler raised
    int slow_thread           # tests: this thread naps slow_ns before each piece (-1: none)
    long slow_ns
    long long slow_pieces     # ... only before its first slow_pieces pieces (0: every one)
    int cut_for               # tests: cut the epoch for this many threads (0: the team)
    long long max_run         # tests: at most this many pieces per run (0: no limit)
    int layerwise             # tests: 0/1 force the cut (Schedule); -1: by the team size
    int pin                   # 1: pin the team's threads to CPUs where _sched.h allows
    double* bias_norms        # L sums of ||dC/db^l|| over the mini-batches, or NULL (off)


cdef struct Update:
    const bp_hyper* hyper     # the optimizer; NULL: phase 2 only sums the gradient
    void* state               # its buffers, bp_rule_buffers(hyper) rows of n_params
    Py_ssize_t n_params
    Py_ssize_t steps          # optimizer steps completed in this call


#: Where the buffers given to the kernels should start (bytes): a cache line.
BUFFER_ALIGNMENT = 64
#: Values per thread in a ``team_memory`` array (speeds, exclusion end and length).
TEAM_MEMORY = BP_TEAM_MEMORY


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


cdef inline bint forward_packs(const LayoutC* net, Py_ssize_t l, Py_ssize_t m,
                               bint single) noexcept nogil:
    """Whether z^l of a mini-batch of m examples (all of them, never a thread's share)
    is summed by the packed form of the product (_gemm.h's bp_dot_packs)."""
    if single:
        return bp_dot_packs_f(m, net.sizes[l - 1], net.sizes[l])
    return bp_dot_packs_d(m, net.sizes[l - 1], net.sizes[l])


cdef inline void dot_rows(const real* A, Py_ssize_t lda, Py_ssize_t m, const real* W,
                          Py_ssize_t ldw, Py_ssize_t n, Py_ssize_t K, real* C,
                          Py_ssize_t ldc, bint packed) noexcept nogil:
    if real is float:
        bp_forward_f(A, lda, m, W, ldw, n, K, C, ldc, packed)
    else:
        bp_forward_d(A, lda, m, W, ldw, n, K, C, ldc, packed)


cdef inline void bcast_rows(Py_ssize_t R, Py_ssize_t N, Py_ssize_t S, const real* a,
                            Py_ssize_t ars, Py_ssize_t ass, const real* B, Py_ssize_t ldb,
                            real* C, Py_ssize_t ldc) noexcept nogil:
    if real is float:
        bp_bcast_f(R, N, S, a, ars, ass, B, ldb, C, ldc)
    else:
        bp_bcast_d(R, N, S, a, ars, ass, B, ldb, C, ldc)


cdef void forward_block(const LayoutC* net, const real* params, const real* x, Py_ssize_t ldx,
                        Py_ssize_t rows, real* Z, real* A, Py_ssize_t form_rows) noexcept nogil:
    """z^l = W^l a^{l-1} + b^l and a^l = sigma(z^l), l = 1..L, for a block of examples.

    Row i of x (stride ldx) is a^0 of example i; its z^l and a^l go to row i of
    Z and A (stride ``units``) at ``u_off[l]``.  Z^l = A^{l-1} (W^l)^T is one
    register-tiled product per layer, in the form chosen for ``form_rows`` examples
    (the mini-batch or the whole call the block belongs to: forward_packs).
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
                 Z + net.u_off[l], ld, forward_packs(net, l, form_rows, real is float))
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
    cdef Py_ssize_t L = net.n_layers, l, i, ld = net.units
    output_rows(net, data, first, rows, Z, A, D)
    for l in range(L, 1, -1):
        bcast_rows(rows, net.sizes[l - 1], net.sizes[l], D + net.u_off[l], ld, 1,
                   params + net.w_off[l], net.sizes[l - 1], D + net.u_off[l - 1], ld)
        for i in range(rows):
            times_derivative(net.act[l - 1], Z + i * ld + net.u_off[l - 1],
                             A + i * ld + net.u_off[l - 1], D + i * ld + net.u_off[l - 1],
                             net.sizes[l - 1])


cdef void output_rows(const LayoutC* net, const Data* data, Py_ssize_t first, Py_ssize_t rows,
                      const real* Z, const real* A, real* D) noexcept nogil:
    """delta^L of a block of examples (row i: the example at position ``first + i``),
    scaled by the example's weight."""
    cdef Py_ssize_t L = net.n_layers, i, j, x, ld = net.units, n_out = net.sizes[L]
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


cdef inline void bias_sums(const LayoutC* net, const real* D, real* grads, Py_ssize_t m,
                           Py_ssize_t l, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Rows j0..j1 of m dC/db^l = sum_i delta^l_i, summed over i in order.

    Example by example, each adding its row of delta to all the sums: contiguous,
    vectorised loads (a loop over j of sums down a column took one strided load and
    one dependent add per term); each sum is still 0 + delta_0j + delta_1j + ...
    """
    cdef Py_ssize_t ld = net.units, i, j
    cdef real* gb = grads + net.b_off[l]
    cdef const real* d
    for j in range(j0, j1):
        gb[j] = 0
    for i in range(m):
        d = D + i * ld + net.u_off[l]
        for j in range(j0, j1):
            gb[j] += d[j]


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

    The step is fused into the gradient sums (each weight read and written once)
    when a mini-batch is summed in one block of _gemm.h (m <= BP_BC_SC), or in the
    packed form's blocks (bp_pk_fuses_step: wide layers), which step the weights in
    the last block's tiles; with several blocks of the unpacked form a separate
    streaming pass over the weights was faster (their sums are read back from memory
    either way; docs/performance.md).  The choice depends on m and the layer's
    width alone, so results stay independent of the thread count.
    """
    cdef long long t = upd.hyper.t + batch + 1
    cdef double lr_sum = upd.hyper.lr / m, scale = 1.0 / m
    cdef Py_ssize_t n_in = net.sizes[l - 1]
    cdef bint packed = (bp_pk_fuses_step_f(m, n_in) if real is float
                        else bp_pk_fuses_step_d(m, n_in))
    if l == 1 and j0 == 0:  # one chunk per mini-batch: its thread counts the step
        upd.steps = batch + 1
    if m <= BP_BC_SC or packed:
        gradient_step(net, A, D, grads, params, upd, lr_sum, scale, t, m, l, j0, j1)
    else:
        gradient_sums(net, A, D, grads, m, l, j0, j1)
        update_rows(net, params, grads, upd, lr_sum, scale, t, l, j0, j1)


cdef inline Py_ssize_t row_chunk(Py_ssize_t rows, int nt) noexcept nogil:
    """Rows of W per piece of phase 2 in the cut by blocks: about four pieces per
    thread, a multiple of 4 rows and at least 16 (one piece per layer on one thread)."""
    cdef Py_ssize_t chunk = (rows + 4 * nt - 1) // (4 * nt)
    if nt == 1:
        return rows if rows > 0 else 1
    return max(16, (chunk + 3) // 4 * 4)


cdef inline Py_ssize_t example_block(Py_ssize_t m, int nt) noexcept nogil:
    """Examples per piece of phase 1 (of the gather and the output error in the
    layer-wise cut): two pieces per thread (a piece of phase 1 reads every W^l once,
    so more pieces cost more passes over the weights), a multiple of the 4-row
    tile; the whole mini-batch on one thread."""
    cdef Py_ssize_t rows = (m + 2 * nt - 1) // (2 * nt)
    if nt == 1:
        return m if m > 0 else 1
    return max(4, (rows + 3) // 4 * 4)


cdef inline Py_ssize_t unit_pieces(Py_ssize_t units, int nt,
                                   Py_ssize_t grain=16) noexcept nogil:
    """Pieces of a layer's units in a layer-wise phase: two per thread, at least
    ``grain`` units each, at least one piece.  A thread's two are its share of the
    layer in every phase; a partner that finishes its own first takes the second of a
    thread slowed down (by another process on its core) instead of waiting for it.
    The pieces of delta^l take Schedule.delta_grain: a whole column panel of the delta
    product's register tile, which computes a whole panel whatever the piece's width
    (an edge panel overlapping the one before it), so a piece one vector wide
    computed its vector BP_BC_NR times over."""
    return max(1, min(<Py_ssize_t>(2 * nt), units // grain))


cdef inline Py_ssize_t unit_bound(Py_ssize_t units, Py_ssize_t pieces, Py_ssize_t r,
                                  Py_ssize_t grain=16) noexcept nogil:
    """First unit of piece r of a layer cut into ``pieces`` (units for r = pieces):
    as even as multiples of ``grain`` allow (whole vectors of the tiles and
    activations, 16 units: a whole cache line of either dtype)."""
    if r >= pieces:
        return units
    return min(units, (r * units // pieces + grain // 2) // grain * grain)


cdef struct Schedule:
    # The pieces of an epoch in ticket order.  By blocks of examples: per
    # mini-batch, its phase-1 pieces (blocks of ``rows1`` examples, each through
    # the whole network), then its phase-2 pieces (chunks of rows of each W^l,
    # layers in order).  Layer-wise: per mini-batch, the gather (blocks of
    # examples), z^l for l = 1..L (pieces of the layer's units, all examples), the
    # output error (blocks of examples), delta^(l-1) for l = L..2 (pieces of the
    # units of layer l - 1, at least ``delta_grain`` each), then the rows of W^l in
    # the same pieces as the units of layer l (``unit_pieces``), ordered by home
    # range.  Only the last mini-batch may be smaller.
    bint layerwise
    Py_ssize_t columns        # pieces of a mini-batch's layer-wise products
    Py_ssize_t batches        # number of mini-batches
    Py_ssize_t per_batch      # tickets of a full mini-batch
    Py_ssize_t rows1          # examples per phase-1 piece of a full mini-batch
    Py_ssize_t pieces1        # phase-1 pieces of a full mini-batch
    Py_ssize_t rows1_last     # the same for the last mini-batch
    Py_ssize_t pieces1_last
    Py_ssize_t pieces2        # phase-2 pieces of any mini-batch
    Py_ssize_t delta_grain    # units per piece of delta^l at least, and their multiple
    long long total           # tickets of the epoch
    int nt                    # the team size the pieces were cut for


cdef inline Py_ssize_t delta_grain(Py_ssize_t lanes) noexcept nogil:
    """The units of one column panel of the delta product's tile (BP_BC_NR vectors of
    ``lanes``), rounded up to a multiple of 16 (unit_bound's cache lines)."""
    cdef Py_ssize_t panel = BP_BC_NR * lanes, grain = panel
    while grain % 16 != 0:
        grain += panel
    return grain


#: The least units of a piece of delta^l (and their multiple) in a layer-wise cut, by
#: dtype: this build's column panel of the delta product's tile (delta_grain).
DELTA_GRAIN = {"float32": delta_grain(BP_Wf), "float64": delta_grain(BP_Wd)}


cdef void make_schedule(const LayoutC* net, Py_ssize_t n, Py_ssize_t batch_size, int nt,
                        bint layerwise, Py_ssize_t grain, Schedule* s) noexcept nogil:
    """The pieces of an epoch (Schedule); ``grain``: Schedule.delta_grain."""
    cdef Py_ssize_t m = min(batch_size, n), last, l, per
    s.batches = (n + m - 1) // m
    last = n - (s.batches - 1) * m
    s.rows1 = example_block(m, nt)
    s.pieces1 = (m + s.rows1 - 1) // s.rows1
    s.rows1_last = example_block(last, nt)
    s.pieces1_last = (last + s.rows1_last - 1) // s.rows1_last
    s.pieces2 = 0
    s.columns = 0
    s.delta_grain = grain
    for l in range(1, net.n_layers + 1):
        if layerwise:
            per = unit_pieces(net.sizes[l], nt)
            s.pieces2 += per  # rows of W^l
            s.columns += per  # z^l
            if l < net.n_layers:
                s.columns += unit_pieces(net.sizes[l], nt, grain)  # delta^l
        else:
            per = row_chunk(net.sizes[l], nt)
            s.pieces2 += (net.sizes[l] + per - 1) // per
    s.layerwise = layerwise
    s.nt = nt
    if layerwise:
        s.per_batch = 2 * s.pieces1 + s.columns + s.pieces2
        s.total = (s.batches - 1) * s.per_batch + 2 * s.pieces1_last + s.columns + s.pieces2
    else:
        s.per_batch = s.pieces1 + s.pieces2
        s.total = (s.batches - 1) * s.per_batch + s.pieces1_last + s.pieces2


cdef enum:
    # What a piece computes (Piece.kind)
    BLOCK = 1        # examples i0..i1: gather, forward pass, cost, delta^L .. delta^1
    ROWS = 2         # rows j0.. of W^l to ..j1 of W^l1: gradient sums and step
    GATHER = 3       # examples i0..i1: a^0
    FORWARD = 4      # units j0..j1 of z^l and a^l (a^L: in OUTPUT), all examples
    OUTPUT = 5       # examples i0..i1: a^L, cost, delta^L
    DELTA = 6        # units j0..j1 of delta^(l-1) from delta^l, all examples


cdef struct Piece:
    # One piece, or a run of consecutive pieces of one phase merged into one.
    Py_ssize_t batch          # which mini-batch
    int kind                  # BLOCK, ROWS, ...
    int wait_kind             # the speed kind of the phase before
    Py_ssize_t i0, i1, l, j0, l1, j1
    long long need            # completed pieces needed first (all of the phase before)
    long long end             # the ticket after the last piece of the phase
    long long count           # tickets the piece stands for (1, or a run's length)
    long long work            # multiply-adds, for the speed estimates of _sched.h


cdef inline long long batch_start(const Schedule* s, Py_ssize_t b) noexcept nogil:
    """First ticket of mini-batch b (the end of the epoch for b = batches)."""
    if b >= s.batches:
        return s.total
    return b * s.per_batch


cdef inline Py_ssize_t batch_of(const Schedule* s, long long t) noexcept nogil:
    return min(<Py_ssize_t>(t // s.per_batch), s.batches - 1)


cdef inline bint examples_kind(int kind) noexcept nogil:
    return kind == BLOCK or kind == GATHER or kind == OUTPUT


cdef inline int speed_kind(int kind) noexcept nogil:
    """The kind of a piece's speed estimate (_sched.h): 0 for a piece of examples,
    1 for one of units or rows."""
    return 0 if examples_kind(kind) else 1


cdef inline void examples_piece(Piece* p, int kind, Py_ssize_t r, Py_ssize_t rows,
                                Py_ssize_t m, long long first, Py_ssize_t pieces) noexcept nogil:
    """p = block r of ``rows`` of the m examples, in the phase of ``pieces`` blocks
    from ticket ``first`` (after a phase of units or rows)."""
    p.kind = kind
    p.wait_kind = 1
    p.i0 = r * rows
    p.i1 = min(m, p.i0 + rows)
    p.need = first
    p.end = first + pieces


cdef inline void units_piece(Piece* p, int kind, Py_ssize_t l, Py_ssize_t size, Py_ssize_t r,
                             Py_ssize_t count, Py_ssize_t inner, Py_ssize_t m,
                             Py_ssize_t grain=16) noexcept nogil:
    """Units (or rows) of piece r of ``count`` of a layer of ``size`` of layer l, in
    multiples of ``grain`` (unit_bound), and their work: m examples times ``inner``
    multiply-adds per unit."""
    p.kind = kind
    p.l = p.l1 = l
    p.j0 = unit_bound(size, count, r, grain)
    p.j1 = unit_bound(size, count, r + 1, grain)
    p.work = (p.j1 - p.j0) * inner * m


cdef void decode(const LayoutC* net, const Schedule* s, const Data* data, long long t,
                 Piece* p) noexcept nogil:
    """The piece of ticket t."""
    cdef Py_ssize_t b = batch_of(s, t), r, m, rows1, pieces1, size, per, count, l, lo, hi
    cdef int h
    cdef long long first = batch_start(s, b), q
    cdef long long madds = 0
    cdef bint last = b == s.batches - 1
    r = t - first
    m = data.n - b * data.batch_size if last else data.batch_size
    rows1 = s.rows1_last if last else s.rows1
    pieces1 = s.pieces1_last if last else s.pieces1
    p.batch = b
    p.count = 1
    q = first
    if r < pieces1:  # BLOCK or GATHER
        examples_piece(p, GATHER if s.layerwise else BLOCK, r, rows1, m, first, pieces1)
        if s.layerwise:
            p.work = net.sizes[0] * (p.i1 - p.i0)
        else:
            for l in range(1, net.n_layers + 1):
                madds += net.sizes[l] * net.sizes[l - 1]
            p.work = 2 * madds * (p.i1 - p.i0)
        return
    r -= pieces1
    q += pieces1
    if s.layerwise:
        for l in range(1, net.n_layers + 1):  # z^l
            size = net.sizes[l]
            count = unit_pieces(size, s.nt)
            if r < count:
                units_piece(p, FORWARD, l, size, r, count, net.sizes[l - 1], m)
                p.wait_kind = 0 if l == 1 else 1
                p.need = q
                p.end = q + count
                return
            r -= count
            q += count
        if r < pieces1:
            examples_piece(p, OUTPUT, r, rows1, m, q, pieces1)
            p.work = net.sizes[net.n_layers] * (p.i1 - p.i0)
            return
        r -= pieces1
        q += pieces1
        for l in range(net.n_layers, 1, -1):  # delta^(l-1) from delta^l
            size = net.sizes[l - 1]
            count = unit_pieces(size, s.nt, s.delta_grain)
            if r < count:
                units_piece(p, DELTA, l, size, r, count, net.sizes[l], m, s.delta_grain)
                p.wait_kind = 0 if l == net.n_layers else 1
                p.need = q
                p.end = q + count
                return
            r -= count
            q += count
    p.kind = ROWS
    p.wait_kind = 1 if s.layerwise and net.n_layers > 1 else 0
    p.need = q
    p.end = batch_start(s, b + 1)
    if s.layerwise:  # ordered by home range (owner_bounds), then layer, then rows
        for h in range(s.nt):
            for l in range(1, net.n_layers + 1):
                size = net.sizes[l]
                count = unit_pieces(size, s.nt)
                lo = h * count // s.nt
                hi = (h + 1) * count // s.nt
                if r < hi - lo:
                    units_piece(p, ROWS, l, size, lo + r, count, net.sizes[l - 1], m)
                    return
                r -= hi - lo
    l = 1
    while l <= net.n_layers:
        size = net.sizes[l]
        per = row_chunk(size, s.nt)
        count = (size + per - 1) // per
        if r < count:
            p.l = p.l1 = l
            p.j0 = r * per
            p.j1 = min(size, p.j0 + per)
            p.work = (p.j1 - p.j0) * net.sizes[l - 1] * m
            return
        r -= count
        l += 1


cdef void owner_bounds(const LayoutC* net, const Schedule* s, const Piece* phase, int h,
                       long long* lo, long long* hi) noexcept nogil:
    """Home pieces of member h in the phase of ``phase`` (any piece of it): tickets
    lo..hi - 1.  A layer-wise phase of rows is ordered by home range (decode)."""
    cdef long long first = phase.need, pieces = phase.end - phase.need
    cdef Py_ssize_t l, count
    cdef int g
    if phase.kind != ROWS or not s.layerwise:
        lo[0] = first + h * pieces // s.nt
        hi[0] = first + (h + 1) * pieces // s.nt
        return
    lo[0] = first
    for g in range(h + 1):
        hi[0] = lo[0]
        for l in range(1, net.n_layers + 1):
            count = unit_pieces(net.sizes[l], s.nt)
            hi[0] += (g + 1) * count // s.nt - g * count // s.nt
        if g < h:
            lo[0] = hi[0]


cdef void extend_run(const LayoutC* net, const Schedule* s, const Data* data, long long t,
                     long long limit, double ns_per_work, bp_ns budget, Piece* p) noexcept nogil:
    """Extend piece p (of tickets t .. t + p.count - 1) by the pieces after it, up to
    ticket ``limit``, while the run is expected to take at most ``budget`` ns at
    ``ns_per_work`` (a negative ns_per_work: no limit; and, with the test hook, at
    most ``data.max_run`` pieces): consecutive blocks of examples become one block,
    consecutive units or rows of each layer one chunk per layer."""
    cdef Piece q
    cdef long long u = t + p.count
    if ns_per_work == 0:
        return  # no estimate yet: a single piece, which gives one
    while u < limit and (data.max_run == 0 or p.count < data.max_run):
        decode(net, s, data, u, &q)
        if ns_per_work > 0 and ns_per_work * <double>(p.work + q.work) > <double>budget:
            break
        if not examples_kind(p.kind) and not (
                (q.l == p.l1 and q.j0 == p.j1)
                or (q.l == p.l1 + 1 and q.j0 == 0 and p.j1 == net.sizes[p.l1])):
            break  # not the rows or units right after the run's
        if examples_kind(p.kind):
            p.i1 = q.i1
        else:
            p.l1 = q.l
            p.j1 = q.j1
        p.work += q.work
        p.count += 1
        u += 1


cdef void record_bias_norms(const LayoutC* net, const real* grads, Py_ssize_t m,
                            double* out) noexcept nogil:
    """out[l - 1] += ||sum_i delta^l_i|| / m = ||dC/db^l|| of the mini-batch, l = 1..L.

    Nielsen's measure of how fast layer l learns.  Called once per mini-batch after
    its phase 2, when ``grads`` holds every layer's bias sums (the fused and the
    streaming path both leave them there), before the next phase 2 overwrites
    them: by the first piece of the next mini-batch, or after the parallel region
    for the last one.  Summed in double, in order.
    """
    cdef Py_ssize_t l, j
    cdef double g, total
    for l in range(1, net.n_layers + 1):
        total = 0
        for j in range(net.sizes[l]):
            g = grads[net.b_off[l] + j]
            total += g * g
        out[l - 1] += sqrt(total) / m


#: How often a training epoch checks for Ctrl-C and other signals.
cdef double POLL_SECONDS = 0.05
#: How many rows ahead of the one it copies a gather asks for the next (do_piece):
#: one or two rows ahead halved the time per row of a 256-row gather from DRAM, more
#: gained less (docs/performance.md).
cdef Py_ssize_t GATHER_AHEAD = 2


cdef int raise_pending() except -1:
    """Make the caller propagate the exception a signal handler left pending."""
    return -1


cdef long long claimed_end(const LayoutC* net, const Schedule* s, const Data* data,
                           bp_team* team) noexcept nogil:
    """One past the last ticket claimed so far (each member's claim word only grows)."""
    cdef long long handed = 0, word, first, lo, hi
    cdef int h
    cdef Piece phase
    for h in range(s.nt):
        word = BP_LOAD_SC(&team.member[h].claimed)
        first = (word >> BP_CLAIM_BITS) - 1
        if first < 0 or (word & BP_CLAIM_MASK) == 0:
            continue
        decode(net, s, data, first, &phase)
        owner_bounds(net, s, &phase, h, &lo, &hi)
        handed = max(handed, lo + (word & BP_CLAIM_MASK))
    return min(handed, s.total)


cdef void poll_signals(const LayoutC* net, Data* data, const Schedule* s,
                       bp_team* team) noexcept nogil:
    """Thread 0 (the Python thread that called train), every POLL_SECONDS: run pending
    signal handlers; if one raised, stop the epoch after the mini-batch whose
    tickets have been claimed (all of it is completed first)."""
    cdef long long handed
    if bp_seconds() < data.next_poll:
        return
    with gil:
        if check_signals() != 0:
            data.interrupted = True
    data.next_poll = bp_seconds() + POLL_SECONDS
    if data.interrupted and not BP_LOAD_SC(&team.stopping):
        BP_STORE_SC(&team.stopping, 1)
        # Every ticket taken from here on sees stopping = 1 and waits for stop_at;
        # every ticket taken before is below `handed`, so in a mini-batch that ends
        # at or before stop_at: no mini-batch is left half done.
        handed = claimed_end(net, s, data, team)
        BP_STORE_SC(&team.stop_at, 0 if handed == 0 else batch_start(s, batch_of(s, handed - 1) + 1))
        if BP_LOAD_SC(&team.completed) >= team.stop_at:  # else the last piece's holder wakes them
            bp_wake_all(team)


cdef inline long long end_ticket(const Schedule* s, bp_team* team) noexcept nogil:
    """Tickets up to here are done in this epoch (-1: a stop is being decided)."""
    if not BP_LOAD(&team.stopping):
        return s.total
    return BP_LOAD(&team.stop_at)


cdef void do_piece(const LayoutC* net, real* params, real* grads, const Data* data,
                   Update* upd, const Piece* p) noexcept nogil:
    """Phase 1: examples i0..i1 of the mini-batch (gather, forward pass, cost,
    delta^L .. delta^1).  Phase 2: rows j0..j1 of W^l and b^l (gradient sums and,
    with an optimizer, its step)."""
    cdef Py_ssize_t L = net.n_layers, n_in = net.sizes[0], n_out = net.sizes[L]
    cdef Py_ssize_t ld = net.units, i, j, row, l, j0, j1, start = p.batch * data.batch_size
    cdef bint ahead
    cdef Py_ssize_t m = min(data.batch_size, data.n - start)
    cdef const real* X = <const real*>data.X
    cdef const real* Y = <const real*>data.Y
    cdef real* Z = <real*>data.Z
    cdef real* A = <real*>data.A
    cdef real* D = <real*>data.D
    cdef const real* W
    cdef const real* bias
    cdef real* z
    if p.kind == BLOCK or p.kind == GATHER:
        if data.bias_norms != NULL and p.i0 == 0 and p.batch > 0:
            # grads still holds mini-batch b - 1's bias sums: all of its phase 2 is
            # complete, and mini-batch b's phase 2 waits for this piece
            record_bias_norms(net, <const real*>grads, data.batch_size, data.bias_norms)
        # The rows of a shuffled epoch lie at random places in L3 or DRAM, where the
        # hardware prefetcher cannot follow.  When they and the parameters fit in L2
        # beside each other (N1, N2), the same rows of the next mini-batch are asked
        # for now, on their way while this one runs.  Otherwise (larger networks
        # stream W through L2 anyway, and the prefetched rows would only evict it) the
        # gather asks for the row GATHER_AHEAD after the one it copies, so that a few
        # rows are in flight at once rather than one.
        ahead = ((p.i1 - p.i0) * n_in * <Py_ssize_t>sizeof(real) <= bp_l2_bytes // 8
                 and upd.n_params * <Py_ssize_t>sizeof(real) <= bp_l2_bytes // 2)
        for i in range(p.i0, p.i1):  # gather a^0 into the workspace
            if not ahead and i + GATHER_AHEAD < p.i1:
                bp_prefetch_l2(X + example_at(data, start + i + GATHER_AHEAD) * n_in,
                               n_in * sizeof(real))
            memcpy(A + i * ld, X + example_at(data, start + i) * n_in, n_in * sizeof(real))
        if ahead:
            for i in range(start + data.batch_size + p.i0,
                           min(start + data.batch_size + p.i1, data.n)):
                bp_prefetch_l2(X + example_at(data, i) * n_in, n_in * sizeof(real))
        if p.kind == GATHER:
            return
        row = p.i0 * ld
        forward_block(net, <const real*>params, A + row, ld, p.i1 - p.i0, Z + row, A + row,
                      m)
        if data.costs != NULL:
            for i in range(p.i0, p.i1):
                data.costs[start + i] = example_cost(
                    net.cost, Z + i * ld + net.u_off[L], A + i * ld + net.u_off[L],
                    Y + example_at(data, start + i) * n_out, n_out)
        backward_block(net, <const real*>params, data, start + p.i0, p.i1 - p.i0,
                       Z + row, A + row, D + row)
        return
    if p.kind == FORWARD:  # the same sums and activations as forward_block's, by units
        l = p.l
        j0 = p.j0
        W = params + net.w_off[l] + j0 * net.sizes[l - 1]
        bias = params + net.b_off[l]
        dot_rows(A + net.u_off[l - 1], ld, m, W, net.sizes[l - 1], p.j1 - j0, net.sizes[l - 1],
                 Z + net.u_off[l] + j0, ld, forward_packs(net, l, m, real is float))
        for i in range(m):
            z = Z + i * ld + net.u_off[l]
            for j in range(j0, p.j1):
                z[j] += bias[j]
            if l < L:  # a^L in OUTPUT: softmax needs the whole layer
                activate(net.act[l], z + j0, A + i * ld + net.u_off[l] + j0, p.j1 - j0)
        return
    if p.kind == OUTPUT:
        for i in range(p.i0, p.i1):
            activate(net.act[L], Z + i * ld + net.u_off[L], A + i * ld + net.u_off[L], n_out)
            if data.costs != NULL:
                data.costs[start + i] = example_cost(
                    net.cost, Z + i * ld + net.u_off[L], A + i * ld + net.u_off[L],
                    Y + example_at(data, start + i) * n_out, n_out)
        row = p.i0 * ld
        output_rows(net, data, start + p.i0, p.i1 - p.i0, Z + row, A + row, D + row)
        return
    if p.kind == DELTA:  # backward_block's product, by units of layer l - 1
        l = p.l
        j0 = p.j0
        bcast_rows(m, p.j1 - j0, net.sizes[l], D + net.u_off[l], ld, 1,
                   params + net.w_off[l] + j0, net.sizes[l - 1], D + net.u_off[l - 1] + j0, ld)
        for i in range(m):
            row = i * ld + net.u_off[l - 1] + j0
            times_derivative(net.act[l - 1], Z + row, A + row, D + row, p.j1 - j0)
        return
    for l in range(p.l, p.l1 + 1):  # a run may span several layers
        j0 = p.j0 if l == p.l else 0
        j1 = p.j1 if l == p.l1 else net.sizes[l]
        if upd.hyper == NULL:
            gradient_sums(net, A, D, grads, m, l, j0, j1)
        else:
            step_rows(net, A, D, grads, params, upd, m, p.batch, l, j0, j1)


cdef void run_epoch(const LayoutC* net, real* params, real* grads, Data* data, Update* upd,
                    Schedule* s, bp_team* team) noexcept nogil:
    """The parallel region's body: thread 0 cuts the epoch into pieces for the team
    OpenMP gave (it may be smaller than asked for) and decides whether to pin it
    (_sched.h), the others wait for that, then all run the pieces."""
    cdef bp_cpuset saved
    cdef bint pinned
    cdef int nt, h
    if bp_thread_num() == 0:
        nt = max(bp_team_size(), data.cut_for)
        make_schedule(net, data.n, data.batch_size, nt,
                      nt > 1 if data.layerwise < 0 else data.layerwise == 1,
                      delta_grain(BP_Wf if real is float else BP_Wd), s)
        for h in range(nt):  # the owners of home pieces, more than the team for _cut_for
            team.member[h].claimed = 0
        bp_pin_plan(team, bp_team_size(), data.pin)
        BP_STORE(&team.ready, 1)
    else:
        # not a barrier: thread 0 must not wait for a thread the host keeps off its core
        while not BP_LOAD(&team.ready):
            BP_PAUSE()
    pinned = bp_pin(team, bp_thread_num(), &saved)
    run_minibatches(net, params, grads, data, upd, s, team)
    if pinned:
        bp_unpin(&saved)


cdef void run_minibatches(const LayoutC* net, real* params, real* grads, Data* data,
                          Update* upd, const Schedule* s, bp_team* team) noexcept nogil:
    """What each thread of the team runs: all mini-batches of one epoch (or one
    gradient), piece by piece, phase by phase, its home pieces first, a lone thread
    in runs of pieces (see _sched.h)."""
    cdef int tid = bp_thread_num(), nt = bp_team_size()
    cdef bp_member* me = &team.member[tid]
    # first: the first ticket of the phase this thread claims in; seen: the claims
    # counter after its last claim (unchanged since: nobody else claimed)
    cdef long long t, end, seen = -1, first = 0, lo, hi, word, done, newest
    cdef bp_ns now, wait_start, began, budget, until
    cdef int o, h, g
    cdef long long count
    cdef Piece phase, saved
    cdef bint excluded_any
    cdef int spins
    cdef Piece p
    # Alone in the team, a thread has nobody to wait for, exclude or hand a run to:
    # its clock reads (two per piece and two per run, ~4% of an N1 epoch) would only
    # feed the speed estimates and exclusions of a team of several, and the run
    # lengths of an epoch cut for several (the test hook _cut_for).  now = 0 then.
    cdef bint timed = nt > 1 or s.nt > 1
    while True:
        if tid == 0:
            poll_signals(net, data, s, team)
        end = end_ticket(s, team)
        now = bp_now() if timed else 0
        # A team of one never sits out: an exclusion remembered from a team of
        # several (team memory, absolute times) would never end against now = 0.
        until = BP_LOAD(&me.excluded_until) if timed else 0
        if until > now:
            if end >= 0 and BP_LOAD(&team.completed) >= end:
                break
            if until == BP_FURTHER_NOTICE:  # its end is about to be set
                bp_nap(BP_NAP_NS)
            elif tid == 0:  # it polls for signals every POLL_SECONDS
                bp_sleep(team, min(until - now, <bp_ns>(POLL_SECONDS * 1e9)))
            else:
                bp_sleep(team, until - now)
            continue
        if first >= s.total or (end >= 0 and first >= end):
            break
        # Alone?  Only if no piece was claimed since this thread's last one (cheap
        # to see), then from the other members' slots.
        budget = 0
        if BP_LOAD(&team.next) == seen:
            budget = bp_alone(team, nt, tid, now)
        # Claim the next piece (a lone thread: a run of pieces) of this phase: of the
        # home range of this thread, else of the next member's that has one left.
        decode(net, s, data, first, &phase)
        t = -1
        newest = first
        for o in range(s.nt):
            # alone, in ticket order: the ranges can then join into one run
            h = o if budget > 0 else (tid + o) % s.nt
            owner_bounds(net, s, &phase, h, &lo, &hi)
            while True:
                word = BP_LOAD_SC(&team.member[h].claimed)
                done = bp_claimed(word, first)
                if done < 0:  # a later phase: this one, and all up to that one, claimed
                    newest = max(newest, (word >> BP_CLAIM_BITS) - 1)
                    break
                if lo + done >= hi:
                    break
                decode(net, s, data, lo + done, &p)
                if budget > 0:
                    # untimed, a one-thread team merges the rest of the range (one
                    # mini-batch's rows of every W^l) whatever it takes
                    extend_run(net, s, data, lo + done, hi,
                               me.ns_per_work[speed_kind(p.kind)] if timed else -1.0, budget, &p)
                if BP_CAS(&team.member[h].claimed, word, bp_claim_word(first, done + p.count)):
                    t = lo + done
                    saved = p
                    # alone: the next members' ranges that nobody has started, and
                    # whose pieces continue the run's, join it
                    g = h + 1
                    while budget > 0 and t + p.count == hi and g < s.nt:
                        owner_bounds(net, s, &phase, g, &lo, &hi)
                        g += 1
                        if hi <= lo:
                            continue  # no home pieces in this phase
                        word = BP_LOAD_SC(&team.member[g - 1].claimed)
                        count = p.count
                        if bp_claimed(word, first) == 0:
                            extend_run(net, s, data, t, hi,
                                       me.ns_per_work[speed_kind(p.kind)] if timed else -1.0,
                                       budget, &p)
                        if p.count == count:
                            break
                        if not BP_CAS(&team.member[g - 1].claimed, word,
                                      bp_claim_word(first, t + p.count - lo)):
                            p = saved
                            break
                        saved = p
                    break
            if t >= 0:
                break
        if t < 0:  # every piece of the phase is claimed: on to the next, or straight
            # to the newest phase another thread claims in (after an exclusion)
            first = max(phase.end, newest)
            continue
        seen = BP_FETCH_ADD(&team.next, p.count) + p.count
        if BP_LOAD_SC(&team.stopping):
            while BP_LOAD(&team.stop_at) < 0:
                BP_PAUSE()
            if t >= BP_LOAD(&team.stop_at):  # a run lies in one mini-batch: all or none
                break
        now = bp_now() if timed else 0
        me.work = p.work
        me.since = now
        BP_STORE(&me.ticket, t)
        if BP_LOAD(&team.completed) < p.need:  # the phase before is still running
            wait_start = now
            excluded_any = False
            spins = 0
            while BP_LOAD(&team.completed) < p.need:
                BP_PAUSE()
                spins += 1
                if spins % 64 == 0:
                    now = bp_now()
                    # the holders work on the phase before this piece's
                    if bp_exclude_slow(team, nt, tid, p.wait_kind, p.need,
                                       wait_start, now):
                        excluded_any = True
                    if tid == 0:
                        poll_signals(net, data, s, team)
            if excluded_any:
                now = bp_now()
                bp_end_exclusions(team, nt, tid, now, now - wait_start)
        if tid == data.slow_thread and (data.slow_pieces == 0 or me.pieces < data.slow_pieces):
            bp_nap(data.slow_ns)  # tests: a thread that loses its core holding a piece
        if timed:
            began = bp_now()
            do_piece(net, params, grads, data, upd, &p)
            now = bp_now()
            bp_learn_speed(me, speed_kind(p.kind), now - began, p.work)
        else:
            do_piece(net, params, grads, data, upd, &p)
        BP_STORE(&me.released, now)
        BP_STORE(&me.ticket, -1)
        end = end_ticket(s, team)
        if BP_ADD_RELEASE(&team.completed, p.count) + p.count >= end >= 0:
            bp_wake_all(team)  # the last piece: the sleepers leave (a stop: see poll_signals)
        me.pieces += p.count
        me.runs += 1


cdef inline bint rows_like_the_workspace(const void* X, Py_ssize_t row_bytes) noexcept nogil:
    """Whether rows of ``row_bytes`` from X all start on a cache line, an odd number of
    lines apart: what the workspace's rows are (Layout), so that the forward product
    can read X in place.  Otherwise every vector load of a row may straddle two lines
    (a NumPy array is 16-byte aligned; 100 float inputs are 400 bytes), and the
    first layer's product costs more than the copy (docs/performance.md)."""
    return (<size_t>X) % 64 == 0 and row_bytes % 64 == 0 and (row_bytes // 64) % 2 == 1


cdef void forward_rows(const LayoutC* net, const real* params, const real* X, const real* Y,
                       real* out, real* Z, real* A, Py_ssize_t chunk, double* costs,
                       Py_ssize_t n) noexcept nogil:
    """Outputs a^L (and costs when Y is given) of n examples.

    Each thread takes its share of the rows in blocks of ``chunk``, with its
    own ``chunk`` scratch rows of Z and A.  Every block's products take the form
    chosen for all n rows (forward_packs), whatever a thread's share.  A block's
    rows of X are first copied into the rows of A (a^0's place, as training gathers
    them) unless they are laid out like those rows already; the products give the
    same sums either way.
    """
    cdef int tid = bp_thread_num(), nt = bp_team_size()
    cdef Py_ssize_t i, i0, i1, b0, rows, k, L = net.n_layers, ld = net.units
    cdef Py_ssize_t n_in = net.sizes[0], n_out = net.sizes[L], last = net.u_off[L]
    cdef real* z = Z + tid * chunk * ld
    cdef real* a = A + tid * chunk * ld
    cdef bint in_place = rows_like_the_workspace(X, n_in * sizeof(real))
    split(n, tid, nt, &i0, &i1)
    b0 = i0
    while b0 < i1:
        rows = min(chunk, i1 - b0)
        if in_place:
            forward_block(net, params, X + b0 * n_in, n_in, rows, z, a, n)
        else:
            for i in range(rows):
                memcpy(a + i * ld, X + (b0 + i) * n_in, n_in * sizeof(real))
            forward_block(net, params, a, ld, rows, z, a, n)
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
    data.slow_thread = -1
    data.slow_ns = 0
    data.slow_pieces = 0
    data.cut_for = 0
    data.max_run = 0
    data.layerwise = -1
    data.pin = 0
    data.bias_norms = NULL
    return 0


cdef void record_last_bias_norms(const LayoutC* net, void* params, void* grads,
                                 const Data* data, const Schedule* s, bp_team* team,
                                 bint single) noexcept nogil:
    """After the region: the bias norms of the last mini-batch completed (the pieces
    record each earlier one when the next mini-batch starts)."""
    cdef long long end = s.total if not team.stopping else team.stop_at
    cdef Py_ssize_t b, m
    if end <= 0:
        return
    b = batch_of(s, end - 1)
    m = min(data.batch_size, data.n - b * data.batch_size)
    if single:
        record_bias_norms(net, <const float*>grads, m, data.bias_norms)
    else:
        record_bias_norms(net, <const double*>grads, m, data.bias_norms)


cdef int run_team(const LayoutC* net, void* params, void* grads, Data* data, Update* upd,
                  bint single, int num_threads, long long[::1] stats,
                  double[:, ::1] team_memory, long long[::1] runs=None) except -1:
    """The parallel region of an epoch or a gradient (see _sched.h)."""
    if num_threads > BP_MAX_TEAM:
        raise ValueError(f"num_threads must be <= {BP_MAX_TEAM}")
    if stats is not None and stats.shape[0] != num_threads + 1:
        raise ValueError("stats needs num_threads + 1 entries")
    if runs is not None and runs.shape[0] != num_threads:
        raise ValueError("runs needs num_threads entries")
    if team_memory is not None and (team_memory.shape[0] != num_threads
                                    or team_memory.shape[1] != BP_TEAM_MEMORY):
        raise ValueError(f"team_memory needs num_threads rows of {BP_TEAM_MEMORY}")
    cdef Schedule sched
    cdef bp_team team
    cdef int tid
    cdef double* memory = NULL if team_memory is None else &team_memory[0, 0]
    with nogil:
        bp_team_init(&team, num_threads, memory)
        with parallel(num_threads=num_threads):
            if single:
                run_epoch(net, <float*>params, <float*>grads, data, upd, &sched, &team)
            else:
                run_epoch(net, <double*>params, <double*>grads, data, upd, &sched, &team)
        if memory != NULL:
            bp_team_save(&team, num_threads, memory)
        if data.bias_norms != NULL:
            record_last_bias_norms(net, params, grads, data, &sched, &team, single)
    if stats is not None:
        for tid in range(num_threads):
            stats[tid] = team.member[tid].pieces if tid < sched.nt else 0
        stats[num_threads] = team.exclusions
    if runs is not None:
        for tid in range(num_threads):
            runs[tid] = team.member[tid].runs if tid < sched.nt else 0
    return 0


def _exclusion_length(long long waited, long long now, long long last_end,
                      long long last_out):
    """Test hook: how long (ns) a thread is excluded for a wait of ``waited`` ns that
    ended at ``now``, its last exclusion having lasted ``last_out`` and ended at
    ``last_end`` (0: none); the rule of _sched.h's bp_exclusion_length."""
    return bp_exclusion_length(waited, now, last_end, last_out)


def train_epoch(Layout layout, real[::1] params, real[::1] grads, real[:, ::1] state,
                Hyper hyper, const real[:, ::1] X, const real[:, ::1] Y,
                const Py_ssize_t[::1] order, const real[::1] sample_weight,
                Py_ssize_t batch_size, real[:, ::1] Z, real[:, ::1] A, real[:, ::1] D,
                double[::1] costs, int num_threads, double[::1] bias_norms=None,
                long long[::1] stats=None, double[:, ::1] team_memory=None,
                long long[::1] runs=None, int _slow_thread=-1, double _slow_seconds=0.0,
                long long _slow_pieces=0,
                int _cut_for=0, long long _max_run=0, int _layerwise=-1):
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
    With ``bias_norms`` (L entries), ||dC/db^l|| of every mini-batch is added to
    ``bias_norms[l - 1]`` (see record_bias_norms).  The caller checks the arguments;
    this re-checks only what would corrupt memory.

    ``stats``, if given (num_threads + 1 entries), receives the pieces each thread
    computed and, last, how many times a thread was excluded for holding the
    others up (see _sched.h).  ``team_memory`` (num_threads x TEAM_MEMORY, or None)
    carries the threads' speed estimates and exclusions from one call to the next.
    ``runs``, if given (num_threads entries), receives how many times each thread
    took work: a single piece, or a run of consecutive pieces that a lone thread
    merges into one (_sched.h), so that ``stats[t] - runs[t]`` pieces were merged.
    Test hooks: ``_slow_thread`` naps ``_slow_seconds`` before each piece it takes
    (before its first ``_slow_pieces`` only, if that is not 0), a stand-in for a
    thread that loses its core (once); ``_cut_for`` cuts the epoch into
    pieces for that many threads whatever the team; ``_max_run`` caps a run's pieces;
    ``_layerwise`` 0 or 1 forces the cut by blocks of examples or the layer-wise one
    (-1: layer-wise for more than one thread; see ``Schedule``).
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
    if not 0.0 <= _slow_seconds < 1.0 or _slow_pieces < 0:
        raise ValueError("_slow_seconds must be in [0, 1) and _slow_pieces >= 0")
    data.slow_thread = _slow_thread
    data.slow_ns = <long>(_slow_seconds * 1e9)
    data.slow_pieces = _slow_pieces
    if _cut_for < 0 or _cut_for > BP_MAX_TEAM:
        raise ValueError(f"_cut_for must be in 0..{BP_MAX_TEAM}, got {_cut_for}")
    if _max_run < 0:
        raise ValueError(f"_max_run must be >= 0, got {_max_run}")
    data.cut_for = _cut_for
    data.max_run = _max_run
    data.layerwise = _layerwise
    # An epoch is long enough for the pinning's four system calls per thread; a
    # gradient call (one per mini-batch in data-parallel training) is not.
    data.pin = 1
    if bias_norms is not None:
        if bias_norms.shape[0] != net.n_layers:
            raise ValueError("bias_norms must have one entry per layer")
        data.bias_norms = &bias_norms[0]
    cdef bp_hyper h
    hyper.fill(&h)
    upd.hyper = &h
    run_team(net, &params[0], &grads[0], &data, &upd, real is float, num_threads, stats,
             team_memory, runs)
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
    upd.n_params = layout.n_params
    upd.steps = 0
    # phase 2 without an optimizer never writes params
    run_team(net, <void*>&params[0], &grads[0], &data, &upd, real is float, num_threads, None,
             None)
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


def packed_forward(Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, bint single):
    """Whether the forward product of a mini-batch (or a ``forward`` call) of m examples
    through a layer of n_in inputs and n_out units takes the packed form (_gemm.h's
    bp_dot_packs); ``single``: float32, else float64."""
    return bp_dot_packs_f(m, n_in, n_out) if single else bp_dot_packs_d(m, n_in, n_out)


def packed_delta(Py_ssize_t m, Py_ssize_t n_in, Py_ssize_t n_out, bint single):
    """Whether delta^(l-1) = delta^l W^l of m examples, for n_in units of layer l - 1
    (a whole layer, or a thread's piece of its units) and the n_out units of layer l,
    takes the packed form (_gemm.h's bp_delta_packs); ``single``: float32, else
    float64.  Either form gives the same bits."""
    return bp_delta_packs_f(m, n_out, n_in) if single else bp_delta_packs_d(m, n_out, n_in)


def set_l2_bytes(Py_ssize_t bytes):
    """Size bp_dot's row blocks for an L2 of ``bytes`` (64 KiB or more; smaller values
    are ignored).  Set once at import from what the system reports; the tests call it
    to show that the blocking changes no result."""
    bp_set_l2_bytes(bytes)


# bp_dot's row blocks are sized for this core's L2 (_gemm.h), read once here.
set_l2_bytes(bp_reported_l2_bytes())


def max_threads():
    """omp_get_max_threads() of the calling thread (1 without OpenMP)."""
    return bp_max_threads()


def cpu_level():
    """4: x86-64-v4 (AVX-512), 3: x86-64-v3 (AVX2 + FMA), 1: older x86-64, 0: other CPUs."""
    return bp_cpu_level()


def compiled_info():
    """How this extension was compiled (OpenMP, flags, compiler, instruction set) and
    the L2 size its products' blocking was set for at import."""
    return {
        "openmp": bool(bp_openmp_enabled()),
        "openmp_version": bp_openmp_version(),
        "openmp_reason": bp_openmp_reason.decode(),
        "compile_args": bp_compile_args.decode(),
        "compiler": bp_compiler.decode(),
        "isa": bp_isa.decode(),
        "l2_bytes": bp_l2_bytes,
    }
