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
from verifier.errors import ProgramRunError
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


def preprocessing_pipelines():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    return {
        "imputer of NaN": ("numbers", lambda: make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression())),
        "imputer of a -1 sentinel": ("numbers", lambda: make_pipeline(SimpleImputer(missing_values=-1.0),
                                                                      StandardScaler(), LogisticRegression())),
        "one-hot categories": ("categories", lambda: make_pipeline(OneHotEncoder(), LogisticRegression())),
        "ordinal categories": ("categories", lambda: make_pipeline(OrdinalEncoder(), LogisticRegression())),
        "column transformer": ("mixed", lambda: make_pipeline(
            ColumnTransformer([("numbers", StandardScaler(), [0, 1, 2]), ("categories", OneHotEncoder(), [3, 4])]),
            LogisticRegression())),
    }


@pytest.mark.parametrize("name", list(preprocessing_pipelines()))
def test_preprocessing_pipelines_match(name):
    """SimpleImputer (Imputer: Equal, Where), OneHotEncoder and OrdinalEncoder on int64 categories
    (ai.onnx.ml OneHotEncoder, LabelEncoder) and a ColumnTransformer mixing them, on numbers of magnitudes
    1, 100 and 0.01 (the imputer's Equal and Where take the per-feature scales too): the labels of
    onnxruntime on the program's grid, the probabilities within the linear chain's rounding."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import Int64TensorType

    rng = np.random.default_rng(0)
    numbers = (rng.normal(size=(300, 3)) * [1.0, 100.0, 0.01]).astype(np.float32)
    categories = rng.integers(0, 4, (300, 2)).astype(np.int64)
    labels = (numbers[:, 0] + 50 * numbers[:, 2] + (categories[:, 0] == 2) > 0.5).astype(int)
    inputs = {"numbers": numbers, "categories": categories,
              "mixed": np.hstack([numbers, categories.astype(np.float32)])}
    kind, build = preprocessing_pipelines()[name]
    features = inputs[kind]
    model = build().fit(features[:200], labels[:200])
    types = [("X", Int64TensorType([None, 2]))] if kind == "categories" else None
    onnx_model = to_onnx(model, None if types else features[:1], initial_types=types,
                         options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    program = compile_model(onnx_model, calibration={"X": features[:200]})
    step = program.inputs[0].steps()
    test = {"X": features[200:] if step is None else (np.round(features[200:] / step) * step).astype(np.float32)}
    ours, reference = InferenceSession(program).run(None, test), ort_run(onnx_model, test)
    assert np.array_equal(ours[0], reference[0])
    assert np.max(np.abs(ours[1] - reference[1])) <= 1e-2


def test_an_unknown_category_is_an_error_as_in_the_reference():
    """OneHotEncoder's default (zeros=0) refuses a value in no category: so does the program, when it runs,
    with an error that names the node (a job's deterministic error outcome; the CLI's message and exit 1)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import Int64TensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    categories = np.random.default_rng(1).integers(0, 4, (50, 2)).astype(np.int64)
    model = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(categories, categories[:, 0] > 1)
    onnx_model = to_onnx(model, initial_types=[("X", Int64TensorType([None, 2]))], options={id(model): {"zipmap": False}},
                         target_opset={"": 17, "ai.onnx.ml": 3})
    session = InferenceSession(compile_model(onnx_model, calibration={"X": categories}))
    with pytest.raises(ProgramRunError, match=r"\(OneHotEncoder\) cannot run on these inputs: .* in no category"):
        session.run(None, {"X": np.array([[7, 1]], np.int64)})


@pytest.mark.parametrize("keys, values, default, ml_opset", [
    ([3, 1, 7], [0.5, -2.0, 8.25], -1.5, 2),
    ([0.5, -1.25, 3.0], [10, 20, 30], 99, 2),
    ([3, 1, 7], [10, 20, 30], -7, 4),
])
def test_label_encoder_maps_numbers_as_onnxruntime(keys, values, default, ml_opset):
    from onnx import TensorProto, helper, numpy_helper

    float_keys = isinstance(keys[0], float)
    float_values = isinstance(values[0], float)
    x = np.array([[3, 1, 7, 2], [7, 7, 0, 1]], np.float32 if float_keys else np.int64)
    if float_keys:
        x = np.array([[0.5, -1.25, 3.0, 2.0], [3.0, 0.75, -1.25, 0.5]], np.float32)
    if ml_opset >= 4:
        attrs = {"keys_tensor": numpy_helper.from_array(np.array(keys, np.int64)),
                 "values_tensor": numpy_helper.from_array(np.array(values, np.int64)),
                 "default_tensor": numpy_helper.from_array(np.array([default], np.int64))}
    else:
        attrs = {f"keys_{'floats' if float_keys else 'int64s'}": keys,
                 f"values_{'floats' if float_values else 'int64s'}": values,
                 f"default_{'float' if float_values else 'int64'}": default}
    node = helper.make_node("LabelEncoder", ["x"], ["y"], domain="ai.onnx.ml", **attrs)
    element = lambda floating: TensorProto.FLOAT if floating else TensorProto.INT64  # noqa: E731
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", element(float_keys), [2, 4])],
                              [helper.make_tensor_value_info("y", element(float_values), [2, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", ml_opset)],
                              ir_version=8)
    ours = InferenceSession(compile_model(model, calibration={"x": x})).run(None, {"x": x})[0]
    assert np.array_equal(ours, ort_run(model, {"x": x})[0])
