"""bpcore.sklearn: BPClassifier and BPRegressor as scikit-learn estimators."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

# bpcore.sklearn needs scikit-learn >= 1.6; parametrize_with_checks(xfail_strict=) is 1.8's.
pytest.importorskip("sklearn", minversion="1.8")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_iris, make_regression  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import bpcore  # noqa: E402
from bpcore.sklearn import BPClassifier, BPRegressor  # noqa: E402
from conftest import params_of  # noqa: E402

# One thread throughout: these networks are small (tens of units, batches of 32),
# where OpenMP barriers cost more than they save; results do not depend on the
# thread count (test_training.py checks that).
FAST = {"hidden_layer_sizes": (10,), "epochs": 20, "num_threads": 1}


# -- scikit-learn's own estimator checks -----------------------------------------------------

# random_state=0: checks that do not seed the estimator themselves stay deterministic.
# validation_fraction=0.2 with early stopping: some checks fit 10 samples, and the
# validation set needs 2.
@parametrize_with_checks(
    [
        BPClassifier(**FAST, random_state=0),
        BPClassifier(**FAST, random_state=0, cost="cross_entropy", activation="tanh",
                     dtype="float32"),
        BPClassifier(**FAST, random_state=0, early_stopping=True, validation_fraction=0.2),
        BPRegressor(**FAST, random_state=0),
        BPRegressor(**FAST, random_state=0, learning_rate=0.01, dtype="float32",
                    early_stopping=True, validation_fraction=0.2),
    ],
    xfail_strict=True,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- use with scikit-learn's tools --------------------------------------------------------------

@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def regression():
    # Unstandardised targets (|y| up to ~400) on purpose: BPRegressor standardises them.
    X, y = make_regression(n_samples=300, n_features=5, noise=5.0, random_state=0)
    return train_test_split(X, y, test_size=0.3, random_state=0)


def test_pipeline_with_standard_scaler(iris, regression):
    X_train, X_test, y_train, y_test = iris
    model = make_pipeline(StandardScaler(), BPClassifier(**FAST, random_state=0))
    # iris is nearly separable after scaling; a 10-unit network reaches 0.9+ on held-out
    # data in 20 epochs (observed 0.96-1.0 for random_state 0-9)
    assert model.fit(X_train, y_train).score(X_test, y_test) >= 0.9
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.array_equal(model.predict(X_test), model[-1].classes_[proba.argmax(axis=1)])

    X_train, X_test, y_train, y_test = regression
    model = make_pipeline(StandardScaler(), BPRegressor(**FAST, random_state=0))
    # linear targets with noise 5 on a signal of std ~150 (observed R^2 0.993-0.997 for
    # random_state 0-9)
    assert model.fit(X_train, y_train).score(X_test, y_test) >= 0.95


def test_grid_search(iris):
    X_train, X_test, y_train, y_test = iris
    grid = {"bpclassifier__hidden_layer_sizes": [(4,), (16,)],
            "bpclassifier__learning_rate": [0.01, 0.1]}
    pipe = make_pipeline(StandardScaler(), BPClassifier(epochs=10, num_threads=1, random_state=0))
    search = GridSearchCV(pipe, grid, cv=3).fit(X_train, y_train)
    assert len(search.cv_results_["params"]) == 4
    assert not np.isnan(search.cv_results_["mean_test_score"]).any()
    # 10 epochs: lr=0.01 is too slow, so the search must pick lr=0.1 (it does for
    # random_state 0-4, with cross-validated accuracies 0.88-0.93 and test 0.91-1.0)
    assert search.best_params_["bpclassifier__learning_rate"] == 0.1
    assert search.best_score_ >= 0.85
    assert search.score(X_test, y_test) >= 0.85
    assert not hasattr(pipe[-1], "network_")  # the search fitted clones
    best = search.best_estimator_[-1]
    assert best.network_.sizes[1] == search.best_params_["bpclassifier__hidden_layer_sizes"][0]


@pytest.mark.parametrize("make", [
    lambda: BPClassifier(**FAST, random_state=0),
    lambda: BPClassifier(**FAST, random_state=0, dtype="float32", cost="quadratic"),
    lambda: BPRegressor(**FAST, random_state=0),
])
def test_pickle_round_trip(make, iris):
    X_train, X_test, y_train, _ = iris
    model = make().fit(X_train, y_train)
    copy = pickle.loads(pickle.dumps(model))
    assert isinstance(copy.network_, bpcore.Network)
    assert copy.get_params() == model.get_params()
    for a, b in zip(params_of(copy.network_), params_of(model.network_)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(copy.predict(X_test), model.predict(X_test))
    if isinstance(model, BPClassifier):
        assert np.array_equal(copy.predict_proba(X_test), model.predict_proba(X_test))
    # The shuffling generator travels too: further training continues identically.
    copy.partial_fit(X_train, y_train)
    model.partial_fit(X_train, y_train)
    for a, b in zip(params_of(copy.network_), params_of(model.network_)):
        assert np.array_equal(a, b)


def test_unfitted_estimators_pickle_and_clone():
    model = BPRegressor(hidden_layer_sizes=(3, 2), l2=0.5, dtype="float32")
    copy = pickle.loads(pickle.dumps(model))
    assert copy.get_params() == model.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(np.zeros((1, 2)))


def test_clone(iris):
    X_train, _, y_train, _ = iris
    model = BPClassifier(**FAST, random_state=3, momentum=0.5).fit(X_train, y_train)
    twin = clone(model)
    assert twin.get_params() == model.get_params()
    assert not hasattr(twin, "network_") and not hasattr(twin, "classes_")
    twin.fit(X_train, y_train)  # same random_state: the same network, bitwise
    for a, b in zip(params_of(twin.network_), params_of(model.network_)):
        assert np.array_equal(a, b)


# -- what fit does -------------------------------------------------------------------------------

def _seed_of(random_state):
    """The network seed fit draws first from random_state (no early stopping)."""
    return int(np.random.RandomState(random_state).randint(np.iinfo(np.int32).max))


def test_fit_is_network_fit_with_the_estimator_parameters(iris):
    X_train, _, y_train, _ = iris
    model = BPClassifier(hidden_layer_sizes=(7, 5), activation="tanh", learning_rate=0.05,
                         batch_size=16, epochs=4, l2=0.3, momentum=0.7, random_state=5,
                         num_threads=1).fit(X_train, y_train)
    net = bpcore.Network([4, 7, 5, 3], ["tanh", "tanh", "softmax"], "log_likelihood",
                         init="xavier", seed=_seed_of(5), num_threads=1)
    history = net.fit(X_train, y_train, epochs=4, batch_size=16, lr=0.05, l2=0.3, momentum=0.7)
    for a, b in zip(params_of(model.network_), params_of(net)):
        assert np.array_equal(a, b)
    assert model.loss_curve_ == history.train_cost
    assert model.n_iter_ == 4
    assert model.validation_scores_ is None and model.best_validation_score_ is None


@pytest.mark.parametrize("activation, init", [("relu", "he"), ("leaky_relu", "he"),
                                              ("tanh", "xavier"), ("sigmoid", "xavier")])
def test_default_initialisation_follows_the_activation(activation, init, iris):
    X_train, _, y_train, _ = iris
    model = BPClassifier(**FAST, activation=activation, random_state=0).fit(X_train, y_train)
    assert model.network_.init == init
    assert BPClassifier(**FAST, activation=activation, init="gaussian").fit(
        X_train, y_train).network_.init == "gaussian"


@pytest.mark.parametrize("cost, output", [("log_likelihood", "softmax"),
                                          ("cross_entropy", "sigmoid"),
                                          ("quadratic", "sigmoid"), ("squared_error", "sigmoid")])
def test_classifier_architecture_and_probabilities(cost, output):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")  # two string classes: still two outputs
    # 100 epochs: with quadratic costs sigmoid outputs learn slowly (the learning slowdown
    # cross-entropy cures); observed: 1.0 from 50 epochs on for every cost and seed 0-4
    model = BPClassifier(**{**FAST, "epochs": 100}, cost=cost, random_state=0).fit(X, y)
    assert model.network_.sizes == (3, 10, 2)
    assert model.network_.activations == ("relu", output)
    assert model.network_.cost_name == cost
    assert model.classes_.tolist() == ["no", "yes"]
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert set(model.predict(X)) <= {"no", "yes"}
    assert model.score(X, y) >= 0.95  # a linear boundary on one feature


def test_probabilities_of_fully_saturated_sigmoids_are_uniform():
    X, y = np.array([[0.0], [1.0]]), np.array([0, 1])
    model = BPClassifier(hidden_layer_sizes=(), cost="cross_entropy", epochs=1,
                         num_threads=1).fit(X, y)
    model.network_.weights[0][...] = 0
    model.network_.biases[0][...] = -1e4  # sigmoid(-1e4) underflows to exactly 0
    assert np.array_equal(model.predict_proba(X), np.full((2, 2), 0.5))


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="needs at least 2 classes to fit, got 1 class"):
        BPClassifier(**FAST).fit(np.zeros((5, 2)), np.ones(5))


def test_regressor_targets_are_standardised_and_shapes_kept(regression):
    X_train, X_test, y_train, _ = regression
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    model = BPRegressor(**FAST, random_state=0).fit(X_train, y_train)
    assert model.network_.sizes == (5, 10, 1)
    assert model.network_.activations == ("relu", "identity")
    assert model.target_mean_ == pytest.approx([y_train.mean()])
    assert model.target_scale_ == pytest.approx([y_train.std()])
    assert model.predict(X_test).shape == (len(X_test),)
    # Changing the units of y changes nothing but the units of the predictions: the
    # network sees the same standardised targets up to one rounding each, and 20
    # epochs of stable training keep such differences tiny (observed 4e-14 relative).
    scaled = BPRegressor(**FAST, random_state=0).fit(X_train, 1000 * y_train - 7)
    np.testing.assert_allclose(scaled.predict(X_test), 1000 * model.predict(X_test) - 7,
                               rtol=1e-9, atol=1e-9 * 1000 * np.abs(y_train).max())
    # two targets, one constant (scale 1): predictions have two columns
    Y = np.column_stack([y_train, np.full_like(y_train, 4.0)])
    two = BPRegressor(**FAST, random_state=0).fit(X_train, Y)
    assert two.n_outputs_ == 2 and two.target_scale_[1] == 1.0
    assert two.predict(X_test).shape == (len(X_test), 2)


def test_divergence_is_reported():
    X, y = make_regression(n_samples=50, n_features=3, random_state=0)
    with pytest.raises(bpcore.DivergenceError, match="try a smaller lr"):
        BPRegressor(**FAST, learning_rate=1e3, random_state=0).fit(X * 100, y)


# -- early stopping ------------------------------------------------------------------------------

def test_early_stopping_stops_and_keeps_the_best_epoch(iris):
    X_train, _, y_train, _ = iris
    params = dict(hidden_layer_sizes=(8,), epochs=200, early_stopping=True,
                  validation_fraction=0.3, n_iter_no_change=4, tol=1e-4, random_state=1,
                  num_threads=1)
    scaled = StandardScaler().fit_transform(X_train)
    model = BPClassifier(**params).fit(scaled, y_train)
    scores = model.validation_scores_
    assert len(scores) == model.n_iter_ == len(model.loss_curve_) < 200
    # Stopped at the first epoch with n_iter_no_change epochs in a row that did not beat
    # the best score so far by tol.
    best, stale, stop = -np.inf, 0, None
    for epoch, score in enumerate(scores, start=1):
        stale = stale + 1 if score < best + 1e-4 else 0
        best = max(best, score)
        if stale >= 4:
            stop = epoch
            break
    assert stop == model.n_iter_
    assert model.best_validation_score_ == max(scores)
    # The parameters are those after the best epoch: a run that stops right there (same
    # split, same start, same shuffles) ends with the same parameters.
    best_epoch = scores.index(max(scores)) + 1
    short = BPClassifier(**{**params, "epochs": best_epoch, "n_iter_no_change": 200})
    short.fit(scaled, y_train)
    for a, b in zip(params_of(short.network_), params_of(model.network_)):
        assert np.array_equal(a, b)


def test_early_stopping_needs_two_validation_samples():
    X, y = np.random.default_rng(0).normal(size=(10, 2)), np.arange(10.0)
    with pytest.raises(ValueError, match="at least 2 validation samples, got 1"):
        BPRegressor(**FAST, early_stopping=True).fit(X, y)


# -- partial_fit -----------------------------------------------------------------------------

def test_partial_fit_is_one_network_epoch_per_call(iris):
    X_train, _, y_train, _ = iris
    model = BPClassifier(**FAST, random_state=2)
    net = bpcore.Network([4, 10, 3], ["relu", "softmax"], "log_likelihood", init="he",
                         seed=_seed_of(2), num_threads=1)
    for call in range(1, 4):
        model.partial_fit(X_train, y_train, classes=[0, 1, 2] if call == 1 else None)
        net.fit(X_train, y_train, epochs=1, batch_size=32, lr=0.1, momentum=0.9)
        assert model.n_iter_ == len(model.loss_curve_) == call
    for a, b in zip(params_of(model.network_), params_of(net)):
        assert np.array_equal(a, b)


def test_partial_fit_classes(iris):
    X_train, _, y_train, _ = iris
    model = BPClassifier(**FAST, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        model.partial_fit(X_train, y_train)
    # classes may include labels absent from the first batch
    model.partial_fit(X_train[y_train < 2], y_train[y_train < 2], classes=np.array([2, 0, 1]))
    assert model.classes_.tolist() == [0, 1, 2] and model.network_.sizes[-1] == 3
    model.partial_fit(X_train, y_train)
    with pytest.raises(ValueError, match=r"labels not in classes_ \[0, 1, 2\]: \[7\]"):
        model.partial_fit(X_train[:2], [0, 7])
    with pytest.raises(ValueError, match="differ from classes_"):
        model.partial_fit(X_train, y_train, classes=[0, 1])
    with pytest.raises(ValueError, match="features"):
        model.partial_fit(X_train[:, :3], y_train)


def test_partial_fit_after_fit_continues_training(regression):
    X_train, _, y_train, _ = regression
    model = BPRegressor(**FAST, random_state=0).fit(X_train, y_train)
    before = params_of(model.network_)
    model.partial_fit(X_train, y_train)
    assert model.n_iter_ == 21 and len(model.loss_curve_) == 21
    assert not np.array_equal(params_of(model.network_)[0], before[0])
    with pytest.raises(ValueError, match="y has 2 target"):
        model.partial_fit(X_train, np.column_stack([y_train, y_train]))


# -- DataFrames ------------------------------------------------------------------------------

def test_feature_names_from_a_dataframe(iris):
    pd = pytest.importorskip("pandas")
    X_train, X_test, y_train, _ = iris
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    model = BPClassifier(**FAST, random_state=0).fit(pd.DataFrame(X_train, columns=columns),
                                                      y_train)
    assert model.feature_names_in_.tolist() == columns
    assert model.n_features_in_ == 4
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        from_array = model.predict(X_test)
    assert np.array_equal(model.predict(pd.DataFrame(X_test, columns=columns)), from_array)
    with pytest.raises(ValueError, match="feature names should match"):
        model.predict(pd.DataFrame(X_test, columns=columns[::-1]))
    assert not hasattr(BPClassifier(**FAST).fit(X_train, y_train), "feature_names_in_")


# -- parameter checks ----------------------------------------------------------------------------

@pytest.mark.parametrize("estimator, params, exc, match", [
    (BPClassifier, {"hidden_layer_sizes": (10, 0)}, ValueError,
     r"hidden_layer_sizes\[1\] must be >= 1"),
    (BPClassifier, {"hidden_layer_sizes": "10"}, TypeError, "hidden_layer_sizes must be"),
    (BPClassifier, {"activation": "softmax"}, ValueError, "activation must be one of"),
    (BPClassifier, {"activation": None}, TypeError, "activation must be a string"),
    (BPClassifier, {"cost": "mse"}, ValueError, "cost must be one of"),
    (BPRegressor, {"cost": "log_likelihood"}, ValueError, "cost must be one of"),
    (BPClassifier, {"learning_rate": -0.1}, ValueError, "learning_rate must be >= 0"),
    (BPClassifier, {"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    (BPClassifier, {"epochs": 2.0}, TypeError, "epochs must be an integer"),
    (BPRegressor, {"l2": -1}, ValueError, "l2 must be >= 0"),
    (BPRegressor, {"momentum": 1.0}, ValueError, "momentum must be < 1"),
    (BPRegressor, {"validation_fraction": 1.0}, ValueError, "validation_fraction must be < 1"),
    (BPRegressor, {"early_stopping": True, "validation_fraction": 0.0}, ValueError,
     "validation_fraction must be > 0 with early_stopping"),
    (BPRegressor, {"early_stopping": "yes"}, TypeError, "early_stopping must be a bool"),
    (BPRegressor, {"n_iter_no_change": 0}, ValueError, "n_iter_no_change must be >= 1"),
    (BPRegressor, {"tol": -1e-3}, ValueError, "tol must be >= 0"),
    (BPRegressor, {"num_threads": 0}, ValueError, "num_threads must be >= 1"),
    (BPRegressor, {"dtype": "float16"}, ValueError, "dtype must be one of"),
    (BPRegressor, {"init": "zeros"}, ValueError, "init must be one of"),
    (BPRegressor, {"random_state": "seed"}, ValueError, "cannot be used to seed"),
])
def test_bad_parameters_are_reported_by_fit(estimator, params, exc, match):
    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    model = estimator(**{**FAST, **params})  # constructing never raises
    with pytest.raises(exc, match=match):
        model.fit(X, y)
    assert not hasattr(model, "network_")
