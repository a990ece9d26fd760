"""scikit-learn estimators trained by bpcore: :class:`BPClassifier` and :class:`BPRegressor`.

Both wrap a :class:`bpcore.Network` of ``n_features - hidden_layer_sizes -
n_outputs`` neurons and follow scikit-learn's estimator API, so they work in
pipelines, grid searches, cross-validation, ``clone`` and ``pickle``.  This
module imports scikit-learn (>= 1.6); ``import bpcore`` does not.

Training is :meth:`bpcore.Network.fit`: mini-batch SGD with momentum and L2
weight decay, one call for all epochs, with a per-epoch callback that records
the loss curve and does early stopping.  ``partial_fit`` runs one epoch per
call; as every :meth:`~bpcore.Network.fit` call, it starts with zero momentum
velocities.  A fit that learns nothing warns with :class:`bpcore.ConvergenceWarning`
(from :meth:`bpcore.Network.fit`, passed on unchanged).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

try:
    import sklearn  # noqa: F401 - the check that names the extra
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError('bpcore.sklearn needs scikit-learn, the extra "sklearn": pip install '
                      'scikit-learn (or pip install ".[sklearn]" in bpcore\'s source tree)'
                      ) from exc
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets

try:
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the installed scikit-learn
    raise ImportError("bpcore.sklearn needs scikit-learn >= 1.6 (for "
                      "sklearn.utils.validation.validate_data)") from exc

from ._config import ACTIVATIONS, INITS, resolve_dtype
from ._checks import check_int, check_name, check_num_threads, check_real
from .network import Network

#: Activations a hidden layer may use (softmax is for output layers only).
HIDDEN_ACTIVATIONS = tuple(a for a in ACTIVATIONS if a != "softmax")


def _check_hidden_layer_sizes(value) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"hidden_layer_sizes must be a sequence of layer widths, got {value!r}")
    return tuple(check_int(f"hidden_layer_sizes[{i}]", s, 1) for i, s in enumerate(value))


class _BPEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, the network, training, pickling.

    Subclasses set ``_COSTS`` (the costs they accept) and implement
    ``_output_activation``, ``_validation_score`` and the data handling of
    ``fit``/``partial_fit``.
    """

    _COSTS: tuple[str, ...]

    # -- parameters --------------------------------------------------------------------
    def _checked_params(self) -> dict:
        """The constructor parameters, checked; raises naming the first bad one."""
        dtype = resolve_dtype(self.dtype)
        activation = check_name("activation", self.activation, HIDDEN_ACTIVATIONS)
        init = self.init
        if init is None:
            init = "he" if activation in ("relu", "leaky_relu") else "xavier"
        if not isinstance(self.early_stopping, (bool, np.bool_)):
            raise TypeError(f"early_stopping must be a bool, got {self.early_stopping!r}")
        check_num_threads(self.num_threads)
        checked = {
            "hidden_layer_sizes": _check_hidden_layer_sizes(self.hidden_layer_sizes),
            "activation": activation,
            "cost": check_name("cost", self.cost, self._COSTS),
            "learning_rate": check_real("learning_rate", self.learning_rate, minimum=0.0),
            "batch_size": check_int("batch_size", self.batch_size, 1),
            "epochs": check_int("epochs", self.epochs, 1),
            "l2": check_real("l2", self.l2, minimum=0.0),
            "momentum": check_real("momentum", self.momentum, minimum=0.0, below=1.0),
            "validation_fraction": check_real("validation_fraction", self.validation_fraction,
                                              minimum=0.0, below=1.0),
            "n_iter_no_change": check_int("n_iter_no_change", self.n_iter_no_change, 1),
            "tol": check_real("tol", self.tol, minimum=0.0),
            "dtype": dtype,
            "init": check_name("init", init, INITS),
        }
        if self.early_stopping and checked["validation_fraction"] == 0.0:
            raise ValueError("validation_fraction must be > 0 with early_stopping=True")
        return checked

    # -- the network -------------------------------------------------------------------
    def _new_network(self, params: dict, n_inputs: int, n_outputs: int,
                     rng: np.random.RandomState, early_stopping: bool = False) -> None:
        """A new ``network_``, and the training record reset."""
        hidden = params["hidden_layer_sizes"]
        self.network_ = Network(
            [n_inputs, *hidden, n_outputs],
            activations=[params["activation"]] * len(hidden) + [self._output_activation(params)],
            cost=params["cost"], dtype=params["dtype"], init=params["init"],
            seed=int(rng.randint(np.iinfo(np.int32).max)), num_threads=self.num_threads)
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.validation_scores_ = [] if early_stopping else None
        self.best_validation_score_ = -np.inf if early_stopping else None

    def _train(self, params: dict, X: np.ndarray, targets: np.ndarray, epochs: int,
               validation: tuple | None = None) -> None:
        """Run ``epochs`` epochs of SGD; with ``validation``, stop early and keep the best epoch.

        Early stopping follows :class:`sklearn.neural_network.MLPClassifier`:
        after each epoch the validation score (accuracy or R^2) is computed;
        training stops once it has failed to beat the best score so far by
        ``tol`` for ``n_iter_no_change`` consecutive epochs, and the
        parameters of the best epoch are restored.
        """
        net = self.network_
        best = None
        stale = 0

        def after_epoch(epoch, history):
            nonlocal best, stale
            self.loss_curve_.append(history.train_cost[-1])
            self.n_iter_ += 1
            if validation is None:
                return
            score = self._validation_score(*validation)
            self.validation_scores_.append(score)
            stale = stale + 1 if score < self.best_validation_score_ + params["tol"] else 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                best = ([w.copy() for w in net.weights], [b.copy() for b in net.biases])
            return stale >= params["n_iter_no_change"]  # True stops fit

        net.fit(X, targets, epochs=epochs, batch_size=params["batch_size"],
                lr=params["learning_rate"], l2=params["l2"], momentum=params["momentum"],
                callback=after_epoch)
        if best is not None:
            net.weights, net.biases = best

    def _fit(self, X: np.ndarray, targets: np.ndarray, params: dict, n_outputs: int,
             stratify: np.ndarray | None) -> None:
        """Build a new network and train it for ``epochs`` epochs (see :meth:`_train`)."""
        rng = check_random_state(self.random_state)
        validation = None
        if self.early_stopping:
            n = len(X)
            X, X_val, targets, targets_val = train_test_split(
                X, targets, test_size=params["validation_fraction"], random_state=rng,
                stratify=stratify)
            if len(X_val) < 2:  # R^2 is undefined, and an accuracy of 0 or 1 meaningless
                raise ValueError(
                    f"early_stopping needs at least 2 validation samples, got {len(X_val)} "
                    f"(validation_fraction={self.validation_fraction} of {n} samples); "
                    "raise validation_fraction or pass more samples")
            validation = (X_val, targets_val)
        self._new_network(params, X.shape[1], n_outputs, rng, self.early_stopping)
        self._train(params, X, targets, params["epochs"], validation)

    def _output(self, X) -> np.ndarray:
        """a^L for X, after the fitted-state and input checks."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype)
        return self.network_.feedforward(X)


_COMMON_PARAMETERS = """
    hidden_layer_sizes : sequence of int, default=(100,)
        Neurons of each hidden layer; ``()`` gives a network without hidden layers.
    activation : {"relu", "leaky_relu", "tanh", "sigmoid", "identity"}, default="relu"
        Activation of the hidden layers.
    learning_rate : float, default=0.1 (classifier), 0.01 (regressor)
        SGD step size (``lr`` of :meth:`bpcore.Network.fit`).
    batch_size : int, default=32
        Examples per mini-batch (the last batch of an epoch may be smaller).
    epochs : int, default=50
        Epochs of ``fit`` (fewer with early stopping); ``partial_fit`` runs one.
    l2 : float, default=0.0
        L2 weight decay lambda: the step adds ``(l2 / n) * w`` to dC/dw.
    momentum : float, default=0.9
        Momentum mu in [0, 1): ``v <- mu v - lr (dC/dw + (l2 / n) w); w <- w + v``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling and the validation split.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data, stop when its
        score has not improved by ``tol`` for ``n_iter_no_change`` epochs, and
        keep the parameters of the best epoch.  ``partial_fit`` ignores it.
    validation_fraction : float, default=0.1
        Share of the training data held out with ``early_stopping``.
    n_iter_no_change : int, default=5
        Epochs without improvement that end training with ``early_stopping``.
    tol : float, default=1e-4
        Improvement of the validation score that counts as one.
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
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of str
        Column names of X in ``fit``, when X is a DataFrame with string column names.
    loss_curve_ : list of float
        Mean training cost of each epoch (without the L2 term), over all
        ``fit``/``partial_fit`` calls since the last ``fit``.
    n_iter_ : int
        Epochs run since the last ``fit``.
    validation_scores_ : list of float or None
        Validation score after each epoch with ``early_stopping``, else None.
    best_validation_score_ : float or None
        Best of ``validation_scores_`` with ``early_stopping``, else None.
"""


class BPClassifier(ClassifierMixin, _BPEstimator):
    __doc__ = f"""Multi-layer perceptron classifier trained by bpcore's backpropagation and SGD.

    The output layer has one neuron per class, also for two classes.

    Parameters
    ----------{_COMMON_PARAMETERS.rstrip()}
    cost : {{"log_likelihood", "cross_entropy", "quadratic", "squared_error"}}, \
default="log_likelihood"
        Cost of the one-hot encoded targets: ``log_likelihood`` with a softmax
        output layer; the others with sigmoid outputs, whose values
        ``predict_proba`` normalises to sum to 1 (as one-vs-rest classifiers do).

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
    ...                       BPClassifier(hidden_layer_sizes=(16,), epochs=30, random_state=0))
    >>> model.fit(X, y).score(X, y) > 0.95
    True
    >>> model.predict_proba(X[:2]).shape
    (2, 3)
    >>> model[-1].network_.sizes
    (4, 16, 3)
    """

    _COSTS = ("log_likelihood", "cross_entropy", "quadratic", "squared_error")

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", cost="log_likelihood",
                 learning_rate=0.1, batch_size=32, epochs=50, l2=0.0, momentum=0.9,
                 random_state=None, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=5, tol=1e-4, num_threads=None, dtype="float64", init=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.cost = cost
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.l2 = l2
        self.momentum = momentum
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.num_threads = num_threads
        self.dtype = dtype
        self.init = init

    @staticmethod
    def _output_activation(params: dict) -> str:
        return "softmax" if params["cost"] == "log_likelihood" else "sigmoid"

    def _validation_score(self, X: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(np.argmax(self.network_.feedforward(X), axis=1) == labels))

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

    def fit(self, X, y) -> "BPClassifier":
        """Train a new network on (X, y).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training inputs.
        y : array_like of shape (n_samples,)
            Class labels (any sortable values).

        Returns
        -------
        self : BPClassifier
            The fitted estimator.
        """
        params = self._checked_params()
        X, y = validate_data(self, X, y, dtype=params["dtype"])
        check_classification_targets(y)
        self._set_classes(np.unique(y))
        labels = self._encode(y)
        # Stratify the early-stopping split when every class can be on both sides of it
        # (as train_test_split requires); on smaller data split at random.
        n, k = len(labels), len(self.classes_)
        n_val = math.ceil(params["validation_fraction"] * n)
        stratified = np.bincount(labels).min() >= 2 and min(n_val, n - n_val) >= k
        self._fit(X, labels, params, k, stratify=labels if stratified else None)
        return self

    def partial_fit(self, X, y, classes=None) -> "BPClassifier":
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
        if first:
            self._new_network(params, X.shape[1], len(self.classes_),
                              check_random_state(self.random_state))
        self._train(params, X, labels, epochs=1)
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
    __doc__ = f"""Multi-layer perceptron regressor trained by bpcore's backpropagation and SGD.

    The output layer is linear (identity activation), one neuron per target.
    The network is trained on standardised targets,
    ``(y - target_mean_) / target_scale_``, and ``predict`` undoes that: SGD with a fixed learning rate
    is not invariant to the units of y, and without it targets in the hundreds
    make the default learning rate diverge.  ``loss_curve_`` is in these
    standardised units.

    Parameters
    ----------{_COMMON_PARAMETERS.rstrip()}
    cost : {{"quadratic", "squared_error"}}, default="quadratic"
        ``1/2 ||a - y||^2`` or ``||a - y||^2`` per example.

    Attributes
    ----------
    n_outputs_ : int
        Number of targets; ``predict`` returns a 1-D array when it is 1.
    target_mean_, target_scale_ : ndarray of shape (n_outputs,)
        Mean and standard deviation (1 for a constant target) of each target in
        ``fit``, or in the first ``partial_fit`` call; ``network_`` predicts
        ``(y - target_mean_) / target_scale_``.{_COMMON_ATTRIBUTES.rstrip()}

    Examples
    --------
    >>> import numpy as np
    >>> from bpcore.sklearn import BPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-1, 1, size=(500, 2))
    >>> y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    >>> model = BPRegressor(hidden_layer_sizes=(32,), activation="tanh", random_state=0)
    >>> model.fit(X, y).score(X, y) > 0.95
    True
    >>> model.predict(X[:3]).shape
    (3,)
    """

    _COSTS = ("quadratic", "squared_error")

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", cost="quadratic",
                 learning_rate=0.01, batch_size=32, epochs=50, l2=0.0, momentum=0.9,
                 random_state=None, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=5, tol=1e-4, num_threads=None, dtype="float64", init=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.cost = cost
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.l2 = l2
        self.momentum = momentum
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.num_threads = num_threads
        self.dtype = dtype
        self.init = init

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @staticmethod
    def _output_activation(params: dict) -> str:
        return "identity"

    def _validation_score(self, X: np.ndarray, targets: np.ndarray) -> float:
        return float(r2_score(targets, self.network_.feedforward(X)))

    def _targets(self, X, y, reset: bool, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Validated X, and y as an (n_samples, n_outputs) array standardised as in fit."""
        X, y = validate_data(self, X, y, reset=reset, multi_output=True, y_numeric=True,
                             dtype=dtype)
        y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if reset:
            self.n_outputs_ = y.shape[1]
            self.target_mean_ = y.mean(axis=0)
            std = y.std(axis=0)
            self.target_scale_ = np.where(std > 0, std, 1.0)
        elif y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[1]} target(s) per example, the earlier calls "
                             f"had {self.n_outputs_}")
        return X, ((y - self.target_mean_) / self.target_scale_).astype(dtype)

    def fit(self, X, y) -> "BPRegressor":
        """Train a new network on (X, y).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training inputs.
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : BPRegressor
            The fitted estimator.
        """
        params = self._checked_params()
        X, targets = self._targets(X, y, True, params["dtype"])
        self._fit(X, targets, params, self.n_outputs_, stratify=None)
        return self

    def partial_fit(self, X, y) -> "BPRegressor":
        """Train one epoch on (X, y), building the network on the first call.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            Training inputs.
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
            Targets, as many per example as in the first call.

        Returns
        -------
        self : BPRegressor
            The updated estimator.
        """
        params = self._checked_params()
        first = not hasattr(self, "network_")
        X, targets = self._targets(X, y, first, params["dtype"])
        if first:
            self._new_network(params, X.shape[1], self.n_outputs_,
                              check_random_state(self.random_state))
        self._train(params, X, targets, epochs=1)
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
