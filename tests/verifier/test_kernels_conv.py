"""verifier.kernels.conv: ONNX Conv semantics on integers. The fast path (im2col + exact BLAS,
vectorized depthwise) equals the direct int64 reference bit for bit, and both equal onnxruntime's
float Conv on small integer-valued inputs, where float32 is exact as well."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from verifier.fixedpoint import qmax
from verifier.kernels import conv, plan_conv, prepare, winograd

Q15 = qmax(16)


def onnxruntime_conv(x, w, strides, pads, dilations, group):
    rank = x.ndim - 2
    node = helper.make_node(
        "Conv", ["x", "w"], ["y"], strides=list(strides), pads=list(pads), dilations=list(dilations),
        group=group, kernel_shape=list(w.shape[2:]),
    )
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(w.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    assert rank in (1, 2, 3)
    return session.run(None, {"x": x.astype(np.float32)})[0]


def edge_values(rng, shape, bound):
    values = rng.integers(-bound, bound + 1, size=shape)
    edges = rng.random(shape) < 0.5
    return np.where(edges, np.where(rng.random(shape) < 0.5, bound, -bound), values).astype(np.int64)


CASES = [
    # (x shape, w shape, strides, pads, dilations, group)
    ((1, 3, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    ((2, 4, 9, 7), (6, 4, 3, 2), (2, 1), (1, 0, 2, 1), (1, 2), 1),
    ((1, 6, 10, 10), (6, 2, 3, 3), (1, 2), (0, 1, 1, 0), (2, 1), 3),
    ((2, 8, 7, 7), (8, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8),  # depthwise
    ((1, 4, 9, 9), (8, 1, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 4),  # depthwise, multiplier 2
    ((2, 3, 11, 10), (3, 1, 5, 3), (3, 2), (2, 0, 1, 2), (2, 3), 3),  # depthwise, strides 3/2, dilated
    ((1, 4, 13), (8, 1, 4), (2,), (3, 0), (2,), 4),  # depthwise 1-D
    ((1, 2, 5, 6, 7), (2, 1, 3, 2, 3), (2, 1, 3), (1, 0, 2, 1, 1, 0), (1, 2, 1), 2),  # depthwise 3-D
    ((1, 5, 6, 6), (7, 5, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # 1x1: no im2col copy
    ((1, 5, 7, 7), (7, 5, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),  # 1x1 strided (ResNet downsample)
    ((3, 4, 20), (6, 2, 5), (3,), (2, 1), (2,), 2),  # 1-D
    ((1, 2, 5, 6, 4), (3, 2, 2, 3, 2), (1, 2, 1), (1, 0, 1, 0, 1, 1), (2, 1, 1), 1),  # 3-D
    ((1, 3, 4, 4), (2, 3, 4, 4), (1, 1), (0, 0, 0, 0), (1, 1), 1),  # kernel covers the input
    ((1, 3, 75, 70), (4, 3, 5, 5), (2, 2), (2, 1, 2, 1), (1, 1), 1),  # strided, past SMALL_COLUMNS: numpy's gather
    ((1, 16, 60, 62), (4, 16, 3, 3), (2, 2), (1, 0, 0, 1), (1, 1), 1),  # 3x3 stride 2 past SMALL_COLUMNS: compiled
]


@pytest.mark.parametrize("x_shape,w_shape,strides,pads,dilations,group", CASES)
def test_fast_equals_reference_at_the_16_bit_edge(x_shape, w_shape, strides, pads, dilations, group):
    rng = np.random.default_rng(sum(x_shape) + sum(w_shape))
    x, w = edge_values(rng, x_shape, Q15), edge_values(rng, w_shape, Q15)
    geometry = dict(strides=strides, pads=pads, dilations=dilations, group=group)
    fast = conv(x, w, **geometry)
    assert fast.dtype == np.int64
    assert np.array_equal(fast, conv(x, w, path="reference", **geometry))


@pytest.mark.parametrize("x_shape,w_shape,strides,pads,dilations,group", CASES)
def test_matches_onnxruntime_where_float_is_exact(x_shape, w_shape, strides, pads, dilations, group):
    rng = np.random.default_rng(7 + sum(w_shape))
    x, w = rng.integers(-15, 16, x_shape), rng.integers(-15, 16, w_shape)
    assert np.prod(w_shape[1:]) * 15 * 15 < 2**24  # onnxruntime's float32 sums are exact too
    expected = onnxruntime_conv(x, w, strides, pads, dilations, group)
    geometry = dict(strides=strides, pads=pads, dilations=dilations, group=group)
    for path in ("fast", "reference"):
        got = conv(x, w, path=path, **geometry)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected.astype(np.int64))


def test_long_kernels_of_large_values_are_chunked_and_exact():
    rng = np.random.default_rng(8)
    bound = 1 << 24
    x, w = edge_values(rng, (1, 40, 5, 5), bound), edge_values(rng, (3, 40, 3, 3), bound)
    plan = plan_conv(x.shape, w.shape, 1, bound, bound)
    assert plan.path == "float64" and plan.chunk < 360
    geometry = dict(strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)
    assert np.array_equal(conv(x, w, **geometry), conv(x, w, path="reference", **geometry))


def test_small_values_use_float32_and_stay_exact():
    rng = np.random.default_rng(9)
    x, w = edge_values(rng, (2, 8, 6, 6), 127), edge_values(rng, (4, 8, 3, 3), 127)
    assert plan_conv(x.shape, w.shape, 1, 127, 127).path == "float32"
    geometry = dict(strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)
    assert np.array_equal(conv(x, w, **geometry), conv(x, w, path="reference", **geometry))


def test_prepared_weights_give_the_same_bits():
    rng = np.random.default_rng(10)
    x, w = edge_values(rng, (1, 4, 6, 6), Q15), edge_values(rng, (4, 1, 3, 3), Q15)
    geometry = dict(strides=(1, 1), pads=(1, 1, 1, 1), group=4)
    assert np.array_equal(conv(x, prepare(w), **geometry), conv(x, w, path="reference", **geometry))


def test_defaults_are_unit_strides_no_pads():
    x = np.arange(16, dtype=np.int64).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 2, 2), dtype=np.int64)
    assert np.array_equal(conv(x, w)[0, 0], x[0, 0, :3, :3] + x[0, 0, 1:, :3] + x[0, 0, :3, 1:] + x[0, 0, 1:, 1:])


def test_channels_that_do_not_split_into_groups_are_rejected():
    with pytest.raises(ValueError, match="groups"):
        conv(np.zeros((1, 6, 4, 4), dtype=np.int64), np.zeros((4, 4, 3, 3), dtype=np.int64), group=2)


def test_kernel_larger_than_padded_input_is_rejected():
    with pytest.raises(ValueError, match="exceeds"):
        conv(np.zeros((1, 1, 2, 2), dtype=np.int64), np.zeros((1, 1, 3, 3), dtype=np.int64))


def test_wrong_number_of_pads_is_rejected():
    with pytest.raises(ValueError, match="pads"):
        conv(np.zeros((1, 1, 4, 4), dtype=np.int64), np.zeros((1, 1, 3, 3), dtype=np.int64), pads=(1, 1))


@st.composite
def conv_problems(draw):
    rank = draw(st.integers(1, 2))
    group = draw(st.sampled_from([1, 2, 3]))
    cg, ocg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(rank)]
    dilations = [draw(st.integers(1, 2)) for _ in range(rank)]
    strides = [draw(st.integers(1, 3)) for _ in range(rank)]
    pads = [draw(st.integers(0, 2)) for _ in range(2 * rank)]
    spatial = [
        draw(st.integers(max(1, d * (k - 1) + 1 - pads[i] - pads[i + rank]), 9))
        for i, (k, d) in enumerate(zip(kernel, dilations))
    ]
    x_shape = (draw(st.integers(1, 2)), cg * group, *spatial)
    w_shape = (ocg * group, cg, *kernel)
    return x_shape, w_shape, strides, pads, dilations, group


@settings(max_examples=150, deadline=None)
@given(problem=conv_problems(), bits=st.sampled_from([4, 8, 16]), seed=st.integers(0, 2**32 - 1))
def test_fast_equals_reference_on_random_geometries(problem, bits, seed):
    x_shape, w_shape, strides, pads, dilations, group = problem
    rng = np.random.default_rng(seed)
    x, w = edge_values(rng, x_shape, qmax(bits)), edge_values(rng, w_shape, qmax(bits))
    geometry = dict(strides=strides, pads=pads, dilations=dilations, group=group)
    assert np.array_equal(conv(x, w, **geometry), conv(x, w, path="reference", **geometry))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(8))
def test_random_geometries_match_onnxruntime(seed):
    rng = np.random.default_rng(100 + seed)
    rank = 1 + seed % 3
    group = [1, 2, 4][seed % 3]
    kernel = rng.integers(1, 4, rank)
    dilations, strides = rng.integers(1, 3, rank), rng.integers(1, 3, rank)
    pads = rng.integers(0, 2, 2 * rank)
    spatial = [int(d * (k - 1) + 1 + rng.integers(0, 5)) for k, d in zip(kernel, dilations)]
    x_shape = (2, 2 * group, *spatial)
    w_shape = (3 * group, 2, *kernel)
    x, w = rng.integers(-15, 16, x_shape), rng.integers(-15, 16, w_shape)
    expected = onnxruntime_conv(x, w, strides, pads, dilations, group)
    assert np.array_equal(conv(x, w, strides=strides, pads=pads, dilations=dilations, group=group), expected)


@pytest.fixture
def winograd_for_small_shapes(monkeypatch):
    """Take the Winograd path for the small shapes a test can afford to check against the reference
    (in production it only runs where it is faster: many channels and tiles)."""
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1)
    monkeypatch.setattr(winograd, "TILES_PER_CHANNEL", 1 << 20)
    monkeypatch.setattr(winograd, "MIN_TILES_PER_IMAGE", 1)
    monkeypatch.setattr(winograd, "LARGE_MIN_CHANNELS", 1)


@pytest.fixture(params=["winograd", "winograd4x4"])
def winograd_variant(request, monkeypatch, winograd_for_small_shapes):
    """Each Winograd algorithm in turn, F(2x2, 3x3) and F(4x4, 3x3), wherever its sums are exact."""
    monkeypatch.setattr(winograd, "LARGE_TILE_WORK", 0.0 if request.param == "winograd" else 100.0)
    return request.param


WINOGRAD_CASES = [
    # (x shape, w shape, pads): 3x3 stride-1 convolutions the Winograd path takes
    ((1, 16, 12, 12), (16, 16, 3, 3), (1, 1, 1, 1)),
    ((2, 16, 11, 13), (24, 16, 3, 3), (1, 1, 1, 1)),  # odd output sizes: the last tile is cropped
    ((1, 20, 14, 11), (16, 20, 3, 3), (0, 2, 1, 0)),  # asymmetric pads
    ((1, 16, 16, 16), (16, 16, 3, 3), (0, 0, 0, 0)),  # no pads
    ((1, 3, 5, 4), (2, 3, 3, 3), (0, 0, 0, 0)),  # a single row of tiles
]


@pytest.mark.parametrize("x_shape,w_shape,pads", WINOGRAD_CASES)
def test_winograd_path_equals_reference_at_the_16_bit_edge(x_shape, w_shape, pads, winograd_variant):
    assert winograd.applies(x_shape, w_shape, (1, 1), pads, (1, 1), 1)
    assert plan_conv(x_shape, w_shape, 1, Q15, Q15, strides=(1, 1), pads=pads,
                     dilations=(1, 1)).algorithm == winograd_variant
    rng = np.random.default_rng(sum(x_shape))
    x, w = edge_values(rng, x_shape, Q15), edge_values(rng, w_shape, Q15)
    expected = conv(x, w, pads=pads, path="reference")
    assert np.array_equal(conv(x, w, pads=pads), expected)
    assert np.array_equal(conv(x, prepare(w), pads=pads), expected)


def test_winograd_in_bands_of_one_tile_row_equals_reference(monkeypatch, winograd_variant):
    monkeypatch.setattr(winograd, "BAND_BYTES", 1)
    rng = np.random.default_rng(11)
    x, w = edge_values(rng, (2, 16, 13, 12), Q15), edge_values(rng, (16, 16, 3, 3), Q15)
    assert np.array_equal(conv(x, w, pads=(1, 1, 1, 1)), conv(x, w, pads=(1, 1, 1, 1), path="reference"))


def test_winograd_with_chunked_products_and_int64_output_transform_is_exact():
    bound = 1 << 21
    plan = winograd.plan(64, bound, bound)
    assert plan.path == "float64" and plan.chunk < 64
    assert winograd.applies((1, 64, 16, 16), (64, 64, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1)
    rng = np.random.default_rng(12)
    x, w = edge_values(rng, (1, 64, 16, 16), bound), edge_values(rng, (64, 64, 3, 3), bound)
    assert np.array_equal(conv(x, w, pads=(1, 1, 1, 1)), conv(x, w, pads=(1, 1, 1, 1), path="reference"))


def test_winograd_matches_onnxruntime_where_float_is_exact(winograd_variant):
    rng = np.random.default_rng(13)
    x, w = rng.integers(-15, 16, (1, 16, 12, 12)), rng.integers(-15, 16, (16, 16, 3, 3))
    expected = onnxruntime_conv(x, w, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert np.array_equal(conv(x, w, pads=(1, 1, 1, 1)), expected.astype(np.int64))


def test_winograd_is_not_used_for_strided_dilated_or_grouped_convolutions():
    base = dict(x_shape=(1, 64, 28, 28), w_shape=(64, 64, 3, 3), strides=(1, 1), pads=(1, 1, 1, 1),
                dilations=(1, 1), group=1)
    assert winograd.applies(**base)
    assert not winograd.applies(**{**base, "strides": (2, 2)})
    assert not winograd.applies(**{**base, "dilations": (2, 2)})
    assert not winograd.applies(**{**base, "w_shape": (64, 32, 3, 3), "group": 2})
    assert not winograd.applies(**{**base, "w_shape": (64, 64, 5, 5)})


def test_a_batch_of_small_images_takes_im2col_and_one_small_image_winograd():
    small = dict(w_shape=(32, 16, 3, 3), strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=1)
    assert not winograd.applies(x_shape=(256, 16, 8, 8), **small)  # 16 tiles an image
    assert winograd.applies(x_shape=(32, 16, 16, 16), **small)  # 64
    assert winograd.applies(x_shape=(1, 16, 13, 13), **{**small, "w_shape": (16, 16, 3, 3)})
    assert plan_conv((256, 16, 8, 8), (32, 16, 3, 3), 1, Q15, Q15, strides=(1, 1), pads=(1, 1, 1, 1),
                     dilations=(1, 1)).algorithm == "im2col"


def test_large_winograd_tiles_where_they_save_work_over_small_ones():
    """F(4x4, 3x3) from 64 input channels on images from about 20x20 (36 products per 16 outputs against 16 per 4,
    less the cropped tiles); at 13x13 and 14x14 its cropped tiles cost more than they save (1.1-1.3x slower at 48 to
    256 channels), and with fewer channels its transforms (bench_kernels.py --winograd)."""
    def algorithm(x_shape, channels=64):
        return plan_conv(x_shape, (channels, x_shape[1], 3, 3), 1, Q15, Q15, strides=(1, 1), pads=(1, 1, 1, 1),
                         dilations=(1, 1)).algorithm

    assert algorithm((1, 64, 56, 56)) == algorithm((1, 96, 27, 27)) == algorithm((8, 64, 28, 28)) == "winograd4x4"
    assert algorithm((1, 128, 13, 13), 192) == algorithm((1, 256, 14, 14)) == "winograd"
    assert algorithm((1, 16, 55, 55)) == algorithm((1, 32, 27, 27)) == "winograd"  # (too few channels)


def test_large_winograd_tiles_are_refused_past_their_exact_bound():
    """Their products are exact below 2**53 and their output transform below 2**63: at 16 bits that holds up to
    2**63 / (2304 * 4900 * 32767**2) channels, 759; past it the small tiles (chunked) take the convolution."""
    limit = (1 << 63) // (winograd.LARGE_OUTPUT_GROWTH * 4900 * Q15 * Q15)
    assert winograd.plan_large((1, limit, 28, 28), (1, 1, 1, 1), Q15, Q15) is not None
    assert winograd.plan_large((1, limit + 1, 28, 28), (1, 1, 1, 1), Q15, Q15) is None
    assert winograd.plan_large((1, 64, 28, 28), (1, 1, 1, 1), 1 << 21, 1 << 21) is None
    assert plan_conv((1, limit + 1, 28, 28), (64, limit + 1, 3, 3), 1, Q15, Q15, strides=(1, 1), pads=(1, 1, 1, 1),
                     dilations=(1, 1)).algorithm == "winograd"


@pytest.mark.parametrize("shift,relu,bias_bits", [(20, True, 30), (0, False, 30), (9, False, 61), (63, False, 10)])
def test_large_winograd_tiles_finish_every_epilogue_form(shift, relu, bias_bits):
    """In the output transform's integer rounding (shifts 1..62 with a bias that fits), else applied after it."""
    from verifier.kernels.epilogue import Requantize

    rng = np.random.default_rng(shift + bias_bits)
    x, w = edge_values(rng, (2, 64, 24, 23), Q15), prepare(edge_values(rng, (20, 64, 3, 3), Q15))
    spec = Requantize(shift, 16, relu, rng.integers(-(1 << bias_bits), 1 << bias_bits, 20))
    assert plan_conv(x.shape, w.shape, 1, Q15, Q15, strides=(1, 1), pads=(1, 1, 1, 1),
                     dilations=(1, 1)).algorithm == "winograd4x4"
    expected = spec.apply(conv(x, w.values, pads=(1, 1, 1, 1), path="reference"), 1)
    assert np.array_equal(conv(x, w, pads=(1, 1, 1, 1), x_bound=Q15, requantize=spec), expected)


@pytest.mark.parametrize("w_shape,group", [((2, 4, 3, 3), 1), ((4, 1, 3, 3), 4), ((64, 4, 3, 3), 1)])
def test_an_empty_batch_gives_an_empty_output(w_shape, group):
    out = conv(np.zeros((0, 4, 12, 12), dtype=np.int64), np.ones(w_shape, dtype=np.int64), pads=(1, 1, 1, 1),
               group=group)
    assert out.shape == (0, w_shape[0], 12, 12) and out.dtype == np.int64


def test_scratch_buffers_start_on_a_cache_line_whatever_their_size_and_reuse():
    """Vector loads of columns that straddle cache lines ran 20% slower (window.ALIGNMENT)."""
    from verifier.kernels import window

    for name, shape, dtype in (("align_a", (3, 1000), np.float64), ("align_a", (7, 5000), np.float64),
                               ("align_a", (2, 3), np.float64), ("align_b", (17,), np.uint8),
                               ("align_b", (100000,), np.int64), ("align_c", (0,), np.float32)):
        buffer = window.scratch(name, shape, dtype)
        assert buffer.shape == shape and buffer.dtype == dtype and buffer.flags.c_contiguous
        assert buffer.ctypes.data % window.ALIGNMENT == 0
        buffer[...] = 1  # the whole view is writable memory of the buffer


def test_a_scratch_view_is_handed_out_again_until_its_buffer_grows():
    from verifier.kernels import window

    window.release_scratch()
    small = window.scratch("reuse", (4, 5), np.float64)
    assert window.scratch("reuse", (4, 5), np.float64) is small  # (a layer's shape, asked again on every run)
    large = window.scratch("reuse", (400, 500), np.float64)  # the buffer grows: the old views are dropped
    again = window.scratch("reuse", (4, 5), np.float64)
    assert again is not small and np.shares_memory(again, large) and not np.shares_memory(again, small)
    assert window.scratch_bytes() == large.nbytes
    window.release_scratch()
    assert window.scratch_bytes() == 0 and window.scratch("reuse", (4, 5), np.float64) is not again


IN_PLACE_CASES = {
    # name: (x shape, w shape, strides, pads, group, bound, the kernel function that must run)
    "im2col": ((2, 5, 9, 9), (6, 5, 3, 3), (2, 2), (1, 1, 1, 1), 1, Q15, "_finished_columns"),
    "im2col float32": ((2, 5, 9, 9), (6, 5, 3, 3), (2, 1), (1, 0, 1, 0), 1, 40, "_finished_columns"),
    "bands": ((5, 4, 8, 8), (6, 4, 3, 3), (1, 1), (1, 1, 1, 1), 1, Q15, "_im2col_in_bands"),
    "winograd": ((2, 4, 10, 10), (6, 4, 3, 3), (1, 1), (1, 1, 1, 1), 1, Q15, "loops.winograd_output"),
    "winograd 4x4": ((2, 4, 8, 8), (6, 4, 3, 3), (1, 1), (1, 1, 1, 1), 1, Q15, "loops.winograd4_output"),
    "depthwise": ((2, 6, 7, 7), (6, 1, 3, 3), (1, 2), (1, 1, 0, 1), 6, Q15, "loops.depthwise_fused"),
    "depthwise int64": ((2, 6, 7, 7), (12, 1, 3, 3), (2, 1), (1, 0, 1, 1), 6, Q15, "loops.depthwise"),
    "limbs": ((2, 8, 6, 6), (5, 8, 3, 3), (1, 1), (1, 1, 1, 1), 1, Q15, "limbs.conv2d"),
    "direct": ((2, 6, 7, 7), (4, 3, 3, 3), (2, 1), (1, 0, 1, 1), 2, Q15, "loops.conv_requantize"),
}


@pytest.mark.parametrize("case", IN_PLACE_CASES)
def test_every_fused_path_writes_into_a_channel_slice_of_a_larger_array(case, monkeypatch, winograd_for_small_shapes):
    """conv(..., out=) computes straight into the caller's array, a Concat's output in the interpreter: the same bits
    as a new array, and nothing written outside the slice."""
    from verifier.kernels import convolution, direct, limbs, loops
    from verifier.kernels.epilogue import Requantize

    x_shape, w_shape, strides, pads, group, bound, kernel = IN_PLACE_CASES[case]
    if not case.startswith("winograd"):
        monkeypatch.setattr(winograd, "MIN_CHANNELS", 1 << 20)
    if case == "bands":
        monkeypatch.setattr(convolution, "COLUMN_BAND_BYTES", 2000)
    if case != "direct":
        monkeypatch.setattr(direct, "CONV_MAX_WORK", 0)
    monkeypatch.setenv(limbs.ENVIRONMENT, "always" if case == "limbs" else "off")
    owner, _, name = kernel.rpartition(".")
    module = {"": convolution, "winograd": winograd, "limbs": limbs, "loops": loops}[owner]
    calls = []
    original = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args, **kwargs: calls.append(name) or original(*args, **kwargs))
    rng = np.random.default_rng(len(case))
    x, w = edge_values(rng, x_shape, bound), prepare(edge_values(rng, w_shape, bound))
    bias_bits = 55 if case == "depthwise int64" else 30  # (a bias too wide for the float64 form)
    spec = Requantize(9, 16, case == "depthwise", rng.integers(-(1 << bias_bits), 1 << bias_bits, w_shape[0]))
    geometry = dict(strides=strides, pads=pads, group=group, x_bound=bound, x_range=(-bound, bound), requantize=spec)
    expected = conv(x, w, **geometry)
    assert calls and np.array_equal(expected, spec.apply(conv(x, w, **{**geometry, "requantize": None}), 1))
    OC = w_shape[0]
    joined = np.full((x_shape[0], OC + 5) + expected.shape[2:], -7, dtype=np.int64)
    out = joined[:, 3:3 + OC]
    before = len(calls)
    assert conv(x, w, **geometry, out=out) is out and len(calls) == before + 1
    assert np.array_equal(out, expected)
    assert (joined[:, :3] == -7).all() and (joined[:, 3 + OC:] == -7).all()


def test_an_array_the_kernels_cannot_write_in_place_is_left_alone():
    from verifier.kernels.epilogue import Requantize

    rng = np.random.default_rng(3)
    x, w = edge_values(rng, (1, 4, 6, 6), Q15), prepare(edge_values(rng, (5, 4, 3, 3), Q15))
    spec = Requantize(9, 16)
    expected = conv(x, w, pads=(1, 1, 1, 1), requantize=spec)
    for out in (np.zeros((1, 5, 6, 6, 2), dtype=np.int64)[..., 0],  # strided within an image
                np.zeros((1, 5, 6, 5), dtype=np.int64), np.zeros((1, 5, 6, 6), dtype=np.int32)):
        result = conv(x, w, pads=(1, 1, 1, 1), requantize=spec, out=out)
        assert result is not out and np.array_equal(result, expected) and not out.any()
