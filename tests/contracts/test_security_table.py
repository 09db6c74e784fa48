"""scripts/security_table.py: exact probabilities that agree with brute force, and the table in the docs."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from fractions import Fraction
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("security_table", ROOT / "scripts" / "security_table.py")
security_table = importlib.util.module_from_spec(spec)
sys.modules["security_table"] = security_table  # dataclasses resolve their module here
spec.loader.exec_module(security_table)


def _brute_force(share: Fraction, k: int, growth: int, quorum_bps: int, max_rounds: int):
    """Enumerate every dishonest/honest pattern of every round (tiny sizes only)."""
    sizes = security_table.round_sizes(k, growth, max_rounds)
    wrong = unresolved = Fraction(0)

    def walk(index, p):
        nonlocal wrong, unresolved
        size = sizes[index]
        needed = size if index == 0 else security_table.quorum(size, quorum_bps)
        for pattern in itertools.product((0, 1), repeat=size):
            d = sum(pattern)
            q = p * share**d * (1 - share) ** (size - d)
            honest_wins = d == 0 if index == 0 else size - d >= needed
            if d >= needed:
                wrong += q
            elif honest_wins:
                continue
            elif index == len(sizes) - 1:
                unresolved += q
            else:
                walk(index + 1, q)

    walk(0, Fraction(1))
    return float(wrong), float(unresolved)


@pytest.mark.parametrize("share", [Fraction(1, 10), Fraction(1, 3)])
def test_exact_tails_equal_brute_force_enumeration(share):
    outcome = security_table.analyse(share, k=2, growth=2, quorum_bps=6667, max_rounds=3)  # rounds 2, 5, 11
    wrong, unresolved = _brute_force(share, 2, 2, 6667, 3)
    assert outcome.wrong == pytest.approx(wrong, rel=1e-12)
    assert outcome.unresolved == pytest.approx(unresolved, rel=1e-12)


def test_huge_pool_converges_to_the_binomial_model():
    unbounded = security_table.analyse(Fraction(1, 5), 3, 4, 6667, 3)
    finite = security_table.analyse(Fraction(1, 5), 3, 4, 6667, 3, pool=100_000)
    assert finite.wrong == pytest.approx(unbounded.wrong, rel=1e-3)


def test_default_parameters_keep_a_wrong_result_below_one_in_a_billion_at_a_fifth_dishonest():
    from contracts import DEFAULT_PARAMS, DEFAULT_REDUNDANCY

    outcome = security_table.analyse(Fraction(1, 5), DEFAULT_REDUNDANCY, DEFAULT_PARAMS["growth"],
                                     DEFAULT_PARAMS["quorum_bps"], DEFAULT_PARAMS["max_rounds"])
    assert outcome.wrong < 1e-9


def test_protocol_doc_carries_the_table_the_script_prints(capsys):
    security_table.main([])
    printed = capsys.readouterr().out.strip()
    doc = (ROOT / "docs" / "protocol.md").read_text()
    start = doc.index("<!-- scripts/security_table.py -->") + len("<!-- scripts/security_table.py -->")
    assert doc[start:doc.index("<!-- /scripts/security_table.py -->")].strip() == printed
