"""GEMMs and convolutions in one compiled call (verifier/kernels/direct.py): the integers of the int64 reference
product and epilogue, for any geometry the call takes, in float64 or float32, and taken exactly where its limits
say."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels_conv import Q15, edge_values
from test_kernels_fused import expected

from verifier.fixedpoint import qmax
from verifier.kernels import conv, direct, gemm, loops, plan_conv, prepare
from verifier.kernels.convolution import _planned
from verifier.kernels.epilogue import Requantize
from verifier.kernels.exact_gemm import FLOAT64_EXACT


def _epilogue(draw, channels: int, rng) -> Requantize:
    bias = None if draw(st.booleans()) else rng.integers(-(1 << 40), 1 << 40, channels)
    return Requantize(draw(st.integers(0, 62)), 16, draw(st.booleans()), bias)


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_a_direct_convolution_equals_the_reference_on_random_geometries(data):
    """1-D and 2-D, grouped, strided, dilated, padded unevenly, a batch: the loop's integers are the reference's."""
    draw = data.draw
    rank = draw(st.sampled_from([1, 2]))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilations = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    pads = tuple(draw(st.integers(0, 2)) for _ in range(2 * rank))
    spatial = tuple(draw(st.integers(max(1, d * (k - 1) + 1 - pads[i] - pads[i + rank]), 9))
                    for i, (k, d) in enumerate(zip(kernel, dilations)))
    group = draw(st.integers(1, 3))
    x_shape = (draw(st.integers(1, 3)), group * draw(st.integers(1, 3))) + spatial
    w_shape = (group * draw(st.integers(1, 4)), x_shape[1] // group) + kernel
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bound = draw(st.sampled_from([7, qmax(8), Q15]))
    x, w = edge_values(rng, x_shape, bound), prepare(edge_values(rng, w_shape, Q15))
    spec = _epilogue(draw, w_shape[0], rng)
    plan, geometry = _planned(x_shape, w, w.values, group, bound, Q15, strides, pads, dilations)
    acc_bound = math.prod(w_shape[1:]) * bound * Q15  # (below 2**24 for the small bounds: summed in float32)
    assert direct.applies(1, direct.CONV_MAX_WORK, acc_bound, spec)
    out = direct.conv_kernel(x_shape, w, group, geometry, spec, acc_bound)(x, None)
    reference = conv(x, w.values, strides=strides, pads=pads, dilations=dilations, group=group, path="reference")
    assert np.array_equal(out, expected(reference, spec, 1))


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_a_direct_gemm_equals_the_reference_with_any_leading_axes_and_weight_layout(data):
    """Activations with leading axes, and weights in rows or as a transposed view (the loop makes its rows); 8- and
    16-bit operands (sums in float32 or float64)."""
    draw = data.draw
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    K, N = draw(st.integers(1, 40)), draw(st.integers(1, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    a_bound, w_bound = draw(st.sampled_from([qmax(8), Q15])), draw(st.sampled_from([qmax(8), Q15]))
    a = edge_values(rng, lead + (K,), a_bound)
    values = edge_values(rng, (K, N), w_bound)
    weight = prepare(np.ascontiguousarray(values.T).T if draw(st.booleans()) else values)
    spec = _epilogue(draw, N, rng)
    out = direct.gemm_kernel(a.shape, weight, spec, K * a_bound * w_bound)(a)
    assert np.array_equal(out, expected(gemm(a, values, path="reference"), spec, -1))


@pytest.mark.parametrize("w_bound,summed_in", [(258, np.float32), (259, np.float64)])
def test_direct_products_sum_in_float32_only_while_every_sum_is_below_2_to_the_24(w_bound, summed_in):
    """K = 255 products of 255 by w_bound, all of one sign: sums of 16,776,450 (below 2**24: float32 holds them) or
    16,841,475 (odd and past 2**24, which float32 would round) - exact either way, in the type each bound allows."""
    rng = np.random.default_rng(w_bound)
    a = np.full((3, 255), 255) * rng.choice([-1, 1], (3, 1))
    values = np.full((255, 4), w_bound) * np.array([1, -1, 1, -1])
    weight, spec = prepare(values), Requantize(0, 32)  # (shift 0: the sums themselves, saturated at 2**31 - 1)
    out = direct.gemm_kernel(a.shape, weight, spec, 255 * 255 * w_bound)(a)
    assert np.array_equal(out, gemm(a, values, path="reference"))
    assert weight.cache[("direct rows", summed_in)].dtype == summed_in
    x, filters = a.reshape(3, 255, 1, 1)[:1], prepare(values.T.reshape(4, 255, 1, 1).copy())
    convolved = direct.conv_kernel(x.shape, filters, 1, _planned(x.shape, filters, filters.values, 1, 255, w_bound,
                                                                 None, None, None)[1], spec, 255 * 255 * w_bound)
    assert np.array_equal(convolved(x, None), conv(x, values.T.reshape(4, 255, 1, 1), path="reference"))


@pytest.mark.parametrize("M,K,N,block", [
    (244, 64, 64, 244),  # 999,424 multiply-adds: one call
    (245, 64, 64, 123),  # just past 10**6: two equal blocks
    (1000, 16, 64, 500),  # 1,024,000 of narrow operands: two blocks
    (62, 128, 128, 62),  # K N = 16384: too wide to split, one call
    (4096, 64, 16, 820),  # 4,194,304: five blocks
])
def test_a_product_past_the_blas_small_kernels_is_made_in_equal_row_blocks(M, K, N, block):
    assert direct.row_block(M, K, N) == block
    if K * N <= direct.BLAS_SMALL_WIDTH:
        assert block * K * N <= direct.BLAS_SMALL_WORK < M * K * N or block == M


@pytest.mark.parametrize("dtype,bound", [(np.float64, Q15), (np.float32, qmax(8))])
def test_a_product_gives_the_same_integers_in_any_row_blocks(dtype, bound):
    """loops.gemm_chain with blocks of 1, 7, 150 and all 300 rows (the last block short), and a direct GEMM whose
    rule splits it (300 x 64 x 64: two blocks, in scratch buffers) against the reference."""
    rng = np.random.default_rng(3)
    a, values = edge_values(rng, (300, 64), bound), edge_values(rng, (64, 64), bound)
    bias = rng.integers(-(1 << 40), 1 << 40, 64)
    outs = []
    for block in (1, 7, 150, 300):
        out = np.empty((300, 64), dtype=np.int64)
        link = np.array([[64, 64, 0, 0, 17, -Q15, Q15, 1, 0, 0, block]])
        loops.gemm_chain(a, values.astype(dtype).reshape(-1), bias, link, np.empty((2, 0), dtype), out)
        outs.append(out)
    assert all(np.array_equal(out, outs[0]) for out in outs[1:])
    spec = Requantize(17, 16, False, bias)
    assert direct.row_block(300, 64, 64) == 150
    out = direct.gemm_kernel(a.shape, prepare(values), spec, 64 * bound * bound)(a)
    assert np.array_equal(out, expected(gemm(a, values, path="reference"), spec, -1))
    assert np.array_equal(out, outs[0])


@pytest.mark.parametrize("bound", [Q15, qmax(8)])
def test_a_gemm_past_the_direct_limit_is_blocked_on_the_general_paths_with_the_reference_bits(bound, monkeypatch):
    """1100 x 64 x 64 (4.5M multiply-adds, past a GEMM_MAX_WORK of 4M): the general float64 path (16-bit: its
    doubled operands, K + 1 = 65) or float32 path (8-bit, the limb path off) makes it in row blocks
    (exact_gemm.matmul_rows), with the reference's integers."""
    from verifier.kernels import limbs

    monkeypatch.setenv(limbs.ENVIRONMENT, "off")
    monkeypatch.setattr(direct, "GEMM_MAX_WORK", 1 << 22)
    calls, original = [], np.matmul
    monkeypatch.setattr(np, "matmul", lambda a, b, **kw: calls.append(a.shape) or original(a, b, **kw))
    rng = np.random.default_rng(bound)
    a, values = edge_values(rng, (1100, 64), bound), edge_values(rng, (64, 64), bound)
    spec = Requantize(19, 16, True, rng.integers(-(1 << 40), 1 << 40, 64))
    reference = expected(gemm(a, values, path="reference"), spec, -1)
    calls.clear()
    assert np.array_equal(gemm(a, prepare(values), a_bound=bound, requantize=spec), reference)
    assert len(calls) == 5 and sum(shape[0] for shape in calls) == 1100  # (rows of at most 10**6 multiply-adds)


def _calls(monkeypatch, name: str) -> list:
    calls, original = [], getattr(loops, name)
    monkeypatch.setattr(loops, name, lambda *args: calls.append(name) or original(*args))
    return calls


@pytest.mark.parametrize("rows", [1, 2])
def test_a_gemm_runs_directly_below_its_work_limit_and_on_blas_from_it(rows, monkeypatch):
    """(rows, 64) @ (64, GEMM_MAX_WORK / 128): half the limit, then the limit itself; the same bits either way (the
    limit set to 4M here: the rule, not the constant, and a reference product of seconds)."""
    monkeypatch.setattr(direct, "GEMM_MAX_WORK", 1 << 22)
    calls = _calls(monkeypatch, "gemm_chain")
    rng = np.random.default_rng(rows)
    N = direct.GEMM_MAX_WORK // 128
    a, values = edge_values(rng, (rows, 64), Q15), edge_values(rng, (64, N), Q15)
    spec = Requantize(20, 16, False, rng.integers(-(1 << 40), 1 << 40, N))
    out = gemm(a, prepare(values), a_bound=Q15, requantize=spec)
    assert np.array_equal(out, expected(gemm(a, values, path="reference"), spec, -1))
    assert calls == (["gemm_chain"] if rows == 1 else [])


@pytest.mark.parametrize("channels,side,images,third,direct_call", [
    (8, 8, 1, 2, True),  # im2col-planned (8 input channels): an image below CONV_MAX_WORK
    (8, 8, 1, 4, False),  # an image past it: the general kernels
    (8, 8, 2, 2, True),  # a batch of images each below it, in all below CONV_BATCH_MAX_WORK (here 2**21)
    (8, 8, 4, 2, False),  # ... in all past it
    (16, 16, 2, 2, False),  # Winograd-planned (16 channels, 16x16): CONV_MAX_WORK in all
])
def test_a_convolution_runs_directly_below_its_work_limits(channels, side, images, third, direct_call, monkeypatch):
    """(images, channels, side, side) by (OC, channels, 3, 3), same size, OC = third / 3 of CONV_MAX_WORK's channels
    an image; the same bits whichever kernel runs it."""
    monkeypatch.setattr(direct, "CONV_BATCH_MAX_WORK", 1 << 21)
    OC = third * direct.CONV_MAX_WORK // (3 * side * side * 9 * channels)
    plan = plan_conv((images, channels, side, side), (OC, channels, 3, 3), 1, Q15, Q15, strides=(1, 1),
                     pads=(1, 1, 1, 1), dilations=(1, 1))
    assert plan.algorithm == ("im2col" if channels == 8 else "winograd")
    calls = _calls(monkeypatch, "conv_requantize")
    rng = np.random.default_rng(images)
    x, values = edge_values(rng, (images, channels, side, side), Q15), edge_values(rng, (OC, channels, 3, 3), Q15)
    spec = Requantize(22, 16, True, rng.integers(-(1 << 40), 1 << 40, OC))
    out = conv(x, prepare(values), pads=(1, 1, 1, 1), x_bound=Q15, requantize=spec)
    assert np.array_equal(out, expected(conv(x, values, pads=(1, 1, 1, 1), path="reference"), spec, 1))
    assert calls == (["conv_requantize"] if direct_call else [])


@pytest.mark.parametrize("acc_bound,shift,bias,applies", [
    (FLOAT64_EXACT - 1, 9, None, True),
    (FLOAT64_EXACT, 9, None, False),  # a sum float64 may not hold exactly
    (1 << 40, 0, None, True),  # no shift: saturation alone
    (1 << 40, -1, None, False),  # a left shift: not the loops' integer form
    (1 << 40, 63, None, False),
    (1 << 40, 9, 1 << 62, False),  # acc + bias could pass the int64 accumulator
])
def test_the_direct_loops_take_only_products_exact_in_float64_with_a_shifting_epilogue(acc_bound, shift, bias,
                                                                                         applies):
    spec = Requantize(shift, 16, False, None if bias is None else np.array([bias, -3]))
    assert direct.applies(10, direct.GEMM_MAX_WORK, acc_bound, spec) is applies
    assert not direct.applies(direct.GEMM_MAX_WORK, direct.GEMM_MAX_WORK, 1, Requantize(9))
    assert not direct.applies(10, direct.GEMM_MAX_WORK, 1, None)


def test_inspect_says_which_products_run_directly(example_program):
    """`vinfer inspect`'s epilogue line: a Gemm's rows that fit under GEMM_MAX_WORK, a convolution's limit."""
    from verifier.ops._common import epilogue_plan

    for node in example_program.nodes:
        plan = epilogue_plan(node.op, node.attrs, node.consts)
        if node.op == "Gemm":
            K, N = node.consts["weight"].shape
            rows = (direct.GEMM_MAX_WORK - 1) // (K * N)
            assert f"up to {rows} rows, product and epilogue in one compiled call" in plan
        elif node.op == "Conv":
            assert f"fewer than {direct.CONV_MAX_WORK} multiply-adds" in plan
