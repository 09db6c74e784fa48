"""The integer primitives against their definitions in Python integers (docs/fixed-point.md, section 2)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.fixedpoint import qmax, requantize, round_shift, rounding_divide

EDGES = [0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8, 32767, -32767, 2**40 + 2**39, -(2**40 + 2**39)]


def half_away(numerator: int, denominator: int) -> int:
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return -magnitude if numerator < 0 else magnitude


@given(values=st.lists(st.integers(-(2**60), 2**60), min_size=1, max_size=50), shift=st.integers(1, 61))
@settings(max_examples=200)
def test_round_shift_is_division_rounded_half_away_from_zero(values, shift):
    got = round_shift(np.array(values, dtype=np.int64), shift)
    assert got.tolist() == [half_away(v, 2**shift) for v in values]


def test_round_shift_on_ties_and_edges():
    for shift in (1, 2, 3, 15):
        got = round_shift(np.array(EDGES, dtype=np.int64), shift)
        assert got.tolist() == [half_away(v, 2**shift) for v in EDGES]
    assert round_shift(np.array([5, -5, 3, -3]), 1).tolist() == [3, -3, 2, -2]


def test_round_shift_by_zero_or_negative_is_exact():
    x = np.array(EDGES[:19], dtype=np.int64)
    assert round_shift(x, 0).tolist() == x.tolist()
    assert round_shift(x, -3).tolist() == (x * 8).tolist()


def test_requantize_saturates_symmetrically_and_leaves_its_input_alone():
    x = np.array([2**40, -(2**40), 12345, -12345], dtype=np.int64)
    before = x.copy()
    assert requantize(x, 4, 4).tolist() == [qmax(16), -qmax(16), 12345, -12345]
    assert np.array_equal(x, before)
    assert requantize(x, 8, 4).tolist() == [qmax(16), -qmax(16), half_away(12345, 16), -half_away(12345, 16)]


@given(values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=30), denominator=st.integers(1, 10**6))
def test_rounding_divide_is_division_rounded_half_away_from_zero(values, denominator):
    got = rounding_divide(np.array(values, dtype=np.int64), denominator)
    assert got.tolist() == [half_away(v, denominator) for v in values]


@pytest.mark.parametrize("from_frac,to_frac,expected", [(2, 5, 40), (2, 1, 3), (0, 0, 5)])
def test_requantize_of_a_0_d_array_gives_a_0_d_array(from_frac, to_frac, expected):
    """(A 1-D by 1-D MatMul ends with a 0-d accumulator; numpy ops on it return scalars, which the
    saturating clip cannot write into.)"""
    out = requantize(np.array(5, dtype=np.int64), from_frac, to_frac)
    assert isinstance(out, np.ndarray) and out.shape == () and int(out) == expected
