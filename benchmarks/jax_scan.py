"""The JAX peer: a whole epoch of mini-batch SGD compiled as one XLA program.

``jax.jit`` of a ``jax.lax.scan`` over the epoch's mini-batches: each step
gathers its rows of X and Y (``jnp.take`` with the epoch's order, as bpcore
gathers them), takes ``jax.grad`` of the mean loss and steps every parameter by
plain SGD, ``p - lr * g``; a last, smaller mini-batch (``n % batch_size`` rows)
is one more step after the scan, in the same program.  Python is out of the loop,
as in bpcore.  The loss is the one of ``torch_eager.py``: ½‖a − y‖² summed over
outputs for quadratic, binary cross-entropy on logits for sigmoid +
cross_entropy, cross-entropy on logits (log-softmax) for softmax +
log_likelihood, averaged over the mini-batch.  The parameter buffers are donated
to the program, so the update is in place.

Threads: in jax 0.10 the CPU client sizes its thread pool from the CPUs the
process may run on (its affinity), so ``compare.py`` pins a JAX process to as
many cores as it should use before importing jax (``XLA_FLAGS`` are set too,
see ``peers.py``).  float64 needs ``jax_enable_x64``, which
:class:`JaxScanNet` turns on for a float64 network.  Import this module only
when jax is installed.
"""
from __future__ import annotations

import numpy as np

from numpy_batched import LEAKY_SLOPE, check_architecture, init_parameters



def _activation(name):
    """σ of a hidden layer (or of the output under the quadratic cost) as a jax function."""
    import jax
    import jax.numpy as jnp

    return {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "relu": lambda z: jnp.maximum(z, 0),
            "leaky_relu": lambda z: jax.nn.leaky_relu(z, LEAKY_SLOPE),
            "identity": lambda z: z}[name]


class JaxScanNet:
    """A network whose epoch is one jitted ``lax.scan`` of SGD steps.

    Starts from the same parameters as ``NumpyBatchedNet`` for the same seed;
    ``weights``/``biases`` give them back as NumPy arrays.
    """

    def __init__(self, sizes, activations, cost, dtype="float64", seed=None):
        import jax

        self.activations = check_architecture(sizes, activations, cost)
        self.cost = cost
        self.dtype = np.dtype(dtype)
        if self.dtype == np.float64:
            jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        biases, weights = init_parameters(tuple(sizes), self.dtype, seed)
        self.params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in zip(weights, biases)]
        self._epochs = {}

    @property
    def weights(self):
        return [np.asarray(w) for w, _ in self.params]

    @property
    def biases(self):
        return [np.asarray(b) for _, b in self.params]

    def as_arrays(self, X, Y):
        """(X, Y) as device arrays of the network's dtype: do it once, outside a timing."""
        import jax.numpy as jnp

        return jnp.asarray(X, dtype=self.dtype), jnp.asarray(Y, dtype=self.dtype)

    def _loss(self, params, x, y):
        import jax
        import jax.numpy as jnp

        a = x
        for l, (w, b) in enumerate(params):
            z = a @ w.T + b
            last = l == len(params) - 1
            if last and self.cost != "quadratic":
                a = z  # logits: the output activation is part of the loss
            else:
                a = _activation(self.activations[l])(z)
        m = x.shape[0]
        if self.cost == "quadratic":
            return 0.5 * jnp.sum((a - y) ** 2) / m
        if self.cost == "cross_entropy":  # log(1 + e^z) - y z, stably
            return jnp.sum(jnp.logaddexp(0, a) - y * a) / m
        return -jnp.sum(y * jax.nn.log_softmax(a, axis=1)) / m

    def _epoch(self, n, batch_size, lr):
        key = (n, batch_size, lr)
        if key not in self._epochs:
            import jax
            import jax.numpy as jnp

            grad = jax.grad(self._loss)
            full, tail = (n // batch_size) * batch_size, n % batch_size

            def step(params, X, Y, rows):
                g = grad(params, jnp.take(X, rows, axis=0), jnp.take(Y, rows, axis=0))
                return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g)

            def epoch(params, X, Y, order):
                if full:
                    params, _ = jax.lax.scan(
                        lambda p, rows: (step(p, X, Y, rows), None), params,
                        order[:full].reshape(-1, batch_size))
                if tail:
                    params = step(params, X, Y, order[full:])
                return params

            self._epochs[key] = jax.jit(epoch, donate_argnums=0)
        return self._epochs[key]

    def train_epoch(self, X, Y, batch_size, lr, order=None):
        """One pass of SGD over (X, Y) (NumPy arrays, or those of :meth:`as_arrays`);
        ``order`` is the visiting order (None: in order).  Returns when done."""
        import jax
        import jax.numpy as jnp

        n = X.shape[0]
        batch_size = min(batch_size, n)
        if not isinstance(X, jax.Array):
            X, Y = self.as_arrays(X, Y)
        order = jnp.arange(n) if order is None else jnp.asarray(order)
        self.params = self._epoch(n, batch_size, float(lr))(self.params, X, Y, order)
        jax.block_until_ready(self.params)
