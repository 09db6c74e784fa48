"""verifier.kernels pooling: max_pool and avg_pool_sum follow onnxruntime's MaxPool / AveragePool
(pads, strides, dilations, ceil_mode, count_include_pad) on integer-valued inputs."""

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from verifier.kernels import avg_pool_sum, max_pool


def onnxruntime_pool(op, x, **attributes):
    node = helper.make_node(op, ["x"], ["y"], **attributes)
    graph = helper.make_graph(
        [node], "pool",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.astype(np.float32)})[0]


GEOMETRIES = [
    # (x shape, kernel, strides, pads, dilations, ceil_mode)
    ((1, 2, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), False),
    ((2, 3, 9, 9), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    ((1, 2, 9, 8), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True),
    ((1, 1, 13, 13), (3, 3), (2, 2), (0, 0, 0, 0), (1, 1), True),  # SqueezeNet's ceil_mode pools
    ((1, 2, 10, 7), (3, 2), (2, 3), (1, 0, 2, 1), (1, 1), True),
    ((1, 2, 11), (3,), (2,), (1, 1), (1,), True),  # 1-D
    ((1, 1, 5, 6, 7), (2, 3, 2), (2, 1, 2), (0, 1, 1, 1, 0, 0), (1, 1, 1), False),  # 3-D
]


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("x_shape,kernel,strides,pads,dilations,ceil_mode", GEOMETRIES)
def test_max_pool_matches_onnxruntime(x_shape, kernel, strides, pads, dilations, ceil_mode, compiled):
    rng = np.random.default_rng(sum(x_shape))
    x = rng.integers(-32767, 32768, x_shape)
    expected = onnxruntime_pool("MaxPool", x, kernel_shape=list(kernel), strides=list(strides), pads=list(pads),
                                dilations=list(dilations), ceil_mode=int(ceil_mode))
    got = max_pool(x, kernel, strides=strides, pads=pads, dilations=dilations, ceil_mode=ceil_mode, compiled=compiled)
    assert got.dtype == np.int64
    assert np.array_equal(got, expected.astype(np.int64))


def test_max_pool_with_dilation_matches_onnxruntime():
    x = np.random.default_rng(3).integers(-100, 100, (1, 2, 10, 9))
    attributes = dict(kernel_shape=[2, 3], strides=[1, 2], pads=[1, 0, 0, 1], dilations=[2, 2])
    expected = onnxruntime_pool("MaxPool", x, **attributes)
    got = max_pool(x, (2, 3), strides=(1, 2), pads=(1, 0, 0, 1), dilations=(2, 2))
    assert np.array_equal(got, expected.astype(np.int64))


def test_max_pool_padding_never_wins_over_negative_values():
    x = np.full((1, 1, 3, 3), -5, dtype=np.int64)
    assert np.all(max_pool(x, (3, 3), pads=(1, 1, 1, 1)) == -5)


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("x_shape,kernel,strides,pads,dilations,ceil_mode",
                         [g for g in GEOMETRIES if set(g[4]) == {1}])
def test_avg_pool_sums_and_counts_match_onnxruntime(x_shape, kernel, strides, pads, dilations, ceil_mode,
                                                    count_include_pad):
    rng = np.random.default_rng(sum(x_shape) + 1)
    x = rng.integers(-1000, 1000, x_shape)
    expected = onnxruntime_pool("AveragePool", x, kernel_shape=list(kernel), strides=list(strides),
                                pads=list(pads), ceil_mode=int(ceil_mode), count_include_pad=int(count_include_pad))
    sums, counts = avg_pool_sum(x, kernel, strides=strides, pads=pads, dilations=dilations, ceil_mode=ceil_mode,
                                count_include_pad=count_include_pad)
    assert sums.dtype == counts.dtype == np.int64
    assert counts.shape == sums.shape[2:]
    np.testing.assert_allclose(sums / counts, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("count_include_pad", [False, True])
@pytest.mark.parametrize("x_shape,kernel,strides,pads,dilations,ceil_mode",
                         GEOMETRIES + [((1, 2, 10, 9), (2, 3), (1, 2), (1, 0, 0, 1), (2, 2), True),
                                       ((2, 2, 7, 6), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False)])
def test_avg_pool_in_one_pass_rounds_the_window_sums_as_the_reference(x_shape, kernel, strides, pads, dilations,
                                                                       ceil_mode, count_include_pad):
    """avg_pool (1-D and 2-D: one compiled loop) is rounding_divide(avg_pool_sum), ties and negative sums too."""
    from verifier.fixedpoint import rounding_divide
    from verifier.kernels import avg_pool

    rng = np.random.default_rng(sum(x_shape) + 2)
    x = rng.choice([-32767, 32767, -1, 1, 0, 5, -7], x_shape) * rng.integers(1, 3, x_shape)
    geometry = dict(strides=strides, pads=pads, dilations=dilations, ceil_mode=ceil_mode,
                    count_include_pad=count_include_pad)
    assert np.array_equal(avg_pool(x, kernel, **geometry), rounding_divide(*avg_pool_sum(x, kernel, **geometry)))


@pytest.mark.parametrize("kernel,strides", [((3, 3), (1, 1)), ((3, 3), (2, 2)), ((2, 2), (2, 2)), ((2, 3), (1, 2))])
def test_avg_pool_divides_rows_of_large_sums_in_int64_and_the_rest_in_float64(kernel, strides):
    """The compiled loop divides a row of window sums in float64 only when every numerator is below 2**53 (exact
    there); rows that reach past that take int64 division. Both next to each other, ties included, give the
    reference's integers."""
    from verifier.fixedpoint import rounding_divide
    from verifier.kernels import avg_pool

    rng = np.random.default_rng(len(kernel) + strides[0])
    x = rng.integers(-(1 << 20), 1 << 20, (2, 3, 9, 8))
    x[:, 1, 3:6] = rng.choice([-1, 1], (2, 9, 8))[:, :3] * ((1 << 59) + rng.integers(0, 9, (2, 3, 8)))
    x[1, 2] = rng.choice([(1 << 50) // 3, -((1 << 50) // 3) - 1, 3, -3], (9, 8))  # (at the float path's edge)
    geometry = dict(strides=strides, pads=(1, 0, 1, 1))
    assert np.array_equal(avg_pool(x, kernel, **geometry), rounding_divide(*avg_pool_sum(x, kernel, **geometry)))


def test_avg_pool_counts_only_real_elements_by_default():
    x = np.ones((1, 1, 3, 3), dtype=np.int64)
    sums, counts = avg_pool_sum(x, (3, 3), pads=(1, 1, 1, 1))
    assert np.array_equal(sums[0, 0], counts)
    assert counts[0, 0] == 4 and counts[1, 1] == 9


def test_avg_pool_includes_explicit_pads_when_asked():
    x = np.ones((1, 1, 3, 3), dtype=np.int64)
    _, counts = avg_pool_sum(x, (3, 3), pads=(1, 1, 1, 1), count_include_pad=True)
    assert np.all(counts == 9)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_compiled_max_pool_equals_the_numpy_passes(data):
    """loops.max_pool against the separable numpy passes over the padded input, on 1-D and 2-D geometries with
    any kernel, stride, dilation, padding and ceil_mode, values at the int64 edges, and strided inputs."""
    rank = data.draw(st.sampled_from([1, 2]))
    kernel = data.draw(st.tuples(*[st.integers(1, 4)] * rank))
    strides = data.draw(st.tuples(*[st.integers(1, 3)] * rank))
    dilations = data.draw(st.tuples(*[st.integers(1, 2)] * rank))
    pads = data.draw(st.tuples(*[st.integers(0, 2)] * (2 * rank)))
    pads = tuple(min(p, (k - 1) * d) for p, k, d in zip(pads, kernel * 2, dilations * 2))  # no empty window
    spatial = tuple(data.draw(st.integers((k - 1) * d + 1, 12)) for k, d in zip(kernel, dilations))
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))) + spatial
    values = data.draw(st.sampled_from([(-32767, 32767), (np.iinfo(np.int64).min, np.iinfo(np.int64).max)]))
    x = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(*values, shape, endpoint=True)
    if data.draw(st.booleans()):
        x = np.swapaxes(np.swapaxes(x, 0, 1).copy(), 0, 1)  # not C-contiguous
    geometry = dict(strides=strides, pads=pads, dilations=dilations, ceil_mode=data.draw(st.booleans()))
    compiled = max_pool(x, kernel, **geometry)
    assert np.array_equal(compiled, max_pool(x, kernel, compiled=False, **geometry))


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("x_shape,kernel,pads,dilations", [
    ((1, 1, 2, 2), (2, 2), (2, 2, 0, 0), (1, 1)),
    ((1, 1, 3, 2), (1, 2), (0, 2, 0, 2), (1, 4)),  # the window's two taps straddle the input's two columns
    ((1, 1, 4), (2,), (3, 0), (1,)),  # 1-D
])
def test_window_entirely_in_padding_is_rejected(x_shape, kernel, pads, dilations, compiled):
    with pytest.raises(ValueError, match="padding"):
        max_pool(np.zeros(x_shape, dtype=np.int64), kernel, pads=pads, dilations=dilations, compiled=compiled)


def test_kernel_rank_must_match_input():
    with pytest.raises(ValueError, match="kernel"):
        max_pool(np.zeros((1, 1, 4, 4), dtype=np.int64), (2,))


@pytest.mark.parametrize("kernel, strides, pads, ceil_mode, include", [
    ((3, 3), (1, 1), (1, 1, 1, 1), 0, 0), ((2, 3), (2, 1), (0, 1, 1, 1), 1, 0), ((3, 3), (2, 2), (1, 1, 1, 1), 1, 1),
    ((5,), (2,), (2, 1), 0, 0)])
def test_average_pool_divides_on_the_fast_path_as_the_reference_does(kernel, strides, pads, ceil_mode, include):
    """The AveragePool op's division by each window's count in one compiled pass (loops.avg_pool) gives
    the integers of fixedpoint.rounding_divide, halves and negative sums included."""
    from verifier.interpreter import forced_path
    from verifier.ops.averagepool import AveragePool

    rng = np.random.default_rng(len(kernel) + ceil_mode)
    x = rng.integers(-32767, 32768, (2, 3) + (9,) * len(kernel))
    x[0, 0] = rng.choice([-32767, 32767, -1, 1, 0], x.shape[2:])
    attrs = {"kernel_shape": list(kernel), "strides": list(strides), "dilations": [1] * len(kernel), "pads": list(pads),
             "ceil_mode": ceil_mode, "count_include_pad": include}
    results = []
    for path in ("fast", "reference"):
        with forced_path(path):
            results.append(AveragePool.run([x], attrs, {})[0])
    assert np.array_equal(results[0], results[1])


@pytest.mark.parametrize("x_shape", [(3, 4, 8, 8), (2, 3, 9, 7), (1, 2, 2, 2), (5, 1, 2, 13)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_the_2x2_stride_2_pool_equals_the_numpy_passes(x_shape, ceil_mode):
    """The commonest pool reads its two input rows directly (loops._max_pool_2x2); odd sizes leave a row or
    column out (or, with ceil_mode, take the row-buffer loop), values at the int64 edges."""
    rng = np.random.default_rng(sum(x_shape) + ceil_mode)
    x = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, x_shape, endpoint=True)
    x.reshape(-1)[:4] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1, 0]
    geometry = dict(strides=(2, 2), ceil_mode=ceil_mode)
    assert np.array_equal(max_pool(x, (2, 2), **geometry), max_pool(x, (2, 2), compiled=False, **geometry))
