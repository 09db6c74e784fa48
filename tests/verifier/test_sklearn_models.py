"""scikit-learn models exported by skl2onnx, with the ai.onnx.ml ops they use: Scaler, Normalizer,
LinearClassifier and LinearRegressor (rewritten into standard ops at load: compiler/ml.py), TreeEnsemble-
Classifier and TreeEnsembleRegressor (exact integer tree walks: ops/_trees.py). On inputs on the program's
grid every comparison of a tree is exact, so labels match onnxruntime exactly and scores within the output
rounding; linear models round once per op. The raw breast-cancer and wine features (areas in the thousands
beside ratios below one) get per-feature input scales (compiler/feature_scales.py); the program's grid is then
per feature."""

import warnings

import numpy as np
import onnxruntime as ort
import pytest

from verifier import InferenceSession, compile_model
from verifier_helpers import ort_run

warnings.filterwarnings("ignore", module="sklearn")


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine

    images, labels = load_digits(return_X_y=True)
    features, targets = load_diabetes(return_X_y=True)
    cancer, diagnosis = load_breast_cancer(return_X_y=True)
    wine, cultivar = load_wine(return_X_y=True)
    return {"digits": ((images / 16).astype(np.float32), labels),
            "diabetes": (features.astype(np.float32), targets.astype(np.float32)),
            "cancer": (cancer.astype(np.float32), diagnosis),
            "cancer area": (cancer.astype(np.float32), (cancer[:, 3] / 100 + diagnosis).astype(np.float32)),
            "wine": (wine.astype(np.float32), cultivar)}

RAW_FEATURES = ("cancer", "cancer area", "wine")


def estimators():
    from sklearn.decomposition import PCA
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor, RandomForestClassifier, \
        RandomForestRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, RobustScaler, StandardScaler
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    return {
        "scaler+logistic": ("digits", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))),
        "normalizer+logistic binary": ("digits", lambda: make_pipeline(Normalizer(), LogisticRegression())),
        "random forest": ("digits", lambda: RandomForestClassifier(10, max_depth=6, random_state=0)),
        "gradient boosting binary": ("digits", lambda: GradientBoostingClassifier(n_estimators=15, random_state=0)),
        "gradient boosting multiclass": ("digits", lambda: GradientBoostingClassifier(n_estimators=5, max_depth=2,
                                                                                      random_state=0)),
        "linear regression": ("diabetes", LinearRegression),
        "pca+ridge": ("diabetes", lambda: make_pipeline(PCA(5), Ridge())),
        "decision tree": ("diabetes", lambda: DecisionTreeRegressor(max_depth=8, random_state=0)),
        "random forest regressor": ("diabetes", lambda: RandomForestRegressor(8, max_depth=6, random_state=0)),
        "gradient boosting regressor": ("diabetes", lambda: GradientBoostingRegressor(n_estimators=20, random_state=0)),
        "raw scaler+logistic": ("cancer", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))),
        "raw logistic": ("cancer", lambda: LogisticRegression(max_iter=3000)),
        "raw decision tree": ("cancer", lambda: DecisionTreeClassifier(max_depth=6, random_state=0)),
        "raw robust scaler+ridge": ("cancer area", lambda: make_pipeline(RobustScaler(), Ridge())),
        "raw gradient boosting regressor": ("cancer area", lambda: GradientBoostingRegressor(n_estimators=20,
                                                                                             random_state=0)),
        # the first 70% of the wine rows hold two cultivars: a binary forest of 10 trees, whose even votes tie
        "raw random forest with tied votes": ("wine", lambda: RandomForestClassifier(10, max_depth=5, random_state=0)),
        "raw scaler+pca+logistic": ("wine", lambda: make_pipeline(StandardScaler(), PCA(4), LogisticRegression())),
    }


@pytest.mark.parametrize("name", list(estimators()))
def test_sklearn_model_matches_onnxruntime(name, data):
    from skl2onnx import to_onnx

    dataset, build = estimators()[name]
    features, targets = data[dataset]
    if "binary" in name:
        targets = (targets == 3).astype(int)
    train = int(len(features) * 0.7)
    model = build().fit(features[:train], targets[:train])
    options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
    onnx_model = to_onnx(model, features[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    program = compile_model(onnx_model, calibration={"X": features[:train]})
    assert (program.inputs[0].feature_shifts is not None) == (dataset in RAW_FEATURES)
    step = program.inputs[0].steps()
    test = {"X": (np.round(features[train:] / step) * step).astype(np.float32)}
    ours = InferenceSession(program).run(None, test)
    fast = InferenceSession(program, path="fast").run_fixed(test).commitment
    assert fast == InferenceSession(program, path="reference").run_fixed(test).commitment
    reference = ort.InferenceSession(onnx_model.SerializeToString()).run(None, test)
    if reference[0].dtype.kind == "i":
        assert np.array_equal(ours[0], reference[0])
        # probabilities: the trees' exact scores rounded to their 16-bit scale (a change of at most one step,
        # which moves a sigmoid or softmax output by less than that) and the 2**-15 output; for the linear
        # models a chain of 16-bit roundings (scaled features, logits at their calibrated scale, the softmax)
        trees = [n.attrs for n in program.nodes if n.op == "TreeEnsembleClassifier"]
        bound = (2.0 ** -trees[0]["score_frac"] + 2.0**-15) if trees and "score_frac" in trees[0] else 1e-2
        assert np.max(np.abs(ours[1] - reference[1])) <= bound
    else:
        scale = 2.0 ** -program.outputs[0].frac
        assert np.max(np.abs(ours[0] - reference[0])) <= 0.5 * scale + 1e-5 * np.max(np.abs(reference[0])) + (
            0 if "tree" in name or "forest" in name or "boosting" in name else 2 * scale)


@pytest.mark.parametrize("kernel", ["rbf", "poly", "sigmoid", "linear"])
def test_support_vector_machines_match(kernel, data):
    """SVC (one-vs-one votes over its pairwise decisions) and SVR, rewritten into standard ops (compiler/svm.py).
    Each kernel value rounds to its 16-bit scale (at most 2**-15 for the values up to 1 of rbf and sigmoid), so
    a decision moves by at most sum |dual coefficients| times that, plus its own rounding: labels agree except
    where a decision lies that close to 0 (on wine none does for rbf and sigmoid; for poly and linear, whose
    kernel values reach hundreds, one row in 54 at most). The regressor's bound is the same sum for the kernels
    bounded by 1."""
    from skl2onnx import to_onnx
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    features, labels = data["wine"]
    order = np.random.default_rng(0).permutation(len(features))
    features, labels = features[order], labels[order]
    classifier = make_pipeline(StandardScaler(), SVC(kernel=kernel)).fit(features[:124], labels[:124])
    onnx_model = to_onnx(classifier, features[:1], options={id(classifier): {"zipmap": False}},
                         target_opset={"": 17, "ai.onnx.ml": 3})
    program = compile_model(onnx_model, calibration={"X": features[:124]})
    step = program.inputs[0].steps()
    test = {"X": (np.round(features[124:] / step) * step).astype(np.float32)}
    ours, reference = InferenceSession(program).run(None, test), ort_run(onnx_model, test)
    assert np.mean(ours[0] == reference[0]) >= (1.0 if kernel in ("rbf", "sigmoid") else 1 - 1 / 54)
    if kernel in ("rbf", "sigmoid"):
        assert np.max(np.abs(ours[1] - reference[1])) <= np.abs(classifier[-1].dual_coef_).sum() * 2.0**-15 + 2.0**-10

    if kernel not in ("rbf", "sigmoid"):
        return
    features, targets = data["diabetes"]
    regressor = SVR(kernel=kernel, C=10.0).fit(features[:300], targets[:300])
    onnx_model = to_onnx(regressor, features[:1], target_opset={"": 17, "ai.onnx.ml": 3})
    program = compile_model(onnx_model, calibration={"X": features[:300]})
    step = program.inputs[0].steps()
    test = {"X": (np.round(features[300:] / step) * step).astype(np.float32)}
    ours, reference = InferenceSession(program).run(None, test)[0], ort_run(onnx_model, test)[0]
    assert np.max(np.abs(ours - reference)) <= np.abs(regressor.dual_coef_).sum() * 2.0**-15 + \
        2.0 ** -program.outputs[0].frac


def test_an_svc_with_probability_estimates_is_refused_by_name(data):
    from skl2onnx import to_onnx
    from sklearn.svm import SVC

    from verifier.errors import UnsupportedOpError

    features, labels = data["wine"]
    model = SVC(probability=True, random_state=0).fit(features, labels)
    onnx_model = to_onnx(model, features[:1], options={id(model): {"zipmap": False}},
                         target_opset={"": 17, "ai.onnx.ml": 3})
    with pytest.raises(UnsupportedOpError, match="SVMClassifier.*probability estimates .* probability=False"):
        compile_model(onnx_model, calibration={"X": features})
