"""bpcore.optim: each rule against the NumPy reference and torch.optim, thread-count
independence, continuation over fit calls, state dicts, and the kernels' seams.

Tolerances.  Core and reference evaluate the same formulas in float64 and differ
only in summation order and FMA rounding (a few ulps per step); over the few
steps below those stay at ~1e-15 relative, so 1e-12 leaves three orders of
magnitude.  Against torch, whose autograd forms the mean gradient in yet another
order, the issue's 1e-10 over several epochs.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import bpcore
from bpcore import Network, reference
from bpcore._config import make_rngs
from bpcore.optim import SGD, Adam, AdamW, _VelocitySGD
from conftest import HIDDEN, OUTPUT_PAIRS, make_targets, params_of

REF_RTOL = 1e-12
TORCH_RTOL = 1e-10


def assert_close(a, b, rtol, what=""):
    for l, (x, y) in enumerate(zip(params_of(a), params_of(b))):
        err = float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
        scale = max(1.0, float(np.max(np.abs(y))))
        assert err <= rtol * scale, f"{what} array {l}: max|diff| {err:.3e} > {rtol * scale:.3e}"


def assert_equal(a, b, what=""):
    for l, (x, y) in enumerate(zip(params_of(a), params_of(b))):
        assert np.array_equal(x, y), f"{what} array {l} differs by {np.max(np.abs(x - y)):.3e}"


#: Optimizer factories covering every rule and option.
OPTIMIZERS = {
    "sgd": lambda: SGD(0.3),
    "sgd-wd": lambda: SGD(0.3, weight_decay=0.05),
    "sgd-momentum": lambda: SGD(0.2, momentum=0.9),
    "sgd-nesterov-wd": lambda: SGD(0.2, momentum=0.8, nesterov=True, weight_decay=0.02),
    "velocity": lambda: _VelocitySGD(0.2, momentum=0.7, weight_decay=0.01),
    "velocity-nesterov": lambda: _VelocitySGD(0.2, momentum=0.7, nesterov=True),
    "adam": lambda: Adam(0.01),
    "adam-wd": lambda: Adam(0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    "adamw": lambda: AdamW(0.02, weight_decay=0.1),
}


def _problem(sizes, out_act, cost, n, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, sizes[0])), make_targets(rng, cost, n, sizes[-1])


@st.composite
def optimizers(draw):
    kind = draw(st.sampled_from(["sgd", "velocity", "adam", "adamw"]))
    lr = draw(st.floats(0.001, 0.3))
    wd = draw(st.sampled_from([0.0, 0.01, 0.3]))
    if kind in ("sgd", "velocity"):
        momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
        nesterov = momentum > 0 and draw(st.booleans())
        cls = SGD if kind == "sgd" else _VelocitySGD
        return lambda: cls(lr, momentum=momentum, nesterov=nesterov, weight_decay=wd)
    b1, b2 = draw(st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)]))
    eps = draw(st.sampled_from([1e-8, 1e-3]))
    cls = Adam if kind == "adam" else AdamW
    return lambda: cls(lr, betas=(b1, b2), eps=eps, weight_decay=wd)


@settings(max_examples=max(10, settings.default.max_examples // 2))
@given(data=st.data())
def test_every_rule_matches_the_reference_on_random_shapes(data):
    """Fused (m <= 128) and streaming (m > 128) paths, edge vectors (widths not a
    multiple of the vector), several epochs, with and without sample weights.

    Compared in the regime where training is stable (the cost went down; checked):
    a diverging run amplifies the ulp-level differences without bound."""
    depth = data.draw(st.integers(1, 3), label="depth")
    sizes = data.draw(st.lists(st.integers(1, 21), min_size=depth + 1, max_size=depth + 1),
                      label="sizes")
    out_act, cost = data.draw(st.sampled_from(OUTPUT_PAIRS), label="output")
    if out_act == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    hidden = data.draw(st.lists(st.sampled_from(HIDDEN), min_size=depth - 1,
                                max_size=depth - 1), label="hidden")
    n = data.draw(st.sampled_from([1, 7, 40, 140]), label="n")
    batch = data.draw(st.sampled_from([1, 5, 16, 129, 200]), label="batch")
    batch = max(batch, -(-n // 12))  # at most 12 steps per epoch: the reference is slow
    epochs = data.draw(st.integers(1, 3), label="epochs")
    make = data.draw(optimizers(), label="optimizer")
    weighted = data.draw(st.booleans(), label="weighted")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    X, Y = _problem(sizes, out_act, cost, n, seed)
    w = np.random.default_rng(seed + 1).uniform(0, 3, n) if weighted and n > 1 else None
    args = (sizes, hidden + [out_act], cost)
    core, ref = Network(*args, seed=seed, num_threads=2), reference.Network(*args, seed=seed)
    opt_core, opt_ref = make(), make()
    start = core.cost(X, Y, sample_weight=w)
    try:
        core.fit(X, Y, epochs, batch, optimizer=opt_core, sample_weight=w, seed=seed)
        # a step too large can leave finite weights whose cost overflows (an identity
        # network, lr ~1): diverged as surely as a NaN, which fit only sees next epoch
        trained = core.cost(X, Y, sample_weight=w)
    except (bpcore.DivergenceError, bpcore.exceptions.ResultOverflowError):
        assume(False)
    assume(trained <= start)
    ref.fit(X, Y, epochs, batch, optimizer=opt_ref, sample_weight=w, seed=seed)
    assert opt_core.steps == opt_ref.steps == epochs * -(-n // min(batch, n))
    assert_close(core, ref, REF_RTOL, repr(opt_core))
    core_state, ref_state = opt_core.state_dict(), opt_ref.state_dict()
    for key, value in core_state.items():
        if isinstance(value, np.ndarray):  # a state buffer, in the core's padded layout
            got = _compact(core._layout, value)
            scale = max(1.0, float(np.max(np.abs(ref_state[key]))))
            assert np.max(np.abs(got - ref_state[key])) <= REF_RTOL * scale, key


def _compact(layout, flat):
    """A flat buffer in the kernels' layout without its alignment gaps: W^1, b^1, W^2, ..."""
    parts = []
    for l in range(1, len(layout.sizes)):
        size = layout.sizes[l] * layout.sizes[l - 1]
        parts += [flat[layout.w_off[l]:layout.w_off[l] + size],
                  flat[layout.b_off[l]:layout.b_off[l] + layout.sizes[l]]]
    return np.concatenate(parts)


class Params:
    """Parameters as lists, comparable with a network by assert_close / assert_equal."""

    def __init__(self, weights, biases):
        self.weights, self.biases = weights, biases


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch", [7, 150])
@pytest.mark.parametrize("sizes", [[23, 150, 18, 5], [300, 37, 18, 5]])
def test_every_rule_is_bitwise_independent_of_the_thread_count(name, dtype, batch, sizes):
    # 150 rows of W^1 over 23 inputs: phase 2 takes chunks of 20 rows on 2 threads, 16 on 3,
    # so the runs of parameters each call steps start and end at different places.  300
    # inputs at batch 150: W^1's step fused into the packed form's tiles, on pieces of
    # 37 rows or fewer (some under two of its tiles of rows)
    acts = ["relu", "tanh", "softmax"]
    X, Y = _problem(sizes, "softmax", "log_likelihood", 300, 3)
    nets = []
    for threads in (1, 2, 3):
        net = Network(sizes, acts, "log_likelihood", dtype=dtype, seed=5, num_threads=threads)
        net.fit(X, Y, 2, batch, optimizer=OPTIMIZERS[name](), seed=1,
                sample_weight=np.linspace(0.5, 2, 300))
        nets.append(net)
    for net in nets[1:]:
        assert_equal(net, nets[0], f"{name} {dtype} batch {batch}")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_consecutive_fits_continue_exactly(name):
    """One optimizer over fit(2 epochs) + fit(3 epochs) is bitwise one fit of 5 epochs
    (the network's own shuffling continues too); a new optimizer starts afresh."""
    sizes, acts = [6, 19, 3], ["sigmoid", "softmax"]
    X, Y = _problem(sizes, "softmax", "log_likelihood", 90, 4)
    once, twice, fresh = (Network(sizes, acts, "log_likelihood", seed=2) for _ in range(3))
    once.fit(X, Y, 5, 16, optimizer=OPTIMIZERS[name]())
    opt = OPTIMIZERS[name]()
    twice.fit(X, Y, 2, 16, optimizer=opt)
    twice.fit(X, Y, 3, 16, optimizer=opt)
    assert opt.steps == 5 * 6
    assert_equal(twice, once, name)
    fresh.fit(X, Y, 2, 16, optimizer=OPTIMIZERS[name]())
    fresh.fit(X, Y, 3, 16, optimizer=OPTIMIZERS[name]())
    if name not in ("sgd", "sgd-wd"):  # stateless rules do continue with a fresh object
        assert not all(np.array_equal(a, b) for a, b in zip(params_of(fresh), params_of(once)))


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_state_dict_round_trip_through_npz_continues_exactly(name, tmp_path):
    sizes, acts = [6, 17, 2], ["tanh", "identity"]
    X, Y = _problem(sizes, "identity", "quadratic", 60, 5)
    full = Network(sizes, acts, "quadratic", dtype="float32", seed=3)
    full.fit(X, Y, 4, 8, optimizer=OPTIMIZERS[name](), shuffle=False)
    part = Network(sizes, acts, "quadratic", dtype="float32", seed=3)
    opt = OPTIMIZERS[name]()
    part.fit(X, Y, 2, 8, optimizer=opt, shuffle=False)
    np.savez(tmp_path / "opt.npz", **opt.state_dict())
    part.save(tmp_path / "net.npz")
    resumed = Network.load(tmp_path / "net.npz")
    opt2 = OPTIMIZERS[name]()
    opt2.lr = 123.0  # restored from the state
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as state:
        opt2.load_state_dict(state)
    assert opt2.lr == opt.lr and opt2.steps == opt.steps
    resumed.fit(X, Y, 2, 8, optimizer=opt2, shuffle=False)
    assert_equal(resumed, full, name)


def test_load_state_dict_refuses_another_rule_or_size():
    net = Network([4, 5, 2], seed=0)
    X, Y = _problem([4, 5, 2], "sigmoid", "quadratic", 10, 0)
    adam = Adam()
    net.fit(X, Y, 1, 5, optimizer=adam)
    with pytest.raises(ValueError, match="rule 'adam'.*needs rule 'adamw'"):
        AdamW().load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match="rule 'adam'.*needs rule 'sgd'"):
        SGD(0.1, momentum=0.9).load_state_dict(adam.state_dict())
    bigger = Adam()
    Network([4, 50, 2], seed=0).fit(X, Y, 1, 5, optimizer=bigger)
    with pytest.raises(ValueError, match="belongs to a network of .* bound to one of"):
        bigger.load_state_dict(adam.state_dict())
    broken = adam.state_dict()
    broken["exp_avg"] = broken["exp_avg"][:-1]
    with pytest.raises(ValueError, match=r"state\['exp_avg'\] must be"):
        Adam().load_state_dict(broken)
    with pytest.raises(ValueError, match="cannot train one of"):  # bound to the first network
        Network([4, 50, 2], seed=0).fit(X, Y, 1, 5, optimizer=adam)


def test_legacy_fit_is_the_velocity_form_with_l2_over_n():
    """fit(lr, momentum, l2) builds SGD in the velocity form with weight decay l2/n,
    fresh in every call (its velocities start at zero)."""
    sizes, acts = [5, 9, 3], ["tanh", "softmax"]
    X, Y = _problem(sizes, "softmax", "log_likelihood", 50, 6)
    a, b = (Network(sizes, acts, "log_likelihood", seed=1) for _ in range(2))
    for _ in range(2):
        a.fit(X, Y, 2, 10, 0.3, momentum=0.9, l2=2.0, seed=4)
        b.fit(X, Y, 2, 10, optimizer=_VelocitySGD(0.3, momentum=0.9, weight_decay=2.0 / 50),
              seed=4)
    assert_equal(a, b)


def test_velocity_and_torch_forms_of_sgd_agree_for_a_constant_lr():
    sizes, acts = [5, 9, 3], ["tanh", "softmax"]
    X, Y = _problem(sizes, "softmax", "log_likelihood", 50, 6)
    for nesterov in (False, True):
        a, b = (Network(sizes, acts, "log_likelihood", seed=1) for _ in range(2))
        a.fit(X, Y, 3, 10, optimizer=SGD(0.1, 0.9, nesterov, 0.01), seed=4)
        b.fit(X, Y, 3, 10, optimizer=_VelocitySGD(0.1, 0.9, nesterov, 0.01), seed=4)
        assert_close(a, b, REF_RTOL)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("n", [40, 140])
@pytest.mark.parametrize("n_in, dtype", [(9, "float64"), (300, "float32")])
def test_gradient_sum_and_apply_update_are_one_training_step(name, n, n_in, dtype):
    """The seams data-parallel training uses: the gradient sum of a batch, then one
    step with scale 1/m, is the step train_epoch takes on that batch -- bitwise for
    the rules that scale the sum by 1/m, and to rounding for the velocity form (which
    multiplies the sum by lr/m there and by lr * (1/m) here).  Every way training
    steps W^1: fused into the gradient's one block (n = 40), the streaming pass after
    several blocks (n = 140, 9 inputs), fused into the packed form's one block
    (n = 140, 300 float32 inputs: bp_pk_fuses_step)."""
    sizes, acts = [n_in, 33, 4], ["leaky_relu", "sigmoid"]
    X, Y = (v.astype(dtype) for v in _problem(sizes, "sigmoid", "cross_entropy", n, 7))
    w = np.random.default_rng(0).uniform(0.5, 1.5, n)
    a, b = (Network(sizes, acts, "cross_entropy", dtype=dtype, seed=8, num_threads=2)
            for _ in range(2))
    opt_a, opt_b = OPTIMIZERS[name](), OPTIMIZERS[name]()
    for _ in range(3):
        a.fit(X, Y, 1, n, optimizer=opt_a, shuffle=False, sample_weight=w)
        grads = b._gradient_sum(X, Y, w / np.mean(w))
        b._apply_update(grads, 1 / n, opt_b)
    assert opt_a.steps == opt_b.steps == 3
    if name.startswith("velocity"):
        # per step, the constant lr/m against lr * (1/m): an ulp of the step, which moves
        # each parameter by an ulp of its step (<= 1 here); three steps (float64: as before)
        assert_close(b, a, REF_RTOL if dtype == "float64" else 3 * np.finfo(dtype).eps)
    else:
        assert_equal(b, a, name)


def test_gradient_sum_is_a_sum_and_touches_nothing():
    net = Network([4, 6, 3], ["relu", "softmax"], "log_likelihood", seed=0)
    X, Y = _problem([4, 6, 3], "softmax", "log_likelihood", 11, 1)
    before = net._params.copy()
    total = net._gradient_sum(X, Y)
    nabla_b, nabla_w = net.backprop(X, Y)
    assert np.array_equal(net._params, before)
    assert np.allclose(net._views(total, "w")[0], 11 * nabla_w[0], rtol=1e-14, atol=0)
    assert np.allclose(net._views(total, "b")[1], 11 * nabla_b[1], rtol=1e-14, atol=0)


def test_lr_is_settable_between_fits_and_checked():
    opt = Adam(0.01)
    opt.lr = 0.5
    assert opt.lr == 0.5
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.lr = -1
    with pytest.raises(TypeError, match="lr must be a real number"):
        opt.lr = "0.1"


@pytest.mark.parametrize("make, match", [
    (lambda: SGD(0.1, momentum=1.0), "momentum must be < 1"),
    (lambda: SGD(0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda: SGD(0.1, weight_decay=-1), "weight_decay must be >= 0"),
    (lambda: Adam(betas=(0.9, 1.0)), r"betas\[1\] must be < 1"),
    (lambda: Adam(eps=0), "eps must be > 0"),
    (lambda: AdamW(weight_decay=float("nan")), "weight_decay must be finite"),
])
def test_bad_hyperparameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_fit_takes_lr_or_optimizer():
    net = Network([3, 2], seed=0)
    X, Y = np.zeros((4, 3)), np.zeros((4, 2))
    with pytest.raises(TypeError, match="lr .* or an optimizer=, got neither"):
        net.fit(X, Y, 1, 2)
    with pytest.raises(TypeError, match="lr or optimizer, not both"):
        net.fit(X, Y, 1, 2, 0.1, optimizer=SGD(0.1))
    with pytest.raises(ValueError, match="momentum and l2 go with lr="):
        net.fit(X, Y, 1, 2, optimizer=SGD(0.1), momentum=0.9)
    with pytest.raises(TypeError, match="optimizer must be a bpcore.optim optimizer"):
        net.fit(X, Y, 1, 2, optimizer="adam")


def test_a_diverged_epoch_restores_the_optimizer_too():
    sizes = [3, 4, 1]
    X, Y = np.random.default_rng(0).normal(size=(8, 3)) * 1e3, np.ones((8, 1))
    net = Network(sizes, "identity", seed=0)
    opt = SGD(1e-9, momentum=0.9)
    net.fit(X, Y, 1, 4, optimizer=opt)
    state, steps, params = opt.state_dict(), opt.steps, params_of(net)
    opt.lr = 1e300
    with pytest.raises(bpcore.DivergenceError):
        net.fit(X, Y, 1, 4, optimizer=opt)
    assert opt.steps == steps
    assert np.array_equal(opt.state_dict()["momentum_buffer"], state["momentum_buffer"])
    assert_equal(net, Params(params[:2], params[2:]))


# -- against torch.optim -----------------------------------------------------------------

def _torch_run(torch, net, X, Y, epochs, batch, make_torch_opt, seed, factors):
    """The same training written with torch autograd and torch.optim, in float64."""
    F = torch.nn.functional
    Ws = [torch.tensor(w, requires_grad=True) for w in net.weights]
    bs = [torch.tensor(b, requires_grad=True) for b in net.biases]
    opt = make_torch_opt([{"params": Ws}, {"params": bs, "weight_decay": 0.0}])
    acts = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
            "identity": lambda z: z, "leaky_relu": lambda z: F.leaky_relu(z, 0.01)}
    rng = make_rngs(seed)[1]
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    ft = torch.tensor(factors)
    for _ in range(epochs):
        order = rng.permutation(X.shape[0])
        for start in range(0, len(order), batch):
            idx = torch.tensor(order[start:start + batch])
            a, y = Xt[idx], Yt[idx]
            for l, (W, b) in enumerate(zip(Ws, bs)):
                z = a @ W.T + b
                act = net.activations[l]
                a = z if act == "softmax" else acts[act](z)
            if net.cost_name == "log_likelihood":
                per = -(y * F.log_softmax(z, dim=1)).sum(1)
            else:
                per = 0.5 * ((a - y) ** 2).sum(1)
            loss = (ft[idx] * per).sum() / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return [W.detach().numpy() for W in Ws], [b.detach().numpy() for b in bs]


@pytest.mark.parametrize("name", sorted(n for n in OPTIMIZERS if not n.startswith("velocity")))
@pytest.mark.parametrize("weighted", [False, True])
def test_every_optimizer_matches_torch_step_by_step(name, weighted):
    torch = pytest.importorskip("torch")
    torch_opts = {
        "sgd": lambda g: torch.optim.SGD(g, lr=0.3),
        "sgd-wd": lambda g: torch.optim.SGD(g, lr=0.3, weight_decay=0.05),
        "sgd-momentum": lambda g: torch.optim.SGD(g, lr=0.2, momentum=0.9),
        "sgd-nesterov-wd": lambda g: torch.optim.SGD(g, lr=0.2, momentum=0.8, nesterov=True,
                                                     weight_decay=0.02),
        "adam": lambda g: torch.optim.Adam(g, lr=0.01),
        "adam-wd": lambda g: torch.optim.Adam(g, lr=0.02, betas=(0.8, 0.99), eps=1e-6,
                                              weight_decay=0.1),
        "adamw": lambda g: torch.optim.AdamW(g, lr=0.02, weight_decay=0.1),
    }
    for sizes, acts, cost in [([7, 20, 11, 4], ["tanh", "relu", "softmax"], "log_likelihood"),
                              ([5, 18, 3], ["sigmoid", "identity"], "quadratic")]:
        X, Y = _problem(sizes, acts[-1], cost, 150, 9)
        w = np.random.default_rng(2).uniform(0.2, 2.0, 150) if weighted else np.ones(150)
        net = Network(sizes, acts, cost, seed=3, num_threads=2)
        Ws, bs = _torch_run(torch, net, X, Y, 4, 32, torch_opts[name], 11, w / np.mean(w))
        net.fit(X, Y, 4, 32, optimizer=OPTIMIZERS[name](), seed=11,
                sample_weight=w if weighted else None)
        assert_close(net, Params(Ws, bs), TORCH_RTOL, name)


@pytest.mark.parametrize("dtype, momentum", [("float32", 0.5), ("float64", 0.1)])
@pytest.mark.parametrize("rule", ["velocity", "sgd", "adam"])
def test_decaying_state_never_holds_subnormal_numbers(rule, dtype, momentum):
    """A parameter whose gradient becomes exactly zero (here: an input that is zero from
    the second fit on) has its momentum or moments decay geometrically, through the
    subnormal range, where every x86 operation takes a microcode assist; the rules
    store a subnormal state as zero (of its sign).  Checked after every step while
    the states decay from ~1e-2 to below the smallest subnormal (float32: 0.5^k over
    ~150 steps, float64: 0.1^k over ~320): no state is ever subnormal, and the
    decayed states end at exactly zero."""
    make = {"velocity": lambda: _VelocitySGD(0.1, momentum=momentum),
            "sgd": lambda: SGD(0.1, momentum=momentum),
            "adam": lambda: Adam(0.01, betas=(momentum, momentum))}[rule]
    rng = np.random.default_rng(0)
    X = rng.random((8, 5))
    Y = np.eye(2)[rng.integers(0, 2, 8)]
    net = Network([5, 3, 2], ["sigmoid", "sigmoid"], "quadratic", dtype=dtype, seed=1,
                  num_threads=1)
    opt = make()
    net.fit(X, Y, 1, 8, optimizer=opt)
    X[:, 0] = 0.0  # from now on dC/dw_j0 = delta_j * x_0 = 0: those states only decay
    tiny = np.finfo(dtype).tiny
    steps = 180 if dtype == "float32" else 340
    for _ in range(steps):
        net.fit(X, Y, 1, 8, optimizer=opt)
        for name, buffer in opt.state_dict().items():
            if isinstance(buffer, np.ndarray) and buffer.dtype.kind == "f":
                assert not np.any((buffer != 0) & (np.abs(buffer) < tiny)), name
    first = opt.state_dict()
    w1 = net._layout.w_off[1]  # the buffers are laid out like the parameters
    decayed = [v[w1:w1 + 3 * 5].reshape(3, 5)[:, 0] for k, v in first.items()
               if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert decayed and all(np.all(d == 0) for d in decayed)
