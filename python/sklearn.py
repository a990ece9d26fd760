"""scikit-learn estimators trained by bpcore: :class:`BPClassifier` and :class:`BPRegressor`.

Both wrap a :class:`bpcore.Network` of ``n_features - hidden_layer_sizes -
n_outputs`` neurons and follow scikit-learn's estimator API, so they work in
pipelines, grid searches, cross-validation, ``clone`` and ``pickle``.  This
module imports scikit-learn (>= 1.6); ``import bpcore`` does not.

They take the parameters of :class:`sklearn.neural_network.MLPClassifier` and
:class:`~sklearn.neural_network.MLPRegressor`, with their defaults and
meanings: a parameter set of those (``MLPClassifier(...).get_params()``) works
unchanged.  How each maps onto bpcore (read from scikit-learn's
``_multilayer_perceptron.py`` and ``_stochastic_optimizers.py``):

* ``solver="adam"`` is :class:`bpcore.optim.Adam` with ``betas=(beta_1, beta_2)``,
  ``eps=epsilon``; ``"sgd"`` is :class:`bpcore.optim.SGD` with ``momentum`` and
  ``nesterov=nesterovs_momentum``.  ``"lbfgs"`` is not available.
* ``alpha``: scikit-learn adds ``alpha * W`` to the *summed* gradient of a
  mini-batch and divides by its size m (by the sum of its sample weights), so a
  step sees ``dC/dW + (alpha / m) W``.  That is the optimizer's L2
  ``weight_decay = alpha / (batch_size * w_mean)`` (``w_mean`` the mean sample
  weight, 1 without weights), on the weights only, as scikit-learn.  It is
  exact for every full mini-batch; the last, smaller one of an epoch gets the
  decay of a full one (scikit-learn's is up to ``batch_size / m`` larger there).
  With ``batch_size="auto"`` and at most 200 samples there is one mini-batch and
  the mapping is exact.
* ``learning_rate`` (SGD only, as in scikit-learn; Adam ignores it):
  ``"constant"``; ``"invscaling"`` is
  ``InverseScaling(power_t, t_per_epoch=n_samples)``, scikit-learn's rates
  exactly (its ``t`` counts training samples); ``"adaptive"`` is ``Adaptive``
  with ``patience = n_iter_no_change + 1``, monitoring what scikit-learn monitors
  (the training loss, or the validation score with ``early_stopping``); training
  stops at a plateau met with the rate already at most 1e-6 (see
  :mod:`bpcore.schedules`).
* Stopping: as in scikit-learn, training stops when the training loss (with
  ``early_stopping``: the validation score) has not improved by ``tol`` for more
  than ``n_iter_no_change`` epochs in a row (:class:`bpcore.callbacks.EarlyStopping`
  with ``patience = n_iter_no_change + 1``); with ``early_stopping`` the
  parameters of the epoch with the best validation score are kept.  With
  ``tol=0`` an equal value is no improvement (scikit-learn counts it as one).
* ``loss_curve_`` is scikit-learn's loss: the mean training cost of the epoch
  (for the regressor: divided by the number of outputs, as scikit-learn's
  ``squared_error`` is half the mean over samples *and* outputs) plus the L2
  term, which scikit-learn adds per mini-batch, ``0.5 * alpha * ||W||^2 / m``,
  here computed with the weights at the end of the epoch.

Differences that remain: the updates follow ``torch.optim`` (bpcore's
optimizers): Adam adds ``epsilon`` to the bias-corrected ``sqrt(v_hat)``
(scikit-learn to the uncorrected ``sqrt(v)``, a difference of a factor
``sqrt(1 - beta_2^t)`` in the ``epsilon`` term only), and SGD's momentum buffer
holds gradients, not steps, so when ``learning_rate`` changes the rate, past
steps are not rescaled as scikit-learn's velocities are.  The classifier has one
output per class also for two classes (scikit-learn: one logistic output); the
initial weights follow ``init`` (scikit-learn's are Glorot-uniform).
``partial_fit`` ignores ``early_stopping`` (scikit-learn raises).  ``warm_start``
and ``partial_fit`` behave as scikit-learn's: ``fit`` with ``warm_start``
continues from the parameters with a new optimizer; ``partial_fit`` keeps the
optimizer (Adam's moments, the schedule) from call to call, so that
``partial_fit`` calls train exactly as one ``fit`` of as many epochs would.

A fit that learns nothing warns with :class:`bpcore.ConvergenceWarning` (from
:meth:`bpcore.Network.fit`, passed on unchanged).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

try:
    import sklearn  # noqa: F401 - the check that names the extra
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('bpcore.sklearn needs scikit-learn, the extra "sklearn": pip install '
                      'scikit-learn (or pip install ".[sklearn]" in bpcore\'s source tree)'
                      ) from exc
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

try:
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the installed scikit-learn
    raise ImportError("bpcore.sklearn needs scikit-learn >= 1.6 (for "
                      "sklearn.utils.validation.validate_data)") from exc

from ._config import ACTIVATIONS, INITS, resolve_dtype
from ._checks import check_bool, check_int, check_name, check_num_threads, check_real
from ._weights import class_sample_weight
from .callbacks import EarlyStopping
from .network import Network
from .optim import SGD, Adam
from .schedules import Adaptive, InverseScaling

#: Activations a hidden layer may use (softmax is for output layers only).
HIDDEN_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != "softmax")
#: scikit-learn's names for bpcore's activations.
_ACTIVATION_ALIASES = {"logistic": "sigmoid"}
#: The rate below which scikit-learn's ``adaptive`` stops training.
_MIN_ADAPTIVE_LR = 1e-6


def _check_hidden_layer_sizes(value) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"hidden_layer_sizes must be a sequence of layer widths, got {value!r}")
    return tuple(check_int(f"hidden_layer_sizes[{i}]", s, 1) for i, s in enumerate(value))


def _check_n_iter_no_change(value) -> float:
    if isinstance(value, float) and value == math.inf:
        return math.inf
    return check_int("n_iter_no_change", value, 1)


class _BPEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, the network, training, pickling.

    Subclasses set ``_COSTS`` (the costs they accept) and implement ``_cost``,
    ``_output_activation``, ``_loss_scale``, ``_validation_score`` and the data
    handling of ``fit``/``partial_fit``.
    """

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose,
                 warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
                 beta_1, beta_2, epsilon, n_iter_no_change, max_fun, num_threads, dtype, init):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.num_threads = num_threads
        self.dtype = dtype
        self.init = init

    # -- parameters --------------------------------------------------------------------
    def _checked_params(self) -> dict:
        """The constructor parameters, checked; raises naming the first bad one."""
        activation = self.activation
        if isinstance(activation, str):
            activation = _ACTIVATION_ALIASES.get(activation, activation)
        activation = check_name("activation", activation,
                                HIDDEN_ACTIVATIONS + tuple(_ACTIVATION_ALIASES))
        solver = self.solver
        if solver == "lbfgs":
            raise ValueError("solver 'lbfgs' is not available in bpcore (it trains by "
                             "mini-batch steps only): use solver='adam' or 'sgd'")
        solver = check_name("solver", solver, ("adam", "sgd"))
        learning_rate = self.learning_rate
        if isinstance(learning_rate, numbers.Real) and not isinstance(learning_rate, bool):
            raise TypeError(f"learning_rate must be one of ['constant', 'invscaling', "
                            f"'adaptive'] (scikit-learn's schedules), got {learning_rate!r}; "
                            "the step size is learning_rate_init")
        batch_size = self.batch_size
        if batch_size != "auto":
            batch_size = check_int("batch_size", batch_size, 1)
        init = self.init
        if init is None:
            init = "he" if activation in ("relu", "leaky_relu") else "xavier"
        check_num_threads(self.num_threads)
        check_int("max_fun", self.max_fun, 1)  # lbfgs only: accepted, unused
        if not isinstance(self.verbose, (bool, np.bool_, numbers.Integral)):
            raise TypeError(f"verbose must be a bool or an int, got {self.verbose!r}")
        checked = {
            "hidden_layer_sizes": _check_hidden_layer_sizes(self.hidden_layer_sizes),
            "activation": activation,
            "solver": solver,
            "alpha": check_real("alpha", self.alpha, minimum=0.0),
            "batch_size": batch_size,
            "learning_rate": check_name("learning_rate", learning_rate,
                                        ("constant", "invscaling", "adaptive")),
            "learning_rate_init": check_real("learning_rate_init", self.learning_rate_init,
                                             minimum=0.0),
            "power_t": check_real("power_t", self.power_t, minimum=0.0),
            "max_iter": check_int("max_iter", self.max_iter, 1),
            "shuffle": check_bool("shuffle", self.shuffle),
            "tol": check_real("tol", self.tol, minimum=0.0),
            "warm_start": check_bool("warm_start", self.warm_start),
            "momentum": check_real("momentum", self.momentum, minimum=0.0, below=1.0),
            "nesterovs_momentum": check_bool("nesterovs_momentum", self.nesterovs_momentum),
            "early_stopping": check_bool("early_stopping", self.early_stopping),
            "validation_fraction": check_real("validation_fraction", self.validation_fraction,
                                              minimum=0.0, below=1.0),
            "beta_1": check_real("beta_1", self.beta_1, minimum=0.0, below=1.0),
            "beta_2": check_real("beta_2", self.beta_2, minimum=0.0, below=1.0),
            "epsilon": check_real("epsilon", self.epsilon, minimum=0.0),
            "n_iter_no_change": _check_n_iter_no_change(self.n_iter_no_change),
            "cost": self._cost(),
            "dtype": resolve_dtype(self.dtype),
            "init": check_name("init", init, INITS),
        }
        if checked["learning_rate_init"] == 0:
            raise ValueError("learning_rate_init must be > 0, got 0.0")
        if checked["epsilon"] == 0:
            raise ValueError("epsilon must be > 0, got 0.0")
        if checked["early_stopping"] and checked["validation_fraction"] == 0.0:
            raise ValueError("validation_fraction must be > 0 with early_stopping=True")
        return checked

    # -- the network and its training state ---------------------------------------------
    def _new_network(self, params: dict, n_inputs: int, n_outputs: int,
                     rng: np.random.RandomState) -> None:
        """A new ``network_``, and the training record reset."""
        hidden = params["hidden_layer_sizes"]
        self.network_ = Network(
            [n_inputs, *hidden, n_outputs],
            activations=[params["activation"]] * len(hidden) + [self._output_activation(params)],
            cost=params["cost"], dtype=params["dtype"], init=params["init"],
            seed=int(rng.randint(np.iinfo(np.int32).max)), num_threads=self.num_threads)
        self.loss_curve_ = []
        self.t_ = 0
        self._stopper = None

    def _new_optimizer(self, params: dict, batch_size: int, n: int, weights) -> None:
        """The optimizer and schedule of a ``fit`` (or of a first ``partial_fit``)."""
        w_mean = 1.0 if weights is None else float(np.mean(weights))
        decay = params["alpha"] / (batch_size * w_mean)
        if params["solver"] == "adam":
            self._optimizer = Adam(params["learning_rate_init"],
                                   betas=(params["beta_1"], params["beta_2"]),
                                   eps=params["epsilon"], weight_decay=decay)
            self._schedule = None
            return
        momentum = params["momentum"]
        self._optimizer = SGD(params["learning_rate_init"], momentum=momentum,
                              nesterov=params["nesterovs_momentum"] and momentum > 0,
                              weight_decay=decay)
        if params["learning_rate"] == "invscaling":
            self._schedule = InverseScaling(params["power_t"], t_per_epoch=n)
        elif params["learning_rate"] == "adaptive":
            self._schedule = Adaptive(tol=params["tol"], patience=self._patience(params, 10**9),
                                      factor=5.0, min_lr=_MIN_ADAPTIVE_LR,
                                      monitor=self._monitored, mode=self._mode)
        else:
            self._schedule = None

    @staticmethod
    def _patience(params: dict, never):
        """scikit-learn stops (or, adaptive, divides) once its count *exceeds* n_iter_no_change."""
        n = params["n_iter_no_change"]
        return never if n == math.inf else n + 1

    def _monitored(self, history) -> float:
        """What the stopping rule (and ``adaptive``) watches: the loss of the epoch just
        run, or its validation score with early stopping (computed once per epoch)."""
        ctx = self._context
        if ctx["epoch"] != history.epochs:
            # einsum, not np.dot: a BLAS call would leave NumPy's OpenBLAS pool spinning
            # on the cores of the next epoch (docs/threads-and-dtype.md)
            W2 = sum(float(np.einsum("i,i->", w.ravel(), w.ravel(), dtype=np.float64))
                     for w in self.network_.weights)
            penalty = 0.5 * ctx["alpha"] * W2 * ctx["n_batches"] / (ctx["n"] * ctx["w_mean"])
            ctx["loss"] = history.train_cost[-1] / ctx["scale"] + penalty
            if ctx["validation"] is not None:
                ctx["score"] = self._validation_score(*ctx["validation"])
            ctx["epoch"] = history.epochs
        return ctx["loss"] if ctx["validation"] is None else ctx["score"]

    def _train(self, params: dict, X: np.ndarray, targets: np.ndarray, weights, epochs: int,
               validation: tuple | None, incremental: bool) -> None:
        """Run up to ``epochs`` epochs of ``network_.fit``, with scikit-learn's stopping rules.

        ``validation`` is ``(X_val, targets_val, sample_weight_val)`` with early stopping.
        """
        net, n = self.network_, X.shape[0]
        batch_size = min(200, n) if params["batch_size"] == "auto" else params["batch_size"]
        if batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going "
                          "to be clipped", UserWarning, stacklevel=4)
            batch_size = n
        early = validation is not None
        self._mode = "max" if early else "min"
        if not incremental or getattr(self, "_optimizer", None) is None:
            self._new_optimizer(params, batch_size, n, weights)
        adaptive = isinstance(self._schedule, Adaptive)
        if self._stopper is None or self._stopper.restore_best != early:
            self._stopper = EarlyStopping(net, None, monitor=self._monitored, mode=self._mode,
                                          tol=params["tol"], restore_best=early)
        stopper = self._stopper
        # adaptive decides itself when to stop; partial_fit runs one epoch and never stops
        stopper.patience = None if adaptive or incremental else self._patience(params, None)
        self._context = {"epoch": None, "n": n, "n_batches": -(-n // batch_size),
                         "w_mean": 1.0 if weights is None else float(np.mean(weights)),
                         "alpha": params["alpha"], "scale": self._loss_scale(),
                         "validation": validation}
        stopped = False

        def after_epoch(epoch, history) -> bool:
            nonlocal stopped
            self._monitored(history)
            loss = self._context["loss"]
            self.loss_curve_.append(loss)
            self.n_iter_ += 1
            self.t_ += n
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
                if early:
                    print(f"Validation score: {self._context['score']:f}")
            stopped = stopper(epoch, history) or (adaptive and self._schedule.exhausted)
            if stopped and self.verbose:
                what = "Validation score" if early else "Training loss"
                print(f"{what} did not improve more than tol={params['tol']:f} for "
                      f"{params['n_iter_no_change']} consecutive epochs. Stopping.")
            return stopped

        self.n_iter_ = 0
        try:
            net.fit(X, targets, epochs, batch_size, optimizer=self._optimizer,
                    schedule=self._schedule, sample_weight=weights, shuffle=params["shuffle"],
                    callback=after_epoch)
        finally:
            self._context = None  # holds the validation data: not to be pickled
        if early:
            stopper.restore()
        self.validation_scores_ = list(stopper.values) if early else None
        self.best_validation_score_ = stopper.best if early else None
        self.best_loss_ = None if early else min(self.loss_curve_)
        if not incremental and not stopped and self.n_iter_ == params["max_iter"]:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({params['max_iter']}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=4)

    def _fit(self, X: np.ndarray, targets: np.ndarray, weights, params: dict, n_outputs: int,
             stratify: np.ndarray | None) -> None:
        """Train on (X, targets) for up to ``max_iter`` epochs, from a new network unless
        ``warm_start``.  ``weights`` (sample times class weights) weigh the steps and the
        validation score."""
        rng = check_random_state(self.random_state)
        validation = None
        if params["early_stopping"]:
            n = len(X)
            arrays = [X, targets] + ([] if weights is None else [weights])
            parts = train_test_split(*arrays, test_size=params["validation_fraction"],
                                     random_state=rng, stratify=stratify)
            X, X_val, targets, targets_val = parts[:4]
            weights, w_val = parts[4:] if weights is not None else (None, None)
            if len(X_val) < 2:  # R^2 is undefined, and an accuracy of 0 or 1 meaningless
                raise ValueError(
                    f"early_stopping needs at least 2 validation samples, got {len(X_val)} "
                    f"(validation_fraction={self.validation_fraction} of {n} samples); "
                    "raise validation_fraction or pass more samples")
            validation = (X_val, targets_val, w_val)
        keep = params["warm_start"] and hasattr(self, "network_") and (
            self.network_.sizes == (X.shape[1], *params["hidden_layer_sizes"], n_outputs))
        if not keep:
            self._new_network(params, X.shape[1], n_outputs, rng)
        self._train(params, X, targets, weights, params["max_iter"], validation,
                    incremental=False)

    def _partial_fit(self, X, targets, weights, params: dict, n_outputs: int) -> None:
        if not hasattr(self, "network_"):
            self._new_network(params, X.shape[1], n_outputs,
                              check_random_state(self.random_state))
            self._optimizer = None
        self._train(params, X, targets, weights, 1, None, incremental=True)

    def _output(self, X) -> np.ndarray:
        """a^L for X, after the fitted-state and input checks."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype)
        return self.network_.feedforward(X)

    # -- scikit-learn's fitted attributes, read from the network ------------------------
    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrix of each layer, shape (n_in, n_out) as scikit-learn's: W^l transposed
        (live views of the network's parameters)."""
        return [w.T for w in self._network().weights]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vector of each layer (live views)."""
        return list(self._network().biases)

    @property
    def n_layers_(self) -> int:
        """Layers, input and output included."""
        return len(self._network().sizes)

    @property
    def out_activation_(self) -> str:
        """Activation of the output layer (scikit-learn's names)."""
        name = self._network().activations[-1]
        return {"sigmoid": "logistic"}.get(name, name)

    def _network(self) -> Network:
        try:
            return self.__dict__["network_"]
        except KeyError:
            raise AttributeError(f"this {type(self).__name__} is not fitted yet") from None

    def _sample_weight(self, sample_weight, X) -> np.ndarray | None:
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)


_COMMON_PARAMETERS = """
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Neurons of each hidden layer; ``()`` gives a network without hidden layers.
    activation : {"relu", "tanh", "logistic", "identity", "sigmoid", "leaky_relu"}, \
default="relu"
        Activation of the hidden layers (``logistic`` is ``sigmoid``).
    solver : {"adam", "sgd"}, default="adam"
        :class:`bpcore.optim.Adam` or :class:`bpcore.optim.SGD` (see the module
        for the mapping); scikit-learn's ``"lbfgs"`` is refused.
    alpha : float, default=0.0001
        scikit-learn's L2 coefficient: each step sees ``dC/dW + (alpha / m) W``.
    batch_size : int or "auto", default="auto"
        Examples per mini-batch; ``"auto"`` is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule of the step size with ``solver="sgd"`` (see
        :mod:`bpcore.schedules`).
    learning_rate_init : float, default=0.001
        Initial step size.
    power_t : float, default=0.5
        Exponent of ``"invscaling"``.
    max_iter : int, default=200
        Most epochs of ``fit``.
    shuffle : bool, default=True
        Shuffle the samples in every epoch.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling and the validation split.
    tol : float, default=1e-4
        Improvement of the loss (or of the validation score) that counts as one.
    verbose : bool or int, default=False
        Print the loss after each epoch.
    warm_start : bool, default=False
        ``fit`` continues from the parameters of the last ``fit`` (with a new
        optimizer, as scikit-learn).
    momentum : float, default=0.9
        SGD momentum in [0, 1).
    nesterovs_momentum : bool, default=True
        Nesterov's momentum (SGD with momentum > 0).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, stop when its
        score has not improved by ``tol`` for more than ``n_iter_no_change``
        epochs, and keep the parameters of the best epoch.  ``partial_fit``
        ignores it.
    validation_fraction : float, default=0.1
        Share of the training data held out with ``early_stopping``.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's decay rates of the moment estimates.
    epsilon : float, default=1e-8
        Adam's epsilon.
    n_iter_no_change : int or inf, default=10
        Epochs without improvement tolerated (training stops after one more).
    max_fun : int, default=15000
        Accepted for scikit-learn's parameter sets (it is lbfgs's); unused.
    num_threads : int, optional
        OpenMP threads of the network; default :func:`bpcore.get_num_threads`.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the network; inputs are converted to it.
    init : {"he", "xavier", "scaled_gaussian", "gaussian"}, optional
        Initial weights; default "he" for relu/leaky_relu hidden layers, "xavier"
        otherwise.
"""

_COMMON_ATTRIBUTES = """
    network_ : bpcore.Network
        The trained network.
    coefs_ : list of ndarray
        ``coefs_[i]`` is the weight matrix of layer i + 1, shape (n_in, n_out)
        (scikit-learn's orientation; views of ``network_.weights`` transposed).
    intercepts_ : list of ndarray
        ``intercepts_[i]`` is the bias vector of layer i + 1.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of str
        Column names of X in ``fit``, when X is a DataFrame with string column names.
    loss_curve_ : list of float
        scikit-learn's loss after each epoch (see the module), over the ``fit``
        and the ``partial_fit`` calls since the last fresh ``fit``.
    best_loss_ : float or None
        The smallest of ``loss_curve_``; None with ``early_stopping``.
    n_iter_ : int
        Epochs run by the last ``fit`` (1 after ``partial_fit``).
    t_ : int
        Training samples seen (epochs times samples) since the last fresh ``fit``.
    validation_scores_ : list of float or None
        Validation score after each epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        Best of ``validation_scores_`` with ``early_stopping``, else None.
    n_layers_ : int
        Layers, input and output included.
    out_activation_ : str
        Activation of the output layer.
"""

class BPClassifier(ClassifierMixin, _BPEstimator):
    __doc__ = f"""Multi-layer perceptron classifier, scikit-learn's ``MLPClassifier`` in bpcore.

    The output layer has one neuron per class, also for two classes.

    Parameters
    ----------{_COMMON_PARAMETERS.rstrip()}
    cost : {{"log_likelihood", "cross_entropy", "quadratic", "squared_error"}}, \
default="log_likelihood"
        Cost of the one-hot encoded targets: ``log_likelihood`` (scikit-learn's
        log-loss) with a softmax output layer; the others with sigmoid outputs,
        whose values ``predict_proba`` normalises to sum to 1.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the cost, ``{{label: weight}}`` (absent
        labels weigh 1) or ``"balanced"``, ``n_samples / (n_classes *
        count(label))``; multiplied into ``sample_weight``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted.{_COMMON_ATTRIBUTES.rstrip()}

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from bpcore.sklearn import BPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(),
    ...                       BPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01,
    ...                                    random_state=0))
    >>> model.fit(X, y).score(X, y) > 0.95
    True
    >>> model.predict_proba(X[:2]).shape
    (2, 3)
    >>> model[-1].network_.sizes
    (4, 16, 3)
    """

    _COSTS = ("log_likelihood", "cross_entropy", "quadratic", "squared_error")

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 cost="log_likelihood", class_weight=None, num_threads=None, dtype="float64",
                 init=None):
        super().__init__(hidden_layer_sizes, activation, solver, alpha, batch_size,
                         learning_rate, learning_rate_init, power_t, max_iter, shuffle,
                         random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                         early_stopping, validation_fraction, beta_1, beta_2, epsilon,
                         n_iter_no_change, max_fun, num_threads, dtype, init)
        self.cost = cost
        self.class_weight = class_weight

    def _cost(self) -> str:
        return check_name("cost", self.cost, self._COSTS)

    @staticmethod
    def _output_activation(params: dict) -> str:
        return "softmax" if params["cost"] == "log_likelihood" else "sigmoid"

    @staticmethod
    def _loss_scale() -> float:
        return 1.0

    def _validation_score(self, X: np.ndarray, labels: np.ndarray, w) -> float:
        correct = np.argmax(self.network_.feedforward(X), axis=1) == labels
        return float(np.average(correct, weights=w))

    def _encode(self, y: np.ndarray) -> np.ndarray:
        """Indices into ``classes_`` of the labels y; ValueError for labels not in it."""
        indices = np.searchsorted(self.classes_, y)
        unknown = (indices >= len(self.classes_)) | (
            self.classes_[np.minimum(indices, len(self.classes_) - 1)] != y)
        if unknown.any():
            raise ValueError(f"y contains labels not in classes_ {self.classes_.tolist()}: "
                             f"{np.unique(y[unknown]).tolist()}")
        return indices

    def _set_classes(self, classes: np.ndarray) -> None:
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes to fit, got "
                             f"{len(classes)} class: {classes.tolist()}")
        self.classes_ = classes

    def _weights(self, sample_weight, labels: np.ndarray) -> np.ndarray | None:
        """sample_weight times the class weights of the labels (indices into classes_)."""
        class_weight = self.class_weight
        if class_weight is None:
            return sample_weight
        if isinstance(class_weight, dict):
            unknown = [k for k in class_weight if k not in set(self.classes_.tolist())]
            if unknown:
                raise ValueError(f"class_weight has labels {unknown} that are not classes "
                                 f"{self.classes_.tolist()}")
            class_weight = {int(np.searchsorted(self.classes_, k)): v
                            for k, v in class_weight.items()}
        cw = class_sample_weight(class_weight, labels, len(self.classes_))
        return cw if sample_weight is None else sample_weight * cw

    @property
    def n_outputs_(self) -> int:
        """Output neurons: one per class."""
        return len(self._network().biases[-1])

    def fit(self, X, y, sample_weight=None) -> "BPClassifier":
        """Train on (X, y): a new network, or with ``warm_start`` the last one.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training inputs.
        y : array_like of shape (n_samples,)
            Class labels (any sortable values).
        sample_weight : array_like of shape (n_samples,), optional
            Weight of each sample in the cost (and in the validation score).

        Returns
        -------
        self : BPClassifier
            The fitted estimator.
        """
        params = self._checked_params()
        X, y = validate_data(self, X, y, dtype=params["dtype"],
                             reset=not (params["warm_start"] and hasattr(self, "network_")))
        check_classification_targets(y)
        classes = np.unique(y)
        if params["warm_start"] and hasattr(self, "classes_") and hasattr(self, "network_"):
            if not np.array_equal(classes, self.classes_):
                raise ValueError(f"warm_start can only be used where y has the same classes as "
                                 f"in the previous call to fit: {self.classes_.tolist()}, got "
                                 f"{classes.tolist()}")
        self._set_classes(classes)
        labels = self._encode(y)
        sample_weight = self._sample_weight(sample_weight, X)
        weights = self._weights(sample_weight, labels)
        # Stratify the early-stopping split when every class can be on both sides of it
        # (as train_test_split requires); on smaller data split at random.
        n, k = len(labels), len(self.classes_)
        n_val = math.ceil(params["validation_fraction"] * n)
        stratified = np.bincount(labels).min() >= 2 and min(n_val, n - n_val) >= k
        self._fit(X, labels, weights, params, k, stratify=labels if stratified else None)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None) -> "BPClassifier":
        """Train one epoch on (X, y), building the network on the first call.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training inputs.
        y : array_like of shape (n_samples,)
            Class labels, all among ``classes``.
        classes : array_like of shape (n_classes,), optional
            Every class that will ever occur: required on the first call (or
            after ``fit``, optional), and must then equal ``classes_``.
        sample_weight : array_like of shape (n_samples,), optional
            Weight of each sample in the cost.

        Returns
        -------
        self : BPClassifier
            The updated estimator.
        """
        params = self._checked_params()
        first = not hasattr(self, "network_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        X, y = validate_data(self, X, y, reset=first, dtype=params["dtype"])
        check_classification_targets(y)
        if first:
            self._set_classes(np.unique(np.asarray(classes)))
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(f"classes {np.unique(classes).tolist()} differ from classes_ "
                             f"{self.classes_.tolist()} of the earlier calls")
        labels = self._encode(y)
        weights = self._weights(self._sample_weight(sample_weight, X), labels)
        self._partial_fit(X, labels, weights, params, len(self.classes_))
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each class in ``classes_`` for each row of X.

        The softmax output for ``cost="log_likelihood"``; the sigmoid outputs
        divided by their sum otherwise.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Rows sum to 1.
        """
        out = self._output(X)
        if self.network_.activations[-1] == "softmax":
            return out
        total = out.sum(axis=1, keepdims=True)
        # All sigmoids underflowing to 0 means no preference: uniform probabilities.
        return np.divide(out, total, out=np.full_like(out, 1 / out.shape[1]), where=total > 0)

    def predict_log_proba(self, X) -> np.ndarray:
        """The logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each row of X.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        out = self._output(X)
        return self.classes_[np.argmax(out, axis=1)]


class BPRegressor(RegressorMixin, _BPEstimator):
    __doc__ = f"""Multi-layer perceptron regressor, scikit-learn's ``MLPRegressor`` in bpcore.

    The output layer is linear (identity activation), one neuron per target.
    The network is trained on standardised targets,
    ``(y - target_mean_) / target_scale_``, and ``predict`` undoes that: a fixed
    learning rate is not invariant to the units of y, and without it targets in
    the hundreds make it diverge or crawl.  ``loss_curve_`` is in these
    standardised units.

    Parameters
    ----------
    loss : {{"squared_error"}}, default="squared_error"
        Half the squared error (bpcore's ``quadratic`` cost); scikit-learn's
        ``"poisson"`` is refused.{_COMMON_PARAMETERS.rstrip()}

    Attributes
    ----------
    n_outputs_ : int
        Number of targets; ``predict`` returns a 1-D array when it is 1.
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        Mean and standard deviation (1 for a constant target) of each target in
        ``fit``, or in the first ``partial_fit`` call, weighted by ``sample_weight``;
        ``network_`` predicts
        ``(y - target_mean_) / target_scale_``.{_COMMON_ATTRIBUTES.rstrip()}

    Examples
    --------
    >>> import numpy as np
    >>> from bpcore.sklearn import BPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, size=(500, 2))
    >>> y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    >>> model = BPRegressor(hidden_layer_sizes=(32,), activation="tanh",
    ...                     learning_rate_init=0.01, random_state=0)
    >>> model.fit(X, y).score(X, y) > 0.95
    True
    >>> model.predict(X[:3]).shape
    (3,)
    """

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 num_threads=None, dtype="float64", init=None):
        super().__init__(hidden_layer_sizes, activation, solver, alpha, batch_size,
                         learning_rate, learning_rate_init, power_t, max_iter, shuffle,
                         random_state, tol, verbose, warm_start, momentum, nesterovs_momentum,
                         early_stopping, validation_fraction, beta_1, beta_2, epsilon,
                         n_iter_no_change, max_fun, num_threads, dtype, init)
        self.loss = loss

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _cost(self) -> str:
        if self.loss == "poisson":
            raise ValueError("loss 'poisson' is not available in bpcore: use "
                             "loss='squared_error'")
        check_name("loss", self.loss, ("squared_error",))
        return "quadratic"

    @staticmethod
    def _output_activation(params: dict) -> str:
        return "identity"

    def _loss_scale(self) -> float:
        return float(self.n_outputs_)

    def _validation_score(self, X: np.ndarray, targets: np.ndarray, w) -> float:
        return float(r2_score(targets, self.network_.feedforward(X), sample_weight=w))

    def _targets(self, X, y, sample_weight, reset: bool, dtype: np.dtype):
        """``(X, targets, sample_weight)`` validated, y as an (n_samples, n_outputs)
        array standardised as in fit (by the weighted mean and deviation)."""
        X, y = validate_data(self, X, y, reset=reset, multi_output=True, y_numeric=True,
                             dtype=dtype)
        sample_weight = self._sample_weight(sample_weight, X)
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if reset:
            self.n_outputs_ = y.shape[1]
            self.target_mean_ = np.average(y, axis=0, weights=sample_weight)
            std = np.sqrt(np.average((y - self.target_mean_) ** 2, axis=0, weights=sample_weight))
            self.target_scale_ = np.where(std > 0, std, 1.0)
        elif y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[1]} target(s) per example, the earlier calls "
                             f"had {self.n_outputs_}")
        return X, ((y - self.target_mean_) / self.target_scale_).astype(dtype), sample_weight

    def fit(self, X, y, sample_weight=None) -> "BPRegressor":
        """Train on (X, y): a new network, or with ``warm_start`` the last one.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training inputs.
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array_like of shape (n_samples,), optional
            Weight of each sample in the cost (and in the validation score).

        Returns
        -------
        self : BPRegressor
            The fitted estimator.
        """
        params = self._checked_params()
        warm = params["warm_start"] and hasattr(self, "network_")
        X, targets, sample_weight = self._targets(X, y, sample_weight, not warm, params["dtype"])
        self._fit(X, targets, sample_weight, params, self.n_outputs_, stratify=None)
        return self

    def partial_fit(self, X, y, sample_weight=None) -> "BPRegressor":
        """Train one epoch on (X, y), building the network on the first call.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training inputs.
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
            Targets, as many per example as in the first call.
        sample_weight : array_like of shape (n_samples,), optional
            Weight of each sample in the cost.

        Returns
        -------
        self : BPRegressor
            The updated estimator.
        """
        params = self._checked_params()
        first = not hasattr(self, "network_")
        X, targets, sample_weight = self._targets(X, y, sample_weight, first, params["dtype"])
        self._partial_fit(X, targets, sample_weight, params, self.n_outputs_)
        return self

    def predict(self, X) -> np.ndarray:
        """Predicted targets for each row of X.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            1-D when ``n_outputs_`` is 1.
        """
        out = self._output(X) * self.target_scale_ + self.target_mean_
        return out[:, 0] if self.n_outputs_ == 1 else out


__all__ = ["BPClassifier", "BPRegressor", "HIDDEN_ACTIVATIONS"]
