"""verifier.kernels.requantize: the in-place epilogue equals verifier.fixedpoint.requantize (the one
rounding rule) bit for bit, bias included."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import fixedpoint
from verifier.kernels import requantize

EDGE = (1 << 62) - (1 << 49)  # largest accumulator magnitude the kernels produce, less a 48-bit bias


def accumulators(rng, shape, shift):
    """Values spread over every magnitude, plus exact ties (odd multiples of 2**(shift-1)) and edges."""
    magnitudes = rng.integers(0, 62, shape)
    values = rng.integers(0, 1 << 62, shape) >> (62 - magnitudes)
    tie_count = min(1000, (EDGE >> (shift - 1)) // 2)  # keep |tie| <= EDGE: no int64 wrap in the test itself
    ties = (2 * rng.integers(-tie_count, tie_count, shape) + 1) << (shift - 1)
    values = np.where(rng.random(shape) < 0.3, ties, values * rng.choice([-1, 1], shape))
    values.flat[:4] = [EDGE, -EDGE, 0, -1]
    return values.astype(np.int64)


@settings(max_examples=200, deadline=None)
@given(shift=st.integers(1, 61), bits=st.sampled_from([8, 16, 24, 32]), seed=st.integers(0, 2**32 - 1))
def test_equals_fixedpoint_requantize(shift, bits, seed):
    rng = np.random.default_rng(seed)
    acc = accumulators(rng, (5, 7), shift)
    expected = fixedpoint.requantize(acc, shift + 3, 3, bits)
    assert np.array_equal(requantize(acc, shift + 3, 3, bits), expected)


def test_rounds_ties_half_away_from_zero():
    acc = np.array([5, -5, 7, -7, 4, -4, 6, -6], dtype=np.int64)  # in units of 1/2 at shift 1
    assert requantize(acc, 1, 0).tolist() == [3, -3, 4, -4, 2, -2, 3, -3]


def test_adds_a_per_channel_bias_before_rounding():
    rng = np.random.default_rng(1)
    acc = accumulators(rng, (2, 3, 4, 4), 20) >> 12
    bias = rng.integers(-(1 << 47), 1 << 47, 3).reshape(1, 3, 1, 1)
    expected = fixedpoint.requantize(acc + bias, 30, 10)
    assert np.array_equal(requantize(acc, 30, 10, bias=bias), expected)


def test_works_in_place_on_the_accumulator():
    rng = np.random.default_rng(2)
    acc = accumulators(rng, (3, 50), 9)
    expected = fixedpoint.requantize(acc, 20, 11)
    result = requantize(acc, 20, 11, out=acc)
    assert result is acc and np.array_equal(acc, expected)


def test_saturates_to_the_declared_bits():
    acc = np.array([1 << 40, -(1 << 40)], dtype=np.int64)
    assert requantize(acc, 4, 0, bits=16).tolist() == [32767, -32767]


def test_no_shift_and_left_shift_match_fixedpoint():
    acc = np.array([3, -70000, 12345], dtype=np.int64)
    for from_frac, to_frac in ((5, 5), (5, 7)):
        expected = fixedpoint.requantize(acc, from_frac, to_frac)
        assert np.array_equal(requantize(acc, from_frac, to_frac), expected)


def test_rejects_a_float_accumulator():
    with pytest.raises(TypeError, match="int64"):
        requantize(np.ones(3), 4, 0)


@settings(max_examples=200, deadline=None)
@given(shift=st.integers(1, 61), bits=st.sampled_from([8, 16, 32]), seed=st.integers(0, 2**32 - 1))
def test_fused_relu_equals_max_zero_of_the_requantized_value(shift, bits, seed):
    rng = np.random.default_rng(seed)
    acc = accumulators(rng, (5, 7), shift)
    expected = np.maximum(fixedpoint.requantize(acc, shift + 3, 3, bits), 0)
    assert np.array_equal(requantize(acc, shift + 3, 3, bits, relu=True), expected)


@pytest.mark.parametrize("from_frac, to_frac", [(3, 3), (3, 10), (70, 0), (63, 0), (64, 1)])
def test_shifts_outside_one_to_sixty_two_take_the_checked_primitive(from_frac, to_frac):
    acc = np.array([0, 1, -1, 5, -5, 1000, -1000, 1 << 40, -(1 << 40)], dtype=np.int64)
    for relu in (False, True):
        expected = fixedpoint.requantize(acc, from_frac, to_frac)
        expected = np.maximum(expected, 0) if relu else expected
        assert np.array_equal(requantize(acc.copy(), from_frac, to_frac, relu=relu), expected)


@settings(max_examples=300, deadline=None)
@given(shift=st.integers(1, 62), seed=st.integers(0, 2**32 - 1), relu=st.booleans(),
       bias_bits=st.sampled_from([1, 16, 47, 61, 62]))
def test_a_bias_folded_with_the_half_rounds_like_fixedpoint(shift, seed, relu, bias_bits):
    """Biases up to 2**61 take the folded path, wider ones the general one; both equal the primitive,
    at ties, at zero and at the accumulator's edges."""
    rng = np.random.default_rng(seed)
    acc = accumulators(rng, (3, 6), min(shift, 61)) >> 1  # |acc| + |bias| within the kernels' bound
    bias = rng.integers(-(1 << (bias_bits - 1)), 1 << (bias_bits - 1), (1, 6))
    bias.flat[:2] = [(1 << (bias_bits - 1)) - 1, -(1 << (bias_bits - 1)) + 1]
    if shift > 1:  # exact ties of acc + bias, both signs
        acc[0, :2] = [(1 << (shift - 1)) - bias[0, 0], -(1 << (shift - 1)) - bias[0, 1]]
    expected = fixedpoint.requantize(acc + bias, shift, 0)
    expected = np.maximum(expected, 0) if relu else expected
    assert np.array_equal(requantize(acc.copy(), shift, 0, bias=bias, relu=relu), expected)
