"""The epilogue fused into the float product (verifier.kernels.epilogue.Requantize): a convolution or GEMM
given one returns exactly fixedpoint.requantize(reference accumulator + bias) - the one rounding rule,
ties included - then the fused Relu, on every kernel path (im2col, 1x1, depthwise, Winograd, GEMM), and
falls back to the unfused epilogue where the fused bound does not hold."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import fixedpoint
from verifier.kernels import conv, gemm, plan_conv, plan_gemm, prepare, winograd
from verifier.kernels.epilogue import FUSED_LIMIT, Requantize

from test_kernels_conv import CASES, WINOGRAD_CASES, Q15, edge_values


def expected(acc, spec: Requantize, channel_axis: int) -> np.ndarray:
    if spec.bias is not None:
        shape = [1] * acc.ndim
        shape[channel_axis] = -1
        acc = acc + spec.bias.reshape(shape)
    out = fixedpoint.requantize(acc, spec.shift, 0, spec.bits)
    return np.maximum(out, 0) if spec.relu else out


def with_ties(rng, acc, shift):
    """Move about a third of the accumulators onto exact ties (x = k * 2**shift + 2**(shift-1))."""
    if shift == 0:
        return acc
    ties = (acc >> shift << shift) + (1 << (shift - 1))
    ties = np.where(np.abs(ties) < FUSED_LIMIT // 2, ties, acc)
    return np.where(rng.random(acc.shape) < 0.3, ties, acc)


@pytest.mark.parametrize("doubled", [True, False])
@settings(max_examples=200, deadline=None)
@given(shift=st.integers(0, 62), bits=st.sampled_from([8, 16, 24]), relu=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_finish_rounds_exactly_like_fixedpoint_requantize(doubled, shift, bits, relu, seed):
    """Both forms: the doubled one a float64 product holds, y = 2 (acc + bias) + 1/2 (exact below 2**52),
    and the halved one finish_float sums a float32 product into, z = acc + bias + 1/4 (below 2**51)."""
    rng = np.random.default_rng(seed)
    limit = FUSED_LIMIT // 2
    magnitudes = rng.integers(0, 49, 600)
    x = (rng.integers(0, limit, 600) >> (48 - magnitudes)) * rng.choice([-1, 1], 600)
    x = with_ties(rng, x, shift)
    negative_tie = -(1 << (shift - 1)) if 0 < shift <= 49 else -1  # x = -h: the first value rounding to -1
    x[:6] = [0, -1, 1, limit - 1, -(limit - 1), negative_tie]
    spec = Requantize(shift, bits, relu)
    held = 2.0 * x.astype(np.float64) + 0.5 if doubled else x.astype(np.float64) + 0.25
    assert np.array_equal(spec.finish(held, doubled=doubled), expected(x, spec, 0))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,strides,pads,dilations,group", CASES)
def test_fused_convolution_equals_the_reference_epilogue(x_shape, w_shape, strides, pads, dilations, group, relu, small_products):
    rng = np.random.default_rng(sum(x_shape) + 7 * sum(w_shape) + relu)
    x, w = edge_values(rng, x_shape, Q15), edge_values(rng, w_shape, Q15)
    geometry = dict(strides=strides, pads=pads, dilations=dilations, group=group)
    acc = conv(x, w, path="reference", **geometry)
    for shift, bias in ((17, rng.integers(-(1 << 40), 1 << 40, w_shape[0])), (9, None), (0, None)):
        spec = Requantize(shift, 16, relu, bias)
        assert spec.fusable(int(np.prod(w_shape[1:])) * Q15 * Q15)
        assert np.array_equal(conv(x, prepare(w), requantize=spec, **geometry), expected(acc, spec, 1))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,pads", WINOGRAD_CASES)
def test_fused_winograd_equals_the_reference_epilogue(x_shape, w_shape, pads, relu, monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd, "TILES_PER_CHANNEL", 1 << 20)
    monkeypatch.setattr(winograd, "MIN_TILES_PER_IMAGE", 1)
    monkeypatch.setattr(winograd, "BAND_BYTES", 1)  # several bands of tile rows
    rng = np.random.default_rng(sum(x_shape) + relu)
    x, w = edge_values(rng, x_shape, Q15), edge_values(rng, w_shape, Q15)
    acc = conv(x, w, pads=pads, path="reference")
    spec = Requantize(21, 16, relu, rng.integers(-(1 << 40), 1 << 40, w_shape[0]))
    assert winograd._fusable(spec, winograd.plan(x_shape[1], Q15, Q15), x_shape[1], (Q15, Q15))
    assert np.array_equal(conv(x, prepare(w), pads=pads, requantize=spec), expected(acc, spec, 1))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("a_shape", [(1, 7), (33, 50), (2, 3, 17, 40)])
def test_fused_gemm_equals_the_reference_epilogue(a_shape, relu, small_products):
    rng = np.random.default_rng(sum(a_shape) + relu)
    a, b = edge_values(rng, a_shape, Q15), edge_values(rng, (a_shape[-1], 11), Q15)
    acc = gemm(a, b, path="reference")
    for shift, bias in ((23, rng.integers(-(1 << 45), 1 << 45, 11)), (4, None)):
        spec = Requantize(shift, 16, relu, bias)
        assert np.array_equal(gemm(a, prepare(b), requantize=spec), expected(acc, spec, -1))


def test_a_bias_beyond_the_fused_bound_takes_the_unfused_epilogue_with_the_same_bits():
    rng = np.random.default_rng(5)
    x, w = edge_values(rng, (2, 8, 6, 6), Q15), edge_values(rng, (4, 8, 3, 3), Q15)
    bias = np.array([1 << 55, -(1 << 55), 3, -3], dtype=np.int64)
    spec = Requantize(30, 16, False, bias)
    assert not spec.fusable(72 * Q15 * Q15)
    acc = conv(x, w, pads=(1, 1, 1, 1), path="reference")
    assert np.array_equal(conv(x, prepare(w), pads=(1, 1, 1, 1), requantize=spec), expected(acc, spec, 1))
    a, b = x.reshape(96, 6), edge_values(rng, (6, 4), Q15)
    assert np.array_equal(gemm(a, prepare(b), requantize=spec), expected(gemm(a, b, path="reference"), spec, -1))


def test_a_left_shift_is_never_fused():
    assert not Requantize(-1).fusable(1) and Requantize(0).fusable(1) and not Requantize(63).fusable(1)


# -- the float32 form: products of 8-bit operands, summed onto bias + 1/4 in float64 ----------------------

Q7 = 127
FLOAT32_CASES = CASES + [
    ((1, 130, 5, 5), (9, 130, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # K = 1170 > 1040: two float32 chunks
    ((3, 6, 12, 12), (5, 6, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),  # N > 1, wide: finished then reordered
]


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,strides,pads,dilations,group", FLOAT32_CASES)
def test_fused_float32_convolution_equals_the_reference_epilogue(x_shape, w_shape, strides, pads, dilations, group,
                                                                 relu, small_products):
    rng = np.random.default_rng(sum(x_shape) + 5 * sum(w_shape) + relu)
    x, w = edge_values(rng, x_shape, Q7), edge_values(rng, w_shape, Q7)
    geometry = dict(strides=strides, pads=pads, dilations=dilations, group=group)
    acc = conv(x, w, path="reference", **geometry)
    K = int(np.prod(w_shape[1:]))
    assert plan_conv(x_shape, w_shape, group, Q7, Q7, **{k: geometry[k] for k in ("strides", "pads", "dilations")}
                     ).path == "float32"
    for shift, bias in ((11, rng.integers(-(1 << 40), 1 << 40, w_shape[0])), (5, None), (0, None)):
        spec = Requantize(shift, 16, relu, bias)
        assert spec.fusable(K * Q7 * Q7)
        assert np.array_equal(conv(x, prepare(w), x_bound=Q7, requantize=spec, **geometry), expected(acc, spec, 1))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("a_shape", [(1, 7), (33, 50), (2, 3, 17, 40), (4, 2500)])  # K = 2500: three chunks
def test_fused_float32_gemm_equals_the_reference_epilogue(a_shape, relu, small_products):
    rng = np.random.default_rng(sum(a_shape) + relu)
    a, b = edge_values(rng, a_shape, Q7), edge_values(rng, (a_shape[-1], 11), Q7)
    acc = gemm(a, b, path="reference")
    assert plan_gemm(a_shape[-1], Q7, Q7).path == "float32"
    for shift, bias in ((13, rng.integers(-(1 << 45), 1 << 45, 11)), (2, None)):
        spec = Requantize(shift, 16, relu, bias)
        assert np.array_equal(gemm(a, prepare(b), a_bound=Q7, requantize=spec), expected(acc, spec, -1))


BATCH_CASES = [
    # (x shape, w shape, pads): stride-1 2-D convolutions of a batch
    ((7, 3, 6, 6), (5, 3, 3, 3), (1, 1, 1, 1)),
    ((5, 2, 9, 7), (4, 2, 5, 3), (2, 0, 1, 1)),  # asymmetric kernel and pads
    ((6, 4, 5, 5), (3, 4, 1, 1), (0, 0, 0, 0)),  # 1x1
]


@pytest.mark.parametrize("bits", [16, 8])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("x_shape,w_shape,pads", BATCH_CASES)
def test_a_batch_in_bands_of_images_equals_the_reference_epilogue(x_shape, w_shape, pads, relu, bits, monkeypatch):
    """Columns past COLUMN_BAND_BYTES go in bands of images (here 2 at a time, the last band shorter): the same
    bits as the reference, at the 16-bit edge (float64 products) and the 8-bit one (float32)."""
    from verifier.kernels import convolution, direct, limbs

    monkeypatch.setenv(limbs.ENVIRONMENT, "off")  # (the float paths: VINFER_LIMB_PRODUCTS=always would take limbs)
    monkeypatch.setattr(direct, "CONV_MAX_WORK", 0)  # (nor the direct loop, small products)
    bound = fixedpoint.qmax(bits)
    K = int(np.prod(w_shape[1:]))
    positions = x_shape[2] * x_shape[3]  # (output = input size with these pads)
    column_bytes = (K + 1) * positions * 8 if bits == 16 else K * positions * 4  # (float64 with the ones)
    monkeypatch.setattr(convolution, "COLUMN_BAND_BYTES", 2 * column_bytes)
    bands = []
    monkeypatch.setattr(convolution.loops, "im2col", lambda x, *rest, im2col=convolution.loops.im2col:
                        bands.append(x.shape[0]) or im2col(x, *rest))
    rng = np.random.default_rng(sum(x_shape) + relu + bits)
    x, w = edge_values(rng, x_shape, bound), edge_values(rng, w_shape, bound)
    acc = conv(x, w, pads=pads, path="reference")
    spec = Requantize(13, 16, relu, rng.integers(-(1 << 40), 1 << 40, w_shape[0]))
    assert np.array_equal(conv(x, prepare(w), pads=pads, x_bound=bound, requantize=spec), expected(acc, spec, 1))
    assert bands[0] == 2 and sum(bands) == x_shape[0]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_bands_of_images_equal_the_reference_on_random_geometries(data):
    """Any stride-1 2-D geometry (kernel, dilation, pads, channels) and band size: the banded fused product gives
    the reference epilogue's integers."""
    from verifier.kernels import convolution, direct, limbs

    kernel = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    dilations = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    pads = tuple(data.draw(st.integers(0, 2)) for _ in range(4))
    spatial = tuple(data.draw(st.integers(max(1, d * (k - 1) + 1 - pads[i] - pads[i + 2]), 7))
                    for i, (k, d) in enumerate(zip(kernel, dilations)))
    x_shape = (data.draw(st.integers(2, 9)), data.draw(st.integers(1, 4))) + spatial
    w_shape = (data.draw(st.integers(1, 5)), x_shape[1]) + kernel
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    bound = data.draw(st.sampled_from([7, 127, Q15]))  # (small values: few outputs saturate, every rounding shows)
    x, w = edge_values(rng, x_shape, bound), edge_values(rng, w_shape, bound)
    bias_bound = 1 << data.draw(st.integers(0, 40))
    spec = Requantize(data.draw(st.integers(1, 30)), 16, data.draw(st.booleans()),
                      rng.integers(-bias_bound, bias_bound, w_shape[0]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(limbs.ENVIRONMENT, "off")
        patch.setattr(direct, "CONV_MAX_WORK", 0)
        patch.setattr(convolution, "COLUMN_BAND_BYTES", data.draw(st.integers(1, 4000)))
        got = conv(x, prepare(w), pads=pads, dilations=dilations, x_bound=Q15, requantize=spec)
    assert np.array_equal(got, expected(conv(x, w, pads=pads, dilations=dilations, path="reference"), spec, 1))
