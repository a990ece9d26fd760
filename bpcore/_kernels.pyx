# cython: language_level=3
"""The compiled core: forward pass, delta propagation, gradients and SGD.

Parameter layout (one flat buffer per network, genann-style)
    For l = 1..L: W^l (n_l x n_{l-1}, row-major, so W^l[j, k] = w^l_jk) at
    ``w_off[l]``, then b^l (n_l) at ``b_off[l]``.  Gradients and momentum
    velocities use the same layout in buffers of the same size.

Workspace layout
    One row per example of the mini-batch; in it, layer l's n_l units start at
    ``u_off[l]`` (layers 1..L; the inputs are read from X in place).  Z holds
    z^l, A holds a^l, D holds delta^l.

Parallel scheme (one OpenMP region per epoch, two barriers per mini-batch)
    1. per-example phase, the mini-batch split between threads: forward pass,
       cost, delta^L and delta^l for all layers of each example of the thread;
    2. per-row phase, each layer's rows of W split between threads: the row's
       gradient sum_i delta^l_ij a^{l-1}_i / m summed over the examples in index
       order, then its SGD update.
    Every number is computed by exactly one thread, in an order that does not
    depend on which thread or how many: trained weights are bitwise the same
    for any thread count.
"""
from cython.parallel cimport parallel

from bpcore._math cimport (real, dot, axpy, activate, times_derivative, output_delta,
                     example_cost)

import numpy as np

cdef extern from "_omp.h" nogil:
    int bp_openmp_enabled()
    int bp_openmp_version()
    int bp_thread_num()
    int bp_team_size()
    void bp_barrier()
    const char* bp_compile_args
    const char* bp_openmp_reason
    const char* bp_compiler


cdef struct LayoutC:
    Py_ssize_t n_layers       # L
    Py_ssize_t units          # sum of n_l for l = 1..L: the length of a workspace row
    const Py_ssize_t* sizes   # n_0 .. n_L
    const Py_ssize_t* w_off   # [l] = offset of W^l in the parameter buffer (l = 1..L)
    const Py_ssize_t* b_off   # [l] = offset of b^l
    const Py_ssize_t* u_off   # [l] = offset of layer l in a workspace row
    const int* act            # [l] = activation code of layer l
    int cost


cdef struct Data:
    const void* X             # (n, n_0) inputs, row-major, of the network's dtype
    const void* Y             # (n, n_L) targets
    const Py_ssize_t* order   # example used at each position; NULL = 0, 1, 2, ...
    Py_ssize_t n              # examples
    Py_ssize_t batch_size     # m; the last mini-batch may be smaller
    void* Z                   # (batch_size, units) workspaces
    void* A
    void* D
    double* costs             # cost of the example at each position, or NULL


cdef struct Sgd:
    bint update               # False: only compute the mean gradient into grads
    double lr                 # eta
    double decay              # lambda / n, the L2 weight decay per step
    double momentum           # mu; 0 = plain SGD


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
    """
    cdef LayoutC c
    cdef readonly object sizes, w_off, b_off, u_off, act
    cdef readonly Py_ssize_t n_params

    def __init__(self, sizes, act_codes, int cost_code):
        cdef Py_ssize_t L = len(sizes) - 1, l, offset = 0, units = 0
        if L < 1 or len(act_codes) != L:
            raise ValueError("Layout needs len(sizes) >= 2 and one activation per layer")
        self.sizes = np.asarray(sizes, dtype=np.intp)
        self.w_off = np.zeros(L + 1, dtype=np.intp)
        self.b_off = np.zeros(L + 1, dtype=np.intp)
        self.u_off = np.zeros(L + 1, dtype=np.intp)
        self.act = np.full(L + 1, -1, dtype=np.intc)
        for l in range(1, L + 1):
            self.w_off[l] = offset
            offset += self.sizes[l] * self.sizes[l - 1]
            self.b_off[l] = offset
            offset += self.sizes[l]
            self.u_off[l] = units
            units += self.sizes[l]
            self.act[l] = act_codes[l - 1]
        self.n_params = offset
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


cdef void forward_example(const LayoutC* net, const real* params, const real* x,
                          real* z, real* a) noexcept nogil:
    """z^l = W^l a^{l-1} + b^l and a^l = sigma(z^l) for l = 1..L, with a^0 = x."""
    cdef Py_ssize_t l, j, n_in, n_out
    cdef const real* a_in = x
    cdef const real* W
    cdef const real* b
    for l in range(1, net.n_layers + 1):
        n_in = net.sizes[l - 1]
        n_out = net.sizes[l]
        W = params + net.w_off[l]
        b = params + net.b_off[l]
        for j in range(n_out):
            z[net.u_off[l] + j] = dot(W + j * n_in, a_in, n_in) + b[j]
        activate(net.act[l], z + net.u_off[l], a + net.u_off[l], n_out)
        a_in = a + net.u_off[l]


cdef void backward_example(const LayoutC* net, const real* params, const real* y,
                           const real* z, const real* a, real* d) noexcept nogil:
    """delta^L from the cost, then delta^{l-1} = (W^l)^T delta^l (.) sigma'(z^{l-1})."""
    cdef Py_ssize_t L = net.n_layers, l, j, k, n_in, n_out
    cdef const real* W
    cdef real* d_prev
    output_delta(net.cost, net.act[L], z + net.u_off[L], a + net.u_off[L], y,
                 d + net.u_off[L], net.sizes[L])
    for l in range(L, 1, -1):
        n_in = net.sizes[l - 1]
        n_out = net.sizes[l]
        W = params + net.w_off[l]
        d_prev = d + net.u_off[l - 1]
        for k in range(n_in):
            d_prev[k] = 0
        for j in range(n_out):  # (W^l)^T delta^l as a sum of the rows of W^l
            axpy(d[net.u_off[l] + j], W + j * n_in, d_prev, n_in)
        times_derivative(net.act[l - 1], z + net.u_off[l - 1], a + net.u_off[l - 1],
                         d_prev, n_in)


cdef inline const real* layer_input(const LayoutC* net, const Data* data, const real* X,
                                    const real* A, Py_ssize_t start, Py_ssize_t i,
                                    Py_ssize_t l) noexcept nogil:
    """a^{l-1} of the i-th example of the mini-batch starting at position start."""
    cdef Py_ssize_t example
    if l > 1:
        return A + i * net.units + net.u_off[l - 1]
    example = start + i if data.order == NULL else data.order[start + i]
    return X + example * net.sizes[0]


cdef void gradient_rows(const LayoutC* net, const Data* data, real* grads, Py_ssize_t start,
                        Py_ssize_t m, Py_ssize_t l, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """Rows j0..j1 of dC/dW^l = mean_i delta^l_i (a^{l-1}_i)^T and of dC/db^l = mean_i delta^l_i."""
    cdef Py_ssize_t n_in = net.sizes[l - 1], i, j, k
    cdef const real* X = <const real*>data.X
    cdef const real* A = <const real*>data.A
    cdef const real* D = <const real*>data.D
    cdef real* gw
    cdef real gb, delta_ij
    for j in range(j0, j1):
        gw = grads + net.w_off[l] + j * n_in
        for k in range(n_in):
            gw[k] = 0
        gb = 0
        for i in range(m):
            delta_ij = D[i * net.units + net.u_off[l] + j]
            gb += delta_ij
            axpy(delta_ij, layer_input(net, data, X, A, start, i, l), gw, n_in)
        for k in range(n_in):
            gw[k] /= m
        grads[net.b_off[l] + j] = gb / m


cdef inline void sgd_update(real* p, real* v, const real* g, Py_ssize_t n, real lr, real decay,
                            real mu, bint momentum) noexcept nogil:
    """v = mu v - lr (g + decay p); p += v   (plain SGD when momentum is off)."""
    cdef Py_ssize_t k
    cdef real step
    if momentum:
        for k in range(n):
            v[k] = mu * v[k] - lr * (g[k] + decay * p[k])
            p[k] += v[k]
    else:
        for k in range(n):
            p[k] -= lr * (g[k] + decay * p[k])


cdef void update_rows(const LayoutC* net, real* params, const real* grads, real* velocity,
                      const Sgd* sgd, Py_ssize_t l, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """SGD step of rows j0..j1 of W^l (with L2 decay) and of b^l (without)."""
    cdef Py_ssize_t n_in = net.sizes[l - 1]
    cdef Py_ssize_t w = net.w_off[l] + j0 * n_in, b = net.b_off[l] + j0
    cdef bint with_momentum = sgd.momentum != 0
    sgd_update(params + w, velocity + w, grads + w, (j1 - j0) * n_in,
               <real>sgd.lr, <real>sgd.decay, <real>sgd.momentum, with_momentum)
    sgd_update(params + b, velocity + b, grads + b, j1 - j0,
               <real>sgd.lr, 0, <real>sgd.momentum, with_momentum)


cdef void run_minibatches(const LayoutC* net, real* params, real* grads, real* velocity,
                          const Data* data, const Sgd* sgd) noexcept nogil:
    """What each thread of the team runs: all mini-batches of one epoch (or one gradient)."""
    cdef int tid = bp_thread_num(), nt = bp_team_size()
    cdef Py_ssize_t start, m, i, i0, i1, j0, j1, l, example, row
    cdef Py_ssize_t L = net.n_layers, n_in = net.sizes[0], n_out = net.sizes[L]
    cdef const real* X = <const real*>data.X
    cdef const real* Y = <const real*>data.Y
    cdef real* Z = <real*>data.Z
    cdef real* A = <real*>data.A
    cdef real* D = <real*>data.D
    start = 0
    while start < data.n:
        m = min(data.batch_size, data.n - start)
        split(m, tid, nt, &i0, &i1)
        for i in range(i0, i1):
            example = start + i if data.order == NULL else data.order[start + i]
            row = i * net.units
            forward_example(net, <const real*>params, X + example * n_in, Z + row, A + row)
            if data.costs != NULL:
                data.costs[start + i] = example_cost(net.cost, Z + row + net.u_off[L],
                                                     A + row + net.u_off[L],
                                                     Y + example * n_out, n_out)
            backward_example(net, <const real*>params, Y + example * n_out, Z + row, A + row,
                             D + row)
        bp_barrier()
        for l in range(1, L + 1):
            split(net.sizes[l], tid, nt, &j0, &j1)
            gradient_rows(net, data, grads, start, m, l, j0, j1)
            if sgd.update:
                update_rows(net, params, grads, velocity, sgd, l, j0, j1)
        bp_barrier()
        start += m


cdef void forward_rows(const LayoutC* net, const real* params, const real* X, const real* Y,
                       real* out, real* Z, real* A, double* costs, Py_ssize_t n) noexcept nogil:
    """Outputs a^L (and costs when Y is given) of n examples; Z, A: one scratch row per thread."""
    cdef int tid = bp_thread_num(), nt = bp_team_size()
    cdef Py_ssize_t i, i0, i1, k, L = net.n_layers
    cdef Py_ssize_t n_in = net.sizes[0], n_out = net.sizes[L], last = net.u_off[L]
    cdef real* z = Z + tid * net.units
    cdef real* a = A + tid * net.units
    split(n, tid, nt, &i0, &i1)
    for i in range(i0, i1):
        forward_example(net, params, X + i * n_in, z, a)
        for k in range(n_out):
            out[i * n_out + k] = a[last + k]
        if Y != NULL:
            costs[i] = example_cost(net.cost, z + last, a + last, Y + i * n_out, n_out)


def _check_params(Layout layout, Py_ssize_t size, str name):
    if size != layout.n_params:
        raise ValueError(f"{name} has {size} entries, the layout needs {layout.n_params}")


def train(Layout layout, real[::1] params, real[::1] grads, real[::1] velocity,
          const real[:, ::1] X, const real[:, ::1] Y, const Py_ssize_t[::1] order,
          Py_ssize_t batch_size, double lr, double decay, double momentum,
          real[:, ::1] Z, real[:, ::1] A, real[:, ::1] D, double[::1] costs, int num_threads,
          bint update=True):
    """Run one epoch of mini-batch SGD in place (or, with update=False, one gradient).

    Visits X[order[0]], X[order[1]], ... in mini-batches of ``batch_size``
    (the last one may be smaller); after each, p <- p + v with
    v = momentum v - lr (dC/dp + decay p) (decay on weights only).  ``grads``
    holds the mean gradient of the last mini-batch; ``costs[i]`` the cost of
    the example at position i, computed with the parameters before its step.
    The caller checks the arguments; this re-checks only what would corrupt memory.
    """
    cdef LayoutC* net = &layout.c
    cdef Py_ssize_t n = X.shape[0]
    _check_params(layout, params.shape[0], "params")
    _check_params(layout, grads.shape[0], "grads")
    _check_params(layout, velocity.shape[0], "velocity")
    if X.shape[1] != net.sizes[0] or Y.shape[0] != n or Y.shape[1] != net.sizes[net.n_layers]:
        raise ValueError("X and Y do not match the layout")
    if order is not None and order.shape[0] != n:
        raise ValueError("order must have one entry per example")
    if batch_size < 1 or num_threads < 1:
        raise ValueError("batch_size and num_threads must be >= 1")
    cdef Py_ssize_t rows = min(batch_size, n)
    if (Z.shape[0] < rows or A.shape[0] < rows or D.shape[0] < rows or Z.shape[1] != net.units
            or A.shape[1] != net.units or D.shape[1] != net.units):
        raise ValueError("workspaces need min(batch_size, n) rows of layout.units")
    if costs is not None and costs.shape[0] != n:
        raise ValueError("costs must have one entry per example")
    if n == 0:
        return
    cdef Data data
    data.X = &X[0, 0]
    data.Y = &Y[0, 0]
    data.order = NULL if order is None else &order[0]
    data.n = n
    data.batch_size = batch_size
    data.Z = &Z[0, 0]
    data.A = &A[0, 0]
    data.D = &D[0, 0]
    data.costs = NULL if costs is None else &costs[0]
    cdef Sgd sgd
    sgd.update = update
    sgd.lr = lr
    sgd.decay = decay
    sgd.momentum = momentum
    cdef real* p = &params[0]
    cdef real* g = &grads[0]
    cdef real* v = &velocity[0]
    with nogil, parallel(num_threads=num_threads):
        run_minibatches(net, p, g, v, &data, &sgd)


def forward(Layout layout, const real[::1] params, const real[:, ::1] X, real[:, ::1] out,
            real[:, ::1] Z, real[:, ::1] A, const real[:, ::1] Y, double[::1] costs,
            int num_threads):
    """out[i] = a^L(X[i]); with Y given, costs[i] = C_x of example i.

    Z and A are scratch, one row of ``layout.units`` per thread.
    """
    cdef LayoutC* net = &layout.c
    cdef Py_ssize_t n = X.shape[0]
    _check_params(layout, params.shape[0], "params")
    if X.shape[1] != net.sizes[0] or out.shape[0] != n or out.shape[1] != net.sizes[net.n_layers]:
        raise ValueError("X and out do not match the layout")
    if num_threads < 1 or Z.shape[0] < num_threads or A.shape[0] < num_threads \
            or Z.shape[1] != net.units or A.shape[1] != net.units:
        raise ValueError("scratch needs num_threads rows of layout.units")
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
        forward_rows(net, p, x, y, o, z, a, c, n)


def compiled_info():
    """How this extension was compiled: OpenMP, flags, compiler."""
    return {
        "openmp": bool(bp_openmp_enabled()),
        "openmp_version": bp_openmp_version(),
        "openmp_reason": bp_openmp_reason.decode(),
        "compile_args": bp_compile_args.decode(),
        "compiler": bp_compiler.decode(),
    }
