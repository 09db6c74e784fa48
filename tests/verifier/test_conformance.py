"""The ONNX conformance run (verifier/conformance.py) over the node cases and pytorch-converted/-operator data
shipped in the onnx package, driven by the checked-in allow-list: every case whose ops are all supported
passes at the scale-derived tolerance unless the allow-list gives a reason, and the passing count never
falls below the allow-list's floor."""

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
