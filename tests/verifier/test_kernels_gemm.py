"""verifier.kernels.gemm: the fast (float BLAS) path equals the int64 reference bit for bit, and
both equal exact Python-integer arithmetic; plan_gemm only picks a float path that is provably exact."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.errors import OutOfRangeError
from verifier.fixedpoint import qmax
from verifier.kernels import gemm, plan_gemm, prepare
from verifier.kernels.exact_gemm import FLOAT32_EXACT, FLOAT64_EXACT

Q15 = qmax(16)  # 32767, the edge of the 16-bit activation / weight range


def python_int_matmul(a, b):
    """The definition with unbounded Python integers: no float, no int64 wrap."""
    a, b = a.tolist(), b.tolist()
    return np.array([[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a], dtype=np.int64)


def edge_values(rng, shape, bound):
    """Random values with a large share at exactly +-bound, the worst case for partial sums."""
    values = rng.integers(-bound, bound + 1, size=shape)
    edges = rng.random(shape) < 0.5
    return np.where(edges, np.where(rng.random(shape) < 0.5, bound, -bound), values).astype(np.int64)


def test_fast_path_equals_python_integers_at_the_16_bit_edge():
    rng = np.random.default_rng(1)
    a, b = edge_values(rng, (7, 40), Q15), edge_values(rng, (40, 5), Q15)
    expected = python_int_matmul(a, b)
    assert np.array_equal(gemm(a, b), expected)
    assert np.array_equal(gemm(a, b, path="reference"), expected)


def test_all_maximal_products_sum_exactly():
    a = np.full((3, 4096), -Q15, dtype=np.int64)
    b = np.full((4096, 2), -Q15, dtype=np.int64)
    assert np.all(gemm(a, b) == 4096 * Q15 * Q15)


def test_small_bounds_use_float32_in_one_pass():
    plan = plan_gemm(K=64, a_bound=127, b_bound=127)
    assert plan.path == "float32" and plan.chunk == 64
    assert 64 * 127 * 127 < FLOAT32_EXACT


def test_16_bit_operands_use_float64_without_chunking():
    plan = plan_gemm(K=4608, a_bound=Q15, b_bound=Q15)
    assert plan.path == "float64" and plan.chunk == 4608
    assert "2**53" in plan.reason


def test_long_products_of_large_values_are_chunked_below_2_53():
    plan = plan_gemm(K=1000, a_bound=1 << 24, b_bound=1 << 24)
    assert plan.path == "float64"
    assert plan.chunk * (1 << 48) < FLOAT64_EXACT <= (plan.chunk + 1) * (1 << 48)
    assert plan.chunk < 1000


def test_chunked_float64_path_equals_reference():
    rng = np.random.default_rng(2)
    bound = 1 << 24
    a, b = edge_values(rng, (9, 333), bound), edge_values(rng, (333, 11), bound)
    assert plan_gemm(333, bound, bound).chunk < 333
    assert np.array_equal(gemm(a, b), gemm(a, b, path="reference"))
    assert np.array_equal(gemm(a, b), python_int_matmul(a, b))


def test_forced_float32_path_is_chunked_and_exact():
    rng = np.random.default_rng(3)
    a, b = edge_values(rng, (6, 500), 255), edge_values(rng, (500, 4), 255)
    assert np.array_equal(gemm(a, b, path="float32"), python_int_matmul(a, b))


def test_forced_float_path_that_cannot_be_exact_is_refused():
    a = np.full((2, 3), Q15, dtype=np.int64)
    with pytest.raises(ValueError, match="not exact"):
        gemm(a, a.T, path="float32")


def test_products_too_large_for_float_use_int64_loops():
    plan = plan_gemm(K=8, a_bound=1 << 28, b_bound=1 << 28)
    assert plan.path == "int64"
    a = np.full((2, 8), 1 << 28, dtype=np.int64)
    assert np.array_equal(gemm(a, a.T), python_int_matmul(a, a.T))


def test_a_sum_that_may_overflow_int64_is_an_error_not_a_wrap():
    with pytest.raises(OutOfRangeError, match="int64"):
        plan_gemm(K=1 << 20, a_bound=1 << 21, b_bound=1 << 21)
    a = np.full((1, 4), 1 << 31, dtype=np.int64)
    with pytest.raises(OutOfRangeError):
        gemm(a, a.T, path="reference")


def test_batched_operands_broadcast_like_matmul():
    rng = np.random.default_rng(4)
    a = edge_values(rng, (2, 3, 5, 16), Q15)
    b_shared = edge_values(rng, (16, 4), Q15)
    b_batched = edge_values(rng, (3, 16, 4), Q15)
    for b in (b_shared, b_batched):
        expected = np.matmul(a, b)  # numpy int64 matmul: exact here, no BLAS
        assert gemm(a, b).shape == expected.shape
        assert np.array_equal(gemm(a, b), expected)


def test_attention_scores_q_times_k_transposed():
    rng = np.random.default_rng(5)
    q, k = edge_values(rng, (2, 4, 10, 8), Q15), edge_values(rng, (2, 4, 10, 8), Q15)
    kt = np.swapaxes(k, -1, -2)
    assert np.array_equal(gemm(q, kt), gemm(q, kt, path="reference"))


def test_prepared_weights_give_the_same_bits_and_reuse_their_float_copy():
    rng = np.random.default_rng(6)
    a, w = edge_values(rng, (5, 30), Q15), edge_values(rng, (30, 7), Q15)
    prepared = prepare(w)
    assert prepared.bound == Q15
    first = gemm(a, prepared)
    assert np.array_equal(first, gemm(a, w, path="reference"))
    cached = prepared.as_float(np.float64)
    gemm(a, prepared)
    assert prepared.as_float(np.float64) is cached


def test_caller_supplied_bounds_pick_the_plan():
    a = np.ones((2, 3), dtype=np.int64)
    assert np.array_equal(gemm(a, a.T, a_bound=Q15, b_bound=Q15), np.full((2, 2), 3))


def test_float_inputs_are_rejected():
    with pytest.raises(TypeError, match="integer"):
        gemm(np.ones((2, 2)), np.ones((2, 2), dtype=np.int64))


def test_mismatched_inner_dimensions_are_rejected():
    with pytest.raises(ValueError, match="inner"):
        gemm(np.ones((2, 3), dtype=np.int64), np.ones((4, 2), dtype=np.int64))


def test_empty_inner_dimension_gives_zeros():
    out = gemm(np.zeros((3, 0), dtype=np.int64), np.zeros((0, 2), dtype=np.int64))
    assert out.dtype == np.int64 and np.array_equal(out, np.zeros((3, 2)))


@settings(max_examples=150, deadline=None)
@given(
    m=st.integers(1, 6), k=st.integers(1, 70), n=st.integers(1, 6),
    bits=st.sampled_from([2, 8, 12, 16, 25]), seed=st.integers(0, 2**32 - 1),
)
def test_fast_equals_reference_equals_python_integers(m, k, n, bits, seed):
    rng = np.random.default_rng(seed)
    bound = qmax(bits)
    a, b = edge_values(rng, (m, k), bound), edge_values(rng, (k, n), bound)
    fast = gemm(a, b)
    assert fast.dtype == np.int64
    assert np.array_equal(fast, gemm(a, b, path="reference"))
    assert np.array_equal(fast, python_int_matmul(a, b))


def test_vector_operands_follow_matmul():
    v, m = np.array([1, -2, 3], dtype=np.int64), np.arange(6, dtype=np.int64).reshape(3, 2)
    assert np.array_equal(gemm(v, m), v @ m)
    assert np.array_equal(gemm(m.T, v), m.T @ v)
    assert gemm(v, v) == 14
