"""The integer non-linear primitives (verifier/nonlinear/) meet the worst-case errors stated in
docs/fixed-point-nonlinear.md, are exact where they claim to be, and give the same bits every run.

Errors are measured against float64 (or exact integer/mpmath) references evaluated on the exact real
value the integer input represents, so they are the primitive's own error, in units of its output step."""

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from verifier.fixedpoint import qmax
from verifier.nonlinear import (
    apply_table, build_table, choose_out_frac, divide, exp2, exp_neg, isqrt, layer_norm, layer_norm_eps, log2, log_softmax,
    pow_positive, pow_tensor, softmax, sqrt_round,
)
from verifier.errors import OutOfRangeError
from verifier.nonlinear.exp_log import exp_neg_lookup, integer_power, exponent_multiplier, spec_constants
from verifier.nonlinear.roots import Z_FRAC

Q = qmax(16)
activations = hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=7), elements=st.integers(-Q, Q))


# exp / log -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_frac", [0, 4, 8, 12, 15, 20])
def test_exp_neg_is_within_24_units_of_2_pow_minus_30_over_its_whole_input_range(in_frac):
    t = np.arange(0, 1 << 17, dtype=np.int64)
    exact = np.exp(-t * 2.0**-in_frac) * 2.0**30
    assert np.abs(exp_neg(t, in_frac) - exact).max() <= 24


@pytest.mark.parametrize("in_frac", [-3, 0, 8, 12, 20, 30])
def test_exp_neg_lookup_is_bit_identical_to_exp_neg_for_every_argument(in_frac):
    t = np.arange(0, (1 << 17) + 100, dtype=np.int64)
    assert np.array_equal(exp_neg_lookup(t, in_frac), exp_neg(t, in_frac))


def test_exp_neg_of_zero_is_exactly_one():
    assert exp_neg(np.array([0]), 12)[0] == 1 << 30


def test_exp2_relative_error_is_below_3e_minus_9_at_full_precision():
    w = np.arange(-20 << 24, 20 << 24, 104729, dtype=np.int64)
    got = exp2(w, out_frac=40)
    exact = 2.0 ** (w / 2.0**24) * 2.0**40
    large = exact > 2.0**32  # below that the final rounding to an integer dominates
    assert np.max(np.abs(got - exact)[large] / exact[large]) < 3e-9


def test_exp2_saturates_instead_of_wrapping():
    assert exp2(np.array([70 << 24]), 0)[0] == (1 << 62) - 1


def test_log2_is_within_13_units_of_2_pow_minus_30_for_every_int64_magnitude():
    x = np.concatenate([
        np.arange(1, 1 << 16), 1 << np.arange(0, 62), (1 << np.arange(1, 63)) - 1,
        np.random.default_rng(0).integers(1, 1 << 62, 20000),
    ]).astype(np.int64)
    exact = np.array([float(mpmath.log(int(v), 2)) for v in x[-20000:]])
    assert np.abs(log2(x[-20000:]) - exact * 2.0**30).max() <= 13
    assert np.abs(log2(x) - np.log2(x.astype(np.float64)) * 2.0**30).max() <= 13


def test_log2_of_powers_of_two_is_exact():
    k = np.arange(0, 62)
    assert np.array_equal(log2(np.int64(1) << k), k << 30)


@pytest.mark.parametrize("p", [0.75, -0.75, 0.5, 2.0, -1.0, 1.0 / 3.0])
def test_pow_positive_relative_error_is_below_3e_minus_8_plus_the_log_and_exponent_rounding(p):
    m, shift = exponent_multiplier(p)
    x = np.unique(np.geomspace(1, 2**40, 5000).astype(np.int64))
    got = pow_positive(x, 20, m, shift, out_frac=30)
    exact = (x * 2.0**-20) ** p * 2.0**30
    ok = (exact > 2**26) & (exact < 2**61)  # far from the output step and from saturation
    bound = 3e-8 + 1e-8 * abs(p) + math.log(2) * np.abs(p * np.log2(x * 2.0**-20)) * 2.0**-24
    assert np.all((np.abs(got - exact) / exact)[ok] <= bound[ok])


@given(hnp.arrays(np.int64, 40, elements=st.integers(-Q, Q)), hnp.arrays(np.int64, 40, elements=st.integers(-Q, Q)),
       st.integers(4, 14), st.integers(8, 14))
@settings(max_examples=60, deadline=None)
def test_pow_tensor_is_within_half_a_step_plus_its_relative_error_of_the_exact_power(x, p, x_frac, p_frac):
    out_frac = 8
    got = pow_tensor(x, x_frac, p, p_frac, out_frac)
    base, exponent = x * 2.0**-x_frac, p * 2.0**-p_frac
    integral = p % (1 << p_frac) == 0
    with np.errstate(all="ignore"):
        exact = np.where(base < 0, np.where(integral, np.sign(base) ** (p >> p_frac), np.nan), 1.0) \
            * np.abs(base) ** exponent * 2.0**out_frac
    defined = np.isfinite(exact) & (x != 0)
    inside = defined & (np.abs(exact) <= Q)
    bound = 0.5 + np.abs(exact) * (3e-8 + 1e-8 * np.abs(exponent))
    assert np.all((np.abs(got - exact) <= bound)[inside])
    assert np.all(got[defined & ~inside] == np.sign(exact[defined & ~inside]) * Q)
    assert np.all(got[(x < 0) & ~integral] == 0)


@given(hnp.arrays(np.int64, 20, elements=st.integers(-40, 40)), hnp.arrays(np.int64, 20, elements=st.integers(-3, 11)))
@settings(max_examples=60, deadline=None)
def test_integer_power_is_exact(x, p):
    if np.any((x == 0) & (p < 0)):
        return
    expected = [int(a) ** int(b) if b >= 0 else int(1 / (int(a) ** -int(b))) for a, b in zip(x, p)]
    assert [int(v) for v in integer_power(x, p)] == expected


def test_integer_power_beyond_int64_is_an_error_not_a_wrap():
    with pytest.raises(OutOfRangeError):
        integer_power(np.array([3]), np.array([40]))


def test_spec_constants_are_the_documented_values():
    c = spec_constants()
    assert c["exp2_hi"][0] == 1 << 30 and c["exp2_hi"][128] == round(math.sqrt(2) * 2**30)
    assert c["log2"][0] == 0 and c["log2"][4096] == 1 << 30
    assert c["log2e"] == round(2**43 / math.log(2)) and c["ln2"] == round(math.log(2) * 2**25)


# softmax / log-softmax -----------------------------------------------------------------------------

def _float_softmax(q, in_frac, axis):
    x = q * 2.0**-in_frac
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("in_frac,axis", [(8, -1), (12, 0), (4, 1), (15, -1)])
def test_softmax_is_within_half_an_output_step_plus_1e_minus_3(in_frac, axis):
    rng = np.random.default_rng(in_frac)
    q = np.concatenate([rng.integers(-Q, Q + 1, (40, 6, 33)), np.full((1, 6, 33), Q), rng.integers(-40, 40, (4, 6, 33))])
    got = softmax(q, in_frac, axis, out_frac=14)
    err = np.abs(got - _float_softmax(q, in_frac, axis) * 2.0**14)
    assert err.max() <= 0.501


@pytest.mark.parametrize("in_frac,out_frac", [(8, 9), (12, 10), (4, 4), (14, 12)])
def test_log_softmax_is_within_half_an_output_step_plus_1e_minus_3(in_frac, out_frac):
    rng = np.random.default_rng(in_frac)
    q = rng.integers(-Q // 8, Q // 8 + 1, (64, 50))
    x = q * 2.0**-in_frac
    exact = x - x.max(axis=1, keepdims=True)
    exact = exact - np.log(np.exp(exact).sum(axis=1, keepdims=True))
    got = log_softmax(q, in_frac, 1, out_frac)
    representable = exact * 2.0**out_frac > -Q
    assert np.abs(got - exact * 2.0**out_frac)[representable].max() <= 0.501
    assert np.all(got[~representable] == -Q)


@given(activations, st.integers(0, 15))
@settings(max_examples=60, deadline=None)
def test_softmax_rows_sum_to_one_within_one_step_per_element(q, in_frac):
    got = softmax(q, in_frac, -1, out_frac=14)
    assert np.all(got >= 0)
    assert np.all(np.abs(got.sum(axis=-1) - (1 << 14)) <= q.shape[-1] * 0.51)


# Any input scale: in_frac spans every frac a tensor can get, from float64's largest finite range
# (frac_for_range(1.8e308) = -1009) to MAX_FRAC = 48; very coarse scales (huge logits) must neither
# overflow int64 nor lose the bound.
ANY_IN_FRAC = st.integers(-1009, 48)


@given(ANY_IN_FRAC, hnp.arrays(np.int64, 40, elements=st.integers(0, 2 * Q)))
@settings(max_examples=150, deadline=None)
def test_exp_neg_is_within_24_units_for_any_input_scale(in_frac, t):
    t = np.concatenate([t, [0, 1, 2]])
    exact = np.exp(-np.ldexp(t.astype(np.float64), -in_frac)) * 2.0**30
    assert np.abs(exp_neg(t, in_frac) - exact).max() <= 24
    assert np.array_equal(exp_neg_lookup(t, in_frac), exp_neg(t, in_frac))


def _exact_log_softmax(q, in_frac):
    x = np.ldexp(q.astype(np.float64), -in_frac)
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


@given(st.integers(-960, 48), st.integers(-8, 8), hnp.arrays(np.int64, (3, 12), elements=st.integers(-Q, Q)))
@settings(max_examples=150, deadline=None)
def test_softmax_and_log_softmax_hold_their_bound_for_any_input_scale(in_frac, out_offset, q):
    x = np.ldexp(q.astype(np.float64), -in_frac)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    assert np.abs(softmax(q, in_frac, 1, out_frac=14) - e / e.sum(axis=1, keepdims=True) * 2.0**14).max() <= 0.501
    out_frac = min(in_frac + out_offset, 30)  # LogSoftmax's output scale follows its input's
    exact = _exact_log_softmax(q, in_frac) * 2.0**out_frac
    got = log_softmax(q, in_frac, 1, out_frac)
    representable = exact > -Q
    assert np.max(np.abs(got - exact)[representable], initial=0) <= 0.501
    assert np.all(got[~representable] == -Q)


def test_masked_softmax_gives_a_saturated_minus_qmax_exactly_zero_and_keeps_a_row_of_them_uniform():
    q = np.array([[100, -Q, 50, -Q], [-Q, -Q, -Q, -Q], [0, 0, -Q, 7]])
    masked = softmax(q, 12, -1, out_frac=14, masked=True)
    assert masked[0, 1] == masked[0, 3] == masked[2, 2] == 0
    assert np.all(masked[1] == 1 << 12)  # all masked: each is the row maximum
    assert np.all(np.abs(masked.sum(axis=1) - (1 << 14)) <= 2)
    assert softmax(q, 0, -1, out_frac=14)[2, 2] == 0 and softmax(q, 14, -1, out_frac=14)[2, 2] > 0  # unmasked: a value
    log_masked = log_softmax(q, 12, -1, out_frac=10, masked=True)
    assert log_masked[0, 1] == log_masked[2, 2] == -Q and np.all(log_masked[1] > -Q)


# roots, division, layer norm ------------------------------------------------------------------------

@given(hnp.arrays(np.int64, 50, elements=st.integers(0, (1 << 62) - 1)))
@settings(max_examples=80, deadline=None)
def test_isqrt_is_the_exact_floor_square_root(n):
    assert [int(v) for v in isqrt(n)] == [math.isqrt(int(v)) for v in n]


@given(hnp.arrays(np.int64, 50, elements=st.integers(0, (1 << 62) - 1)))
@settings(max_examples=80, deadline=None)
def test_sqrt_round_is_the_nearest_integer_square_root(n):
    for got, v in zip(sqrt_round(n), n):
        r = math.isqrt(int(v))
        assert int(got) == (r + 1 if int(v) - r * r > r else r)


def _exact_divide(a, fa, b, fb, fo):
    if b == 0:
        return 0 if a == 0 else (Q if a > 0 else -Q)
    value = Fraction(a, b) * Fraction(2) ** (fo - fa + fb)
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return max(-Q, min(Q, magnitude if value >= 0 else -magnitude))


@given(
    hnp.arrays(np.int64, 30, elements=st.integers(-Q, Q)), hnp.arrays(np.int64, 30, elements=st.integers(-Q, Q)),
    st.integers(-4, 16), st.integers(-4, 16), st.integers(-4, 16),
)
@settings(max_examples=100, deadline=None)
def test_divide_is_correctly_rounded_and_saturated(a, b, fa, fb, fo):
    got = divide(a, fa, b, fb, fo)
    assert [int(v) for v in got] == [_exact_divide(int(x), fa, int(y), fb, fo) for x, y in zip(a, b)]


def _float_layer_norm(q, in_frac, gamma, beta, eps):
    x = q * 2.0**-in_frac
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("n,in_frac,eps", [(16, 10, 1e-5), (64, 12, 1e-5), (768, 8, 1e-12), (5, 14, 0.1), (4096, 15, 1e-5), (60000, 6, 1e-5)])
def test_layer_norm_is_within_0_51_output_steps_of_the_float_result(n, in_frac, eps):
    rng = np.random.default_rng(n)
    q = np.concatenate([rng.integers(-Q, Q + 1, (30, n)), rng.integers(-3, 4, (5, n)), np.full((1, n), 77)])
    gamma_frac = 18
    gamma_q = rng.integers(-(1 << 19), 1 << 19, n)
    beta_q = rng.integers(-(1 << 40), 1 << 40, n)
    gamma, beta = gamma_q * 2.0**-gamma_frac, beta_q * 2.0 ** -(Z_FRAC + gamma_frac)
    out_frac = 10
    got = layer_norm(q, 1, gamma_q, gamma_frac, beta_q, layer_norm_eps(eps, n, in_frac), out_frac)
    exact = _float_layer_norm(q, in_frac, gamma, beta, eps) * 2.0**out_frac
    inside = np.abs(exact) < Q
    assert np.abs(got - exact)[inside].max() <= 0.51
    assert np.array_equal(got[~inside], np.sign(exact[~inside]) * Q)


# tables ---------------------------------------------------------------------------------------------

def _sigmoid(x, m):
    return 1 / (1 + m.exp(-x))


@pytest.mark.parametrize("fn", [_sigmoid, lambda x, m: m.tanh(x), lambda x, m: m.erf(x), lambda x, m: m.exp(x)])
def test_every_table_entry_is_the_correctly_rounded_function_value(fn):
    in_frac, out_frac = 12, choose_out_frac(fn, 12, calibrated=4.0)
    lo, table = build_table(fn, in_frac, out_frac)
    q = np.arange(-Q, Q + 1, 997)
    with mpmath.workprec(120):
        for qi, got in zip(q, apply_table(q, lo, table)):
            v = fn(mpmath.mpf(int(qi)) / 2**in_frac, _mp()) * 2**out_frac
            expected = int(mpmath.sign(v) * mpmath.floor(abs(v) + 0.5))
            assert int(got) == max(-Q, min(Q, expected))


def _mp():
    from verifier.nonlinear.tables import _mpmath_namespace

    return _mpmath_namespace()


def test_exact_ties_round_away_from_zero():
    lo, table = build_table(lambda x, m: x * 0.5, 0, 0)
    assert list(apply_table(np.array([1, 3, -1, -3]), lo, table)) == [1, 2, -1, -2]


def test_trimmed_table_gives_the_same_outputs_as_the_full_table():
    lo, table = build_table(_sigmoid, 10, 14)
    assert len(table) < 2 * Q + 1
    q = np.arange(-Q, Q + 1)
    full = np.array([max(0, min(Q, math.floor(1 / (1 + math.exp(-v / 1024)) * 2**14 + 0.5))) for v in q])
    assert np.array_equal(apply_table(q, lo, table), full)


def test_outputs_outside_the_domain_are_zero_and_infinities_saturate():
    lo, table = build_table(lambda x, m: m.log(x), 8, 8)
    assert list(apply_table(np.array([-5, 0, 1 << 14]), lo, table)) == [0, -Q, round(math.log(64) * 256)]


# determinism ----------------------------------------------------------------------------------------

@given(activations, st.integers(0, 15))
@settings(max_examples=40, deadline=None)
def test_primitives_give_the_same_bits_on_repeated_runs(q, in_frac):
    runs = [
        (softmax(q, in_frac, 0, 14), log_softmax(q, in_frac, -1, 10), layer_norm(q, 1, np.ones(1, np.int64) << 16, 16, np.zeros(1, np.int64), 5, 12))
        for _ in range(2)
    ]
    for a, b in zip(*runs):
        assert a.dtype == np.int64 and np.array_equal(a, b)


def test_table_build_is_deterministic():
    assert np.array_equal(build_table(_sigmoid, 11, 14)[1], build_table(_sigmoid, 11, 14)[1])
