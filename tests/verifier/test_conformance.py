"""The ONNX conformance run (verifier/conformance.py) over the node cases and pytorch-converted/-operator data
shipped in the onnx package, driven by the checked-in allow-list: every case whose ops are all supported
passes at the scale-derived tolerance unless the allow-list gives a reason, and the passing count never
falls below the allow-list's floor. Each case runs twice, the second time as a replay of the first (bound
kernels, generated code: verifier/replays.py), which must give the same outputs."""

import json
from pathlib import Path

import pytest

from verifier.conformance import all_cases, run_case, supported

ALLOWLIST = json.loads((Path(__file__).parent / "conformance_allowlist.json").read_text())
CASES = [case for case in all_cases() if supported(case)]


@pytest.fixture(scope="module")
def outcomes():
    return {case.name: run_case(case) for case in CASES}


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_conformance_case(name, outcomes):
    outcome = outcomes[name]
    if name in ALLOWLIST["expected_failures"]:
        pytest.xfail(ALLOWLIST["expected_failures"][name])
    if outcome.status == "unsupported":
        pytest.skip(f"uses an unsupported feature of a supported op: {outcome.detail}")
    assert outcome.status == "pass", outcome.detail


def test_passing_cases_stay_at_or_above_the_floor(outcomes):
    passing = sum(1 for o in outcomes.values() if o.status == "pass")
    assert passing >= ALLOWLIST["floor"], f"{passing} cases pass, the floor is {ALLOWLIST['floor']}"


def test_allow_list_names_only_cases_that_exist():
    names = {c.name for c in CASES}
    assert set(ALLOWLIST["expected_failures"]) <= names


PRODUCT_CASES = [case for case in CASES if {"Conv", "ConvTranspose", "Gemm", "MatMul"} & set(case.ops)]


@pytest.mark.parametrize("name", [c.name for c in PRODUCT_CASES])
def test_conformance_case_with_8_bit_products_runs_the_same_on_both_paths(name):
    """Every conformance case with a Conv, Gemm or MatMul, compiled at matmul_bits=8 (with its inputs made
    constants when the op needs constant weights): it runs, and the fast path equals the reference."""
    import numpy as np

    from verifier import InferenceSession, compile_model
    from verifier.conformance import _inputs_as_constants
    from verifier.errors import CompileError, UnsupportedOpError

    case = next(c for c in PRODUCT_CASES if c.name == name)
    for model, data_sets in ((case.model, case.data_sets), _inputs_as_constants(case)):
        if model is None:
            continue
        initializers = {t.name for t in model.graph.initializer}
        names = [i.name for i in model.graph.input if i.name not in initializers]
        feeds = {k: np.asarray(v) for k, v in zip(names, data_sets[0][0])}
        try:
            program = compile_model(model, calibration=feeds, matmul_bits=8)
        except UnsupportedOpError:
            continue  # (weights fed at run time: the constant form follows)
        except CompileError as exc:
            if "NaN or inf" in str(exc):
                pytest.skip("feeds NaN/inf, refused by design")
            raise
        feeds = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in feeds.items()}
        fast = InferenceSession(program, path="fast").run_fixed(feeds)
        assert fast.commitment == InferenceSession(program, path="reference").run_fixed(feeds).commitment
        assert InferenceSession(program).run_fixed(feeds).commitment == fast.commitment  # (a replay, bound kernels)
        return
    pytest.skip("compiles at neither form")
