"""The compiled loops (verifier/kernels/loops/) compute the bits of the numpy forms they replace, and
LLVM changes none of them: each loop, run by numba's compiler and run as plain Python (NUMBA_DISABLE_JIT=1,
a fresh process), gives the same digest on edge inputs."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier import fixedpoint
from verifier.fixedpoint import INT64_SAFE
from verifier.kernels import loops
from verifier.kernels.epilogue import Requantize

PROBE = r"""
import hashlib
import numpy as np
from verifier.kernels import loops
from verifier.kernels.direct import NO_POOL, window_indices
from verifier.kernels.epilogue import Requantize
rng = np.random.default_rng(7)
digest = hashlib.sha256()
def edge(n, bound):
    values = rng.integers(-bound, bound + 1, n)
    values[:4] = [bound, -bound, 0, -1]
    return values
for shift, relu in ((0, False), (1, False), (9, True), (30, False), (52, False)):
    spec = Requantize(shift, 16, relu)
    x = edge(500, 1 << 40)
    x[4:300:3] = (x[4:300:3] >> shift << shift) + ((1 << shift) >> 1)  # ties
    for doubled in (True, False):
        held = 2.0 * x + 0.5 if doubled else x + 0.25
        digest.update(spec.finish(held.reshape(5, 10, 10), doubled).tobytes())
        digest.update(spec.finish(held.astype(np.float32).reshape(10, 50)[:, ::2], False, np.arange(25.0)).tobytes())
        swapped = np.empty((10, 5, 10), np.int64)
        spec.finish(held.reshape(5, 10, 10), doubled, out=swapped.transpose(1, 0, 2))
        digest.update(swapped.tobytes())
for shift in (0, 1, 7, 62):
    x = edge(400, 1 << 20)
    out = np.empty_like(x)
    digest.update(repr([int(v) for v in loops.narrow(x, shift, 127, out)]).encode() + out.tobytes())
digest.update(repr([int(v) for v in loops.value_range(edge(300, 1 << 62))]).encode())
from verifier.nonlinear.exp_log import exp_neg_table
logits = edge(120, 32767).reshape(12, 10)
probabilities = np.empty_like(logits)
digest.update(repr(bool(loops.softmax(logits, exp_neg_table(9), 14, True, 32767, probabilities))).encode() + probabilities.tobytes())
rows = edge(640, 32767).reshape(10, 64)
rows[0] = 5
normed = np.empty_like(rows)
digest.update(repr(bool(loops.layer_norm(rows, edge(64, 1 << 19), edge(64, 1 << 40), 300, 61, 24, 30, 32767, normed))).encode() + normed.tobytes())
real = rng.standard_normal(300) * 1e3
real[:4] = [0.5, -0.5, 2.5, -1e300]
q = np.empty(300, np.int64)
digest.update(repr([int(v) for v in loops.quantize(real, 2.0 ** 7, float(2 ** 62 - 1), q)]).encode() + q.tobytes())
for shifts, sign, relu in (((0, 20), -1, True), ((3, 0), 1, False), ((0, 0), -1, False)):
    a, b = edge(300, 1 << 42), edge(300, 1 << 42)
    out = np.empty_like(a)
    fits = loops.sum_requantize(a.reshape(10, 30), b.reshape(1, 300)[:, :30], shifts[0], shifts[1], 1, sign, 21,
                                0 if relu else -32767, 32767, not relu, out.reshape(10, 30))
    digest.update(repr(bool(fits)).encode() + (out.tobytes() if fits else b""))
    loops.multiply_requantize(a.reshape(10, 30) >> 22, b.reshape(300, 1)[:1], 9, 32767, out.reshape(10, 30))
    digest.update(out.tobytes())
images, filters = edge(2 * 4 * 7 * 6, 32767).reshape(2, 4, 7, 6), edge(8 * 9, 32767).reshape(8, 3, 3)
convolved = np.empty((2, 8, 4, 3), np.int64)
loops.depthwise(images, filters, edge(8, 1 << 40), (2, 2), (1, 1), (1, 1), 20, -32767, 32767, True, convolved)
digest.update(convolved.tobytes())
from verifier.kernels.window import output_shape
for strides, dilations, pads, relu in (((2, 2), (1, 1), (1, 1), False), ((1, 1), (2, 1), (2, 0), True),
                                       ((3, 1), (1, 2), (0, 3), False)):
    spec = Requantize(20, 16, relu, edge(8, 1 << 40))
    shape = output_shape((7, 6), (3, 3), strides, pads + pads, dilations)
    convolved = np.empty((2, 8) + shape, np.int64)
    loops.depthwise_fused(images, spec.doubled(filters, (8, 9)), (3, 3), strides, dilations, pads,
                          *spec.rounding(True)[:5], 1.0 / spec.rounding(True)[5], convolved)
    digest.update(convolved.tobytes())
for stride in (1, 2, 3):
    columns = np.full((2, 2 * 9 + 1, 2 * 4 * 3), 7.0)
    loops.im2col(images, (3, 3), (stride, stride), (1, 2), (1, 1), (4, 3), columns)
    digest.update(columns.tobytes())
tiles = np.empty((4, 4, 2, 5, 3, 4))
loops.winograd_input(images, 1, 1, 1, tiles)
digest.update(tiles[:, :, :, :4].tobytes())
convolved = np.empty((2, 3, 9, 7), np.int64)
for fused in (True, False):
    loops.winograd_output(4.0 * edge(4 * 4 * 2 * 3 * 5 * 4, 1 << 40).reshape(4, 4, 2, 3, 5, 4) + 2.0 * fused, fused,
                          *Requantize(9, 16, False).rounding(), 0, convolved)
    digest.update(convolved.tobytes())
loops.winograd_output(4 * edge(4 * 4 * 2 * 3 * 5 * 4, 1 << 56).reshape(4, 4, 2, 3, 5, 4), False,
                      *Requantize(9, 16, False).rounding(), 0, convolved)  # the int64 transform
digest.update(convolved.tobytes())
large_tiles = np.empty((6, 6, 2, 4, 2, 2))
loops.winograd4_input(images, 1, 1, 0, np.empty(10), large_tiles)
digest.update(large_tiles.tobytes())
for shift, low, correct in ((0, np.iinfo(np.int64).min, False), (9, -32767, True), (9, 0, False)):
    convolved = np.empty((2, 4, 7, 6), np.int64)
    loops.winograd4_output(576.0 * edge(6 * 6 * 2 * 4 * 4, 1 << 30).reshape(6, 6, 2, 4, 4), 2, edge(4, 1 << 40),
                           shift, low, 32767 if shift else np.iinfo(np.int64).max, correct, 0, convolved)
    digest.update(convolved.tobytes())
from verifier.kernels.pooling import avg_pool, max_pool
images[0, 0, 0, :3] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1]
for kernel, strides, pads, dilations in (((2, 2), (2, 2), (0, 0, 0, 0), (1, 1)), ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
                                         ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)), ((2, 3), (3, 1), (1, 0, 0, 2), (2, 2))):
    digest.update(max_pool(images, kernel, strides=strides, pads=pads, dilations=dilations, ceil_mode=True).tobytes())
    for include in (False, True):
        digest.update(avg_pool(images, kernel, strides=strides, pads=pads, dilations=dilations, ceil_mode=True,
                               count_include_pad=include).tobytes())
channels = edge(2 * 5 * 7, 1 << 20).reshape(2, 5, 7)
for shift, low, correct in ((1, -32767, True), (20, 0, False), (62, -32767, True)):
    affine = np.empty_like(channels)
    loops.affine_requantize(channels, edge(5, 1 << 40), edge(5, 1 << 61), shift, low, 32767, correct, affine)
    digest.update(affine.tobytes())
activations = edge(2 * 6 * 5 * 4, 32767).reshape(2, 6, 5, 4)
for bits, count, padding in ((7, 3, [127, 127, 1]), (8, 2, [255, 127])):
    planes = np.empty((2, 5, 4, count, 6), np.uint8)
    loops.limb_planes(activations, 32767, bits, planes)
    rows = np.empty((2 * 3 * 4, count, 2 * 3 * 6), np.uint8)
    loops.limb_gather(planes, (2, 3), (2, 1), (1, 1), (1, 1), (3, 4), np.array(padding, np.uint8), rows)
    gemm_rows = np.empty((10, count, 6), np.uint8)
    loops.limb_rows(edge(60, 32767).reshape(10, 6), 32767, bits, gemm_rows)
    digest.update(planes.tobytes() + rows.tobytes() + gemm_rows.tobytes())
products = edge(24 * 3 * 2 * 5, 1 << 30).astype(np.int32).reshape(24 * 3, 2 * 5)
for shift, low, correct, bits in ((0, np.iinfo(np.int64).min, False, 7), (21, -32767, True, 7), (21, 0, False, 8)):
    combined, combined_rows = np.empty((3, 5, 8), np.int64), np.empty((24, 5), np.int64)
    loops.limb_combine(products, 3, bits, 2, 0, edge(5, 1 << 40), shift, low,
                       32767 if shift else np.iinfo(np.int64).max, correct, combined)
    loops.limb_combine_rows(products, 3, bits, 2, 0, edge(5, 1 << 40), shift, low, 32767, correct, combined_rows)
    digest.update(combined.tobytes() + combined_rows.tobytes())
for bits, count in ((7, 3), (8, 2), (8, 1)):
    channels_first = np.empty((2, count, 6, 5, 4), np.uint8)
    loops.limb_channels(activations if count > 1 else activations % 200, 32767 if count > 1 else 0, bits,
                        channels_first)
    digest.update(channels_first.tobytes())
wide_products = edge(12 * 2 * 2 * 300, 1 << 30).astype(np.int32).reshape(12 * 2, 2 * 300)
wide = np.empty((2, 300, 6), np.int64)
loops.limb_combine(wide_products, 2, 8, 2, 0, edge(300, 1 << 40), 21, -32767, 32767, True, wide)  # (channel chunks)
digest.update(wide.tobytes())
for dtype, values in ((np.float64, (32767, 1 << 20)), (np.float32, (127, 127))):  # (float32: sums below 2**24)
    small_filters = edge(2 * 3 * 2 * 3 * 2, values[1]).astype(dtype).reshape(2, 3, 2 * 3 * 2)  # (group, OCg, K)
    small_images = edge(2 * 4 * 7 * 6, values[0]).reshape(2, 4, 7, 6)
    for shift, low, correct in ((0, -32767, True), (1, -32767, True), (20, 0, False), (62, -32767, True)):
        small_conv, small_pooled = np.empty((2, 6, 4, 3), np.int64), np.empty((2, 6, 2, 3), np.int64)
        pool = ((2, 2), (2, 1), (0, 1, 0, 0), (1, 2), (2, 3))  # (kernel, strides, pads, dilations, pooled shape)
        for windows, out in ((NO_POOL, small_conv), (window_indices((4, 3), pool), small_pooled)):
            loops.conv_requantize(small_images, small_filters, (3, 2), (2, 1), (1, 2), (1, 0), (4, 3),
                                  edge(6, 1 << 40), shift, low, 32767, correct, windows, out)
        small_gemm = np.empty((7, 5), np.int64)  # (one link, 3 rows a BLAS call, its buffers allocated)
        loops.gemm_chain(edge(7 * 9, values[0]).reshape(7, 9), edge(9 * 5, values[1]).astype(dtype), edge(5, 1 << 40),
                         np.array([[9, 5, 0, 0, shift, low, 32767, correct, 0, 0, 3]]), np.empty((2, 0), dtype),
                         small_gemm)
        digest.update(small_conv.tobytes() + small_pooled.tobytes() + small_gemm.tobytes())
        chained = np.empty((7, 3), np.int64)  # (three links in scratch buffers)
        narrowing = (5, 127) if dtype is np.float32 else (0, 0)  # (float32: every link's operand within 8 bits)
        links = np.array([[9, 6, 0, 0, shift, low, 32767, correct, 3, 127, 7],
                          [6, 4, 54, 6, 1, -32767, 32767, 1, *narrowing, 2],
                          [4, 3, 78, 10, shift, low, 32767, correct, 0, 0, 5]], dtype=np.int64)
        loops.gemm_chain(edge(7 * 9, values[0]).reshape(7, 9), edge(90, values[1]).astype(dtype), edge(13, 1 << 40),
                         links, np.full((2, 7 * 9), np.nan, dtype), chained)
        digest.update(chained.tobytes())
from verifier.nonlinear.exp_log import spec_constants
c = spec_constants()
squares, normalised = np.empty(5, np.int64), np.empty((2, 7, 5), np.int64)
for shift, p_shift, out_shift in ((38, 14, 40), (1, 1, 63), (0, 14, 40), (-1, 14, 40)):
    done = loops.lrn(edge(70, 32767).reshape(2, 7, 5), 3, 1 << 29, shift, 1 << 55, 55, -12288, p_shift, 46, out_shift,
                     32767, (c["log2"], c["exp2_hi"], c["exp2_mid"], c["exp2_lo"]), squares, normalised)
    digest.update(repr(bool(done)).encode() + (normalised.tobytes() if done else b""))
print(digest.hexdigest())
"""


def run_probe(compiled: bool) -> str:
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    if not compiled:
        env["NUMBA_DISABLE_JIT"] = "1"
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300,
                            check=True)
    return result.stdout.strip()


def test_the_compiled_loops_give_the_bits_of_their_plain_python_bodies():
    assert run_probe(compiled=True) == run_probe(compiled=False)


def _numpy_finish(y, spec: Requantize, doubled: bool) -> np.ndarray:
    """The epilogue's numpy form before it was compiled: correct, clip, add magic, subtract its bits."""
    correct, threshold, low, high, magic, _ = spec.rounding(doubled)
    magic_bits = int(np.array(magic).view(np.int64))
    y = np.array(y, dtype=np.float64)
    if correct:
        y -= y <= threshold
    np.clip(y, low, high, out=y)
    y += magic
    return y.view(np.int64) - magic_bits


@settings(max_examples=100, deadline=None)
@given(shift=st.integers(0, 62), relu=st.booleans(), doubled=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_finish_equals_the_numpy_form_it_replaced(shift, relu, doubled, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-(1 << 48), 1 << 48, 240) >> rng.integers(0, 48, 240)
    spec = Requantize(shift, 16, relu)
    held = 2.0 * x + 0.5 if doubled else x + 0.25
    assert np.array_equal(spec.finish(held.reshape(4, 6, 10), doubled).reshape(-1), _numpy_finish(held, spec, doubled))


def test_finish_adds_an_offset_per_row_or_per_column_and_writes_any_strides():
    rng = np.random.default_rng(3)
    spec = Requantize(6, 16, False, rng.integers(-1000, 1000, 8))
    acc = rng.integers(-(1 << 20), 1 << 20, (8, 30))
    expected = fixedpoint.requantize(acc + spec.bias[:, None], 6, 0, 16)
    out = np.zeros((30, 8), np.int64)
    spec.finish(acc.astype(np.float32), False, spec.offset((8, 1)), out=out.T)  # rows; a transposed output
    assert np.array_equal(out.T, expected)
    by_column = spec.finish(np.ascontiguousarray(acc.T).astype(np.float32), False, spec.offset((8,)))
    assert np.array_equal(by_column, expected.T)
    images = np.zeros((3, 8, 10), np.int64)  # (channels, images, positions) written as (images, channels, ...)
    spec.finish(acc.reshape(8, 3, 10).astype(np.float32), False, spec.offset((8, 1, 1)), out=images.transpose(1, 0, 2))
    assert np.array_equal(images.transpose(1, 0, 2), expected.reshape(8, 3, 10))


@settings(max_examples=100, deadline=None)
@given(shift=st.integers(0, 62), bits=st.sampled_from([8, 16]), seed=st.integers(0, 2**32 - 1))
def test_narrow_is_fixedpoint_requantize_and_takes_the_range(shift, bits, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-(1 << 40), 1 << 40, 300) >> rng.integers(0, 40, 300)
    x[:3] = [0, -1, 1]
    out = np.empty_like(x)
    low, high = loops.narrow(x, shift, fixedpoint.qmax(bits), out)
    assert (low, high) == (x.min(), x.max())
    assert np.array_equal(out, fixedpoint.requantize(x, shift, 0, bits))


def test_value_range_of_an_empty_array_is_the_empty_range():
    assert loops.value_range(np.zeros(0, np.int64)) == (np.iinfo(np.int64).max, np.iinfo(np.int64).min)


@settings(max_examples=150, deadline=None)
@given(shift_a=st.integers(0, 30), shift_b=st.integers(0, 30), signs=st.sampled_from([(1, 1), (1, -1), (-1, 1)]),
       b_shape=st.sampled_from([(10, 20), (1, 20), (1, 1)]), shift=st.integers(0, 62), relu=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_sum_requantize_is_the_reference_sum_and_refuses_what_its_headroom_check_refuses(
        shift_a, shift_b, signs, b_shape, shift, relu, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-(1 << 34), 1 << 34, (10, 20)) >> rng.integers(0, 34, (10, 20))
    b = rng.integers(-(1 << 34), 1 << 34, b_shape) >> rng.integers(0, 34, b_shape)
    if seed % 4 == 0:  # one operand at (or just past) its headroom limit
        a[1, 5] = (INT64_SAFE >> shift_a) - (seed % 8 == 0) if shift_a else a[1, 5]
    out = np.empty_like(a)
    limit = fixedpoint.qmax(16)
    fits = loops.sum_requantize(a, b, shift_a, shift_b, *signs, shift, 0 if relu else -limit, limit, not relu, out)
    safe = all(not s or np.abs(x).max() < INT64_SAFE >> s for x, s in ((a, shift_a), (b, shift_b)))
    assert fits == safe
    if fits:
        expected = fixedpoint.requantize(signs[0] * (a << shift_a) + signs[1] * (b << shift_b), shift, 0, 16)
        assert np.array_equal(out, np.maximum(expected, 0) if relu else expected)


@settings(max_examples=100, deadline=None)
@given(b_shape=st.sampled_from([(10, 20), (1, 20), (1, 1)]), shift=st.integers(0, 62), seed=st.integers(0, 2**32 - 1))
def test_multiply_requantize_is_the_reference_product(b_shape, shift, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-(1 << 31), 1 << 31, (10, 20)) >> rng.integers(0, 31, (10, 20))
    b = rng.integers(-(1 << 31), 1 << 31, b_shape) >> rng.integers(0, 31, b_shape)
    a[0, :4], b.reshape(-1)[:1] = [1, -1, 3, -3], 1 << (shift - 1) if 0 < shift < 32 else 1  # ties of both signs
    out = np.empty_like(a)
    loops.multiply_requantize(a, b, shift, fixedpoint.qmax(16), out)
    assert np.array_equal(out, fixedpoint.requantize(a * b, shift, 0, 16))


@pytest.mark.parametrize("other_shape", [(), (6,), (1, 6), (5, 6), (4, 5, 6), (5, 1), (1, 5, 1), (4, 1, 6)])
@pytest.mark.parametrize("op", ["add", "sub", "const-sub", "mul"])
def test_elementwise_ops_give_the_reference_bits_whichever_loop_takes_them(op, other_shape):
    """Add / Sub / Mul of a (4, 5, 6) tensor and a run-time or constant operand of each broadcast shape: the
    compiled loops take trailing broadcasts and single values, numpy the rest; the bits are the reference's."""
    from verifier.interpreter import forced_path
    from verifier.ops._binary import run_product, run_sum

    rng = np.random.default_rng(len(other_shape) + len(op))
    x = rng.integers(-32767, 32768, (4, 5, 6))
    other = rng.integers(-32767, 32768, other_shape)
    results = []
    for path in ("fast", "reference"):
        with forced_path(path):
            if op == "mul":
                results.append(run_product([x, None], {"acc_frac": 20, "out_frac": 9}, {"k1": other})[0])
            else:
                constant_first = op == "const-sub"
                attrs = {"signs": [1, -1 if op != "add" else 1], "shifts": [0, 3] if not constant_first else [0, 0],
                         "acc_frac": 12, "out_frac": 8 if op != "add" else 12, "relu": 0}
                inputs, consts = ([None, x], {"k0": other}) if constant_first else ([x, other], {})
                results.append(run_sum(inputs, attrs, consts)[0])
    assert np.array_equal(results[0], results[1])


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 1, 2, 2, 2)])
def test_finish_takes_more_than_three_axes(shape):
    spec = Requantize(3, 16, False)
    acc = np.random.default_rng(1).integers(-5000, 5000, shape)
    assert np.array_equal(spec.finish(2.0 * acc + 0.5), fixedpoint.requantize(acc, 3, 0, 16))


@settings(max_examples=100, deadline=None)
@given(frac=st.integers(-4, 48), dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_quantize_is_fixedpoint_quantize(frac, dtype, seed):
    rng = np.random.default_rng(seed)
    real = (rng.standard_normal(300) * 10.0 ** rng.integers(-6, 6, 300)).astype(dtype)
    real[:6] = [0.0, -0.0, 0.5 * 2.0**-frac, -0.5 * 2.0**-frac, 1.5 * 2.0**-frac, 1e30]  # ties, saturation
    out = np.empty(real.shape, np.int64)
    finite, largest = loops.quantize(real, 2.0**frac, float(fixedpoint.qmax(63)), out)
    expected = fixedpoint.quantize(real, frac, 63)
    assert finite and largest == np.abs(expected).max()
    assert np.array_equal(out, expected)
    real[7] = np.nan
    assert not loops.quantize(real, 2.0**frac, float(fixedpoint.qmax(63)), out)[0]


@settings(max_examples=120, deadline=None)
@given(n=st.sampled_from([1, 2, 3, 16, 64, 257]), in_frac=st.integers(0, 14), eps=st.sampled_from([0.0, 1e-12, 1e-5, 0.1]),
       gamma_frac=st.integers(0, 30), out_frac=st.integers(0, 20), seed=st.integers(0, 2**32 - 1))
def test_layer_norm_is_the_numpy_layer_norm(n, in_frac, eps, gamma_frac, out_frac, seed):
    from verifier.nonlinear.roots import Z_FRAC, inv_sqrt_bits, layer_norm, layer_norm_eps

    rng = np.random.default_rng(seed)
    x = rng.integers(-32767, 32768, (6, n)) >> rng.integers(0, 15, (6, 1))
    x[0] = 7  # a constant row: V = 0, D = eps (or 1)
    x[1, : (n + 1) // 2] = 32767  # the 16-bit edge
    gamma = rng.integers(-(1 << 19), 1 << 19, n)
    beta = rng.integers(-(1 << 40), 1 << 40, n)
    eps_q, out_shift = layer_norm_eps(eps, n, in_frac), Z_FRAC + gamma_frac - out_frac
    if 1 <= out_shift <= 62:  # columns whose y = round(beta / 2**out_shift) is a tie, of either sign
        ties = np.array([-1, -3, 1, 3]) << (out_shift - 1)
        gamma[: min(n, 4)], beta[: min(n, 4)] = 0, ties[: min(n, 4)]
    out = np.empty_like(x)
    handled = 1 <= out_shift <= 62 and loops.layer_norm(x, gamma, beta, eps_q, inv_sqrt_bits(n), Z_FRAC, out_shift,
                                                        fixedpoint.qmax(16), out)
    assert handled or not 1 <= out_shift <= 62  # (the z shift is 0..62 for every calibrated program's rows)
    if handled:
        assert np.array_equal(out, layer_norm(x, 1, gamma, gamma_frac, beta, eps_q, out_frac))


@settings(max_examples=100, deadline=None)
@given(in_frac=st.integers(0, 14), out_frac=st.integers(0, 30), axis=st.integers(-3, 2), masked=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_softmax_is_the_numpy_softmax_on_any_axis(in_frac, out_frac, axis, masked, seed):
    from verifier.nonlinear.exp_log import softmax
    from verifier.ops._softmax import fast_softmax

    rng = np.random.default_rng(seed)
    x = rng.integers(-32767, 32768, (3, 5, 7)) >> rng.integers(0, 15, (3, 5, 7))
    x[0, 0] = -32767  # a masked (-inf) row, whose maximum stays
    x[1, :, 1] = 32767
    x[2, 1, :3] = -32767
    assert np.array_equal(fast_softmax(x, in_frac, axis, out_frac, masked=masked),
                          softmax(x, in_frac, axis, out_frac, masked=masked))


def test_softmax_leaves_values_past_16_bits_to_the_numpy_form():
    from verifier.nonlinear.exp_log import exp_neg_table

    x = np.array([[np.iinfo(np.int64).max, -5, 3]])  # max - x wraps negative: outside the table
    assert not loops.softmax(x, exp_neg_table(8), 14, False, 32767, np.empty_like(x))


def test_numba_is_loaded_by_the_first_loop_not_by_importing_vinfer():
    """The CLI, the gateway and the SDK import the verifier without paying numba's ~150 MiB of LLVM."""
    probe = ("import sys, verifier, sdk.cli, gateway.app\nassert 'numba' not in sys.modules\n"
             "import numpy as np\nfrom verifier.kernels import loops\nloops.value_range(np.arange(3))\n"
             "assert 'numba' in sys.modules\nprint('ok')")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def _compiled_powers():
    """The powers module's helpers as the numba functions its loop inlines (compiling loops.lrn makes them so)."""
    from verifier.kernels.loops import powers
    from verifier.nonlinear.exp_log import spec_constants

    c = spec_constants()
    tables = (c["log2"], c["exp2_hi"], c["exp2_mid"], c["exp2_lo"])
    loops.lrn(np.ones((1, 1, 1), np.int64), 1, 1, 1, 1, 0, 1, 1, 0, 1, 1, tables, np.empty(1, np.int64),
              np.empty((1, 1, 1), np.int64))
    assert hasattr(powers._log2, "py_func"), "the helpers are numba functions once a loop of the module compiled"
    return powers, tables


def test_compiled_log2_is_exp_log_log2_at_every_bit_length():
    from verifier.nonlinear.exp_log import log2

    powers, tables = _compiled_powers()
    rng = np.random.default_rng(5)
    values = [-7, 0, 1, 2, 3, INT64_SAFE]  # (log2's domain: up to INT64_SAFE; loops.lrn declines larger t)
    for k in range(1, 62):
        values += [(1 << k) - 1, 1 << k, (1 << k) + 1] + [int(v) for v in rng.integers(1 << (k - 1), 1 << k, 40)]
    values = np.array(values, dtype=np.int64)
    assert np.array_equal(np.array([powers._log2(v, tables[0]) for v in values]), log2(values))


@pytest.mark.parametrize("out_frac", [0, 30, 46, 61])
def test_compiled_exp2_is_exp_log_exp2_at_every_shift(out_frac):
    from verifier.nonlinear.exp_log import exp2

    powers, tables = _compiled_powers()
    rng = np.random.default_rng(out_frac)
    fractions = np.concatenate([[0, 1, 0xFF, 0x100, 0xFFFF, 0x10000, (1 << 24) - 1], rng.integers(0, 1 << 24, 60)])
    w = np.array([(n << 24) + int(r) for n in range(-70, 100) for r in fractions], dtype=np.int64)
    compiled = np.array([powers._exp2(v, out_frac, *tables[1:]) for v in w])
    assert np.array_equal(compiled, exp2(w, out_frac))


def test_compiled_square_root_and_bit_length_are_the_numpy_forms_at_every_bit_length():
    """loops.rows._sqrt_round corrects the float root instead of iterating from roots.isqrt's power of two: the
    same floor(sqrt), so the same rounded root, on squares, their neighbours and every bit length below 2**62."""
    from verifier.kernels.loops import rows as row_loops
    from verifier.nonlinear.roots import sqrt_round

    out = np.empty((1, 4), np.int64)
    loops.layer_norm(np.ones((1, 4), np.int64), np.ones(4, np.int64), np.zeros(4, np.int64), 1, 30, 24, 30, 32767, out)
    assert hasattr(row_loops._sqrt_round, "py_func"), "compiling a loop of rows.py makes its helpers numba functions"
    rng = np.random.default_rng(11)
    top = 2147483647 ** 2  # the largest square below 2**62, layer_norm's bound on what it takes roots of
    values = [1, 2, 3, 4, INT64_SAFE, top - 1, top, top + 1]
    for k in range(1, 62):
        values += [(1 << k) - 1, 1 << k, (1 << k) + 1] + [int(v) for v in rng.integers(1 << (k - 1), 1 << k, 30)]
    roots = rng.integers(1, 1 << 31, 300)
    values += [int(r) * int(r) + d for r in roots for d in (-1, 0, 1) if int(r) * int(r) + d <= INT64_SAFE]
    values = np.array(values, dtype=np.int64)
    assert np.array_equal(np.array([row_loops._sqrt_round(v) for v in values]), sqrt_round(values))
    assert np.array_equal(np.array([row_loops._bit_length(v) for v in values]), fixedpoint.bit_length(values))


@settings(max_examples=300, deadline=None)
@given(quotient=st.integers(0, 1 << 62), divisor=st.integers(1, 1 << 62), rest=st.sampled_from(["-1", "0", "+1", "any"]),
       seed=st.integers(0, 2**32 - 1))
def test_compiled_floor_division_is_integer_floor_division(quotient, divisor, rest, seed):
    """loops.rows._floor_divide divides in float64 below 2**53 (softmax's rounding divisions): the
    same floor as int64 division next to every multiple of the divisor, where a float quotient would round up
    if it could, and past 2**53, where it takes the integer division."""
    from verifier.kernels.loops import rows as row_loops

    out = np.empty((1, 2), np.int64)
    loops.softmax(np.zeros((1, 2), np.int64), np.array([1, 1], np.int64), 0, False, 32767, out)
    assert hasattr(row_loops._floor_divide, "py_func"), "compiling a loop of rows.py makes its helpers numba functions"
    quotient %= (1 << 62) // divisor + 1  # (numerators up to 2**62 + divisor: int64)
    offset = {"-1": -1, "0": 0, "+1": 1, "any": int(np.random.default_rng(seed).integers(0, divisor))}[rest]
    numerator = quotient * divisor + offset
    above = -(-(1 << (53 + seed % 3)) // divisor) * divisor  # a multiple just past 2**53, 2**54 or 2**55
    small = numerator % (1 << 53)
    for n in (numerator, small, small // divisor * divisor - 1, above - 1, above + offset, -small - 1):
        if -(1 << 63) <= n <= (1 << 63) - 1:  # (a negative numerator: a wrapped sum, divided by the int64 rule)
            assert row_loops._floor_divide(n, divisor) == n // divisor
            assert row_loops._floor_divide.py_func(np.int64(n), np.int64(divisor)) == n // divisor
