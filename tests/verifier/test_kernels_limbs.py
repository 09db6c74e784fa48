"""verifier.kernels.limbs: 16-bit products as 8-bit integer products (onnxruntime's MatMulInteger) of 7-bit (or,
where the CPU's kernels allow, 8-bit) activation limbs and 8-bit weight limbs. The path is forced here
(VINFER_LIMB_PRODUCTS=always), so whichever MLAS kernel this machine has - AMX, VNNI, or the saturating AVX2
pairs - is checked against the int64 reference, bit for bit, at the values that stress it most, with each
activation limb width this machine can take."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verifier.kernels import conv, direct, gemm, limbs, prepare
from verifier.kernels.epilogue import Requantize

pytest.importorskip("onnxruntime")
Q15 = 32767


def pin_limb_width(monkeypatch, bits: int) -> None:
    if bits == limbs.WIDE_X_LIMB_BITS and not limbs._wide_limbs_exact():
        pytest.skip("this machine's MLAS kernel sums byte pairs in int16: 7-bit activation limbs only")
    monkeypatch.setattr(limbs, "x_limb_bits", lambda: bits)


@pytest.fixture(params=[limbs.X_LIMB_BITS, limbs.WIDE_X_LIMB_BITS])
def limb_products(request, monkeypatch):
    """The limb path forced, with 7-bit and (where exact) 8-bit activation limbs in turn."""
    monkeypatch.setenv(limbs.ENVIRONMENT, "always")
    pin_limb_width(monkeypatch, request.param)
    return request.param


def edge_values(rng, shape, low, high):
    """Values in [low, high], half of them at an end of it."""
    values = rng.integers(low, high + 1, size=shape)
    ends = np.where(rng.random(shape) < 0.5, low, high)
    return np.where(rng.random(shape) < 0.5, ends, values).astype(np.int64)


@given(st.integers(-(1 << 20), 1 << 20), st.integers(0, 1 << 25), st.sampled_from([7, 8]))
def test_activation_limbs_hold_every_value_of_the_range(low, width, bits):
    high = low + width
    planned = limbs.x_limbs(low, high, bits)
    if planned is None:  # past three limbs
        assert (high + max(-low, 0)).bit_length() > 3 * bits
        return
    count, offset, planned_bits = planned
    assert planned_bits == bits and count == max(1, -(-(high + offset).bit_length() // bits))
    mask = (1 << bits) - 1
    for x in {low, high, (low + high) // 2}:
        u = x + offset
        parts = [(u >> (bits * i)) & (mask if i < count - 1 else -1) for i in range(count)]
        assert u >= 0 and all(0 <= part <= mask for part in parts)
        assert sum(part << (bits * i) for i, part in enumerate(parts)) == u


def test_a_16_bit_activation_takes_three_7_bit_limbs_or_two_8_bit_ones():
    assert limbs.x_limbs(-Q15, Q15, 7)[0] == 3 and limbs.x_limbs(-Q15, Q15, 8)[0] == 2
    assert limbs.max_k(7) == 1 << 16 and limbs.max_k(8) == 1 << 15
    assert (1 << 16) * 127 * 255 < 2**31 and (1 << 15) * 255 * 255 < 2**31


@pytest.mark.parametrize("top, count", [(32639, 2), (32640, 3), (-32768, 2), (-32896, 2), (-32897, 3), (0, 1), (127, 1)])
def test_weight_limbs_are_signed_bytes_summing_to_the_weight(top, count):
    matrix = np.array([[top, -5], [1, 300]], dtype=np.int64)
    packed = limbs.LimbWeights(matrix)
    assert packed.count == max(count, 2 if np.abs(matrix[:, 1]).max() > 127 else 1)
    parts = packed._limbs.astype(np.int64).reshape(2, packed.count, 2)
    assert (sum(parts[:, j] << (8 * j) for j in range(packed.count)) == matrix).all()


@pytest.mark.parametrize("bits", [limbs.X_LIMB_BITS, limbs.WIDE_X_LIMB_BITS])
def test_mlas_products_are_exact_where_a_saturating_kernel_would_not_be(bits, monkeypatch):
    """The worst cases of the proof: every pair of products at -2 * 127 * 128 (what vpmaddubsw sums in int16;
    -2 * 255 * 128 with 8-bit limbs, on the machines that take them) and a K of max_k at the int32 bound.
    Checked on this machine's MLAS kernel."""
    pin_limb_width(monkeypatch, bits)
    top = (1 << bits) - 1
    K = limbs.max_k(bits)
    weights = np.full((K, 3), -128, dtype=np.int64)
    weights[:, 1] = 127
    weights[::2, 2] = -128  # alternating signs: partial sums swing both ways
    weights[1::2, 2] = 127
    packed = limbs.LimbWeights(weights)
    assert packed.count == 1 and packed.ready()
    rows = np.full((5, 1, K), top, dtype=np.uint8)
    rows[1, 0, ::3] = 0
    rows[2, 0] = np.arange(K) % (top + 1)
    products = packed.product(rows.reshape(5, K))
    assert products.dtype == np.int32
    assert (products.astype(np.int64) == rows.reshape(5, K).astype(np.int64) @ weights).all()
    assert products[0, 0] == -top * 128 * K  # within int32, far past int16


CONVS = [
    # (x shape, w shape, strides, pads, dilations)
    ((1, 3, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ((2, 4, 9, 7), (6, 4, 3, 2), (2, 1), (1, 0, 2, 1), (1, 2)),
    ((1, 5, 6, 6), (7, 5, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),  # 1x1: the limb planes are the rows
    ((1, 5, 7, 7), (7, 5, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1)),  # 1x1 strided
    ((3, 4, 20), (6, 4, 5), (3,), (2, 1), (2,)),  # 1-D, as 2-D of unit height
    ((2, 7, 9), (5, 7, 1), (1,), (0, 0), (1,)),  # 1-D 1x1: channels-first limbs of a strided view
    ((2, 7, 9), (5, 7, 1), (1,), (0, 2), (1,)),  # 1-D 1x1 with an end pad: rows gathered
    ((3, 20, 5, 5), (9, 20, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),  # positions cross images within a block of 8
    ((1, 2, 4, 4), (3, 2, 4, 4), (1, 1), (0, 0, 0, 0), (1, 1)),  # kernel covers the input
    ((2, 6, 3, 5), (300, 6, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),  # channels combined in two chunks (256 + 44)
]


@pytest.mark.parametrize("x_shape, w_shape, strides, pads, dilations", CONVS)
@pytest.mark.parametrize("x_range", [(0, Q15), (-Q15, Q15), (-127, 127), (0, 127), (-5, 3)])
def test_conv_on_limbs_equals_the_reference(limb_products, x_shape, w_shape, strides, pads, dilations, x_range):
    rng = np.random.default_rng([len(x_shape), x_range[1], x_range[0] + Q15])
    x = edge_values(rng, x_shape, *x_range)
    w = prepare(edge_values(rng, w_shape, -Q15, Q15))
    bias = rng.integers(-(1 << 40), 1 << 40, w_shape[0])
    geometry = {"strides": strides, "pads": pads, "dilations": dilations}
    for spec in (Requantize(21, 16, False, bias), Requantize(20, 16, True, bias), Requantize(9, 16, False),
                 Requantize(0, 16, False, bias), None):  # (shift 0: the epilogue after the accumulator)
        expected = conv(x, w, path="reference", requantize=spec, **geometry)
        assert np.array_equal(conv(x, w, requantize=spec, x_range=x_range, **geometry), expected)
    assert ("limbs", "conv") in w.cache  # the limb path ran (and split the weights once)


@pytest.mark.parametrize("weight_range", [(-32896, 32639), (-Q15, Q15), (-(1 << 22), 1 << 22), (-3, 3),
                                          (-(1 << 23), 1 << 23)])
def test_gemm_on_limbs_equals_the_reference(limb_products, weight_range):
    """Two weight limbs, three (past 32639), one, and four (past 2**23 - 2**15 - 129: the float paths take it);
    a batch of matrices against one weight."""
    rng = np.random.default_rng(weight_range[1])
    a = edge_values(rng, (2, 37, 300), -Q15, Q15)
    b = prepare(edge_values(rng, (300, 45), *weight_range))
    bias = rng.integers(-(1 << 40), 1 << 40, 45)
    for spec in (Requantize(25, 16, False, bias), Requantize(25, 16, True), None):
        expected = gemm(a, b, path="reference", requantize=spec)
        assert np.array_equal(gemm(a, b, requantize=spec), expected)
    assert b.cache[("limbs", "gemm")].count == {32639: 2, Q15: 3, 1 << 22: 3, 3: 1, 1 << 23: 4}[weight_range[1]]


@pytest.mark.parametrize("bits", [limbs.X_LIMB_BITS, limbs.WIDE_X_LIMB_BITS])
def test_gemm_on_limbs_is_exact_for_any_shape(bits, monkeypatch):
    monkeypatch.setenv(limbs.ENVIRONMENT, "always")
    pin_limb_width(monkeypatch, bits)

    @settings(max_examples=25, deadline=None)
    @given(st.integers(1, 3), st.integers(1, 70), st.integers(1, 9), st.integers(0, 2**32 - 1))
    def check(rows, depth, columns, seed):
        rng = np.random.default_rng(seed)
        a = edge_values(rng, (rows, depth), -Q15, Q15)
        b = prepare(edge_values(rng, (depth, columns), -Q15, Q15))
        spec = Requantize(int(rng.integers(1, 40)), 16, bool(rng.integers(2)),
                          rng.integers(-(1 << 40), 1 << 40, columns))
        assert np.array_equal(gemm(a, b, requantize=spec), gemm(a, b, path="reference", requantize=spec))

    check()


def test_the_limb_path_is_off_when_asked_and_on_machines_without_amx(monkeypatch):
    monkeypatch.setenv(limbs.ENVIRONMENT, "off")
    assert limbs.setting() == "off"
    b = prepare(np.ones((600, 4), dtype=np.int64))
    gemm(np.ones((3, 600), dtype=np.int64), b, requantize=Requantize(3, 16))
    assert ("limbs", "gemm") not in b.cache
    monkeypatch.setenv(limbs.ENVIRONMENT, "auto")
    assert limbs.setting() == ("on" if limbs._hardware_has_amx() else "off")
    monkeypatch.setenv(limbs.ENVIRONMENT, "sometimes")
    with pytest.warns(RuntimeWarning, match="taken as auto"):
        assert limbs.setting() == ("on" if limbs._hardware_has_amx() else "off")


def test_the_setting_follows_the_environment_as_it_changes(monkeypatch):
    """Set, changed, deleted: each read the moment it changes, by os.environ and by a process's own putenv'd copy."""
    monkeypatch.setenv(limbs.ENVIRONMENT, "always")
    assert limbs.setting() == ("always" if limbs._onnxruntime() else "off")
    os.environ[limbs.ENVIRONMENT] = " OFF "
    assert limbs.setting() == "off"
    monkeypatch.delenv(limbs.ENVIRONMENT)
    assert limbs.setting() == ("on" if limbs._hardware_has_amx() else "off")  # (unset: auto)
    monkeypatch.setattr(limbs.os, "name", "nt")  # (elsewhere: os.environ.get)
    monkeypatch.setenv(limbs.ENVIRONMENT, "off")
    assert limbs.setting() == "off"


def test_short_products_keep_the_float_paths_unless_forced(monkeypatch):
    """`on` takes the limb path only where K pays for it; the same product is exact either way."""
    monkeypatch.setenv(limbs.ENVIRONMENT, "on")
    pin_limb_width(monkeypatch, limbs.X_LIMB_BITS)
    rng = np.random.default_rng(3)
    a, b = edge_values(rng, (8, 64), -Q15, Q15), prepare(edge_values(rng, (64, 8), -100, 100))
    short = gemm(a, b, requantize=Requantize(12, 16))
    assert ("limbs", "gemm") not in b.cache  # 64 < MIN_K_PER_PRODUCT * 3 limbs * 1 limb
    monkeypatch.setenv(limbs.ENVIRONMENT, "always")
    assert np.array_equal(gemm(a, b, requantize=Requantize(12, 16)), short)
    assert ("limbs", "gemm") in b.cache


def _rows_on_limbs(monkeypatch, seed: int, K: int, N: int, row_counts, bits: int = 16) -> list[int]:
    """Of GEMMs of each of row_counts rows by one (K, N) weight under `on`, each equal to the reference, the row
    counts that took the limb path. bits=8: 8-bit operands, a_bound given as an 8-bit program's products give it
    (float32 products: the direct call's)."""
    monkeypatch.setenv(limbs.ENVIRONMENT, "on")
    if bits == 16:
        pin_limb_width(monkeypatch, limbs.X_LIMB_BITS)
    taken_rows = []
    monkeypatch.setattr(limbs, "gemm", lambda a, *rest, limb_gemm=limbs.gemm: taken_rows.append(len(a))
                        or limb_gemm(a, *rest))
    rng = np.random.default_rng(seed)
    (w_bound, a_bound), spec = ((30000, Q15), Requantize(20, 16)) if bits == 16 else ((127, 127), Requantize(9, 16))
    weights = edge_values(rng, (K, N), -w_bound, w_bound)
    for rows in row_counts:
        a, b = edge_values(rng, (rows, K), -a_bound, a_bound), prepare(weights)
        product = gemm(a, b, a_bound=a_bound, requantize=spec)
        assert np.array_equal(product, gemm(a, weights, path="reference", requantize=spec))
    return taken_rows


def test_products_of_little_work_keep_the_float_paths_whatever_their_k(monkeypatch):
    """Below LIMB_MIN_WORK multiply-adds the session's fixed cost outweighs any saving: a row of K = 1024 (171 a
    product against weights of two limbs) by 16 columns keeps the float path under `on`, 16 rows of it take the limb
    path; the same bits either way."""
    assert _rows_on_limbs(monkeypatch, 8, 1024, 16, (1, 16)) == [16]
    assert 1024 * 16 < limbs.LIMB_MIN_WORK <= 16 * 1024 * 16 and 1024 >= limbs.MIN_K_PER_PRODUCT * 6


def test_a_gemm_with_enough_work_takes_the_limb_path_from_a_shorter_k(monkeypatch):
    """K = 256 against weights of two limbs (6 products) is below the conv threshold (85 a product) but above the
    GEMM one (40), which a GEMM takes from GEMM_MIN_WORK multiply-adds on: 512 rows do, 2 rows do not."""
    assert _rows_on_limbs(monkeypatch, 4, 256, 32, (2, 512)) == [512]
    assert limbs.GEMM_MIN_K_PER_PRODUCT * 6 <= 256 < limbs.MIN_K_PER_PRODUCT * 6
    assert 2 * 256 * 32 < limbs.GEMM_MIN_WORK <= 512 * 256 * 32


def test_8_bit_gemms_take_the_limb_path_only_from_float32_s_thresholds(monkeypatch):
    """Against a float32 direct call a GEMM needs FLOAT32_MIN_WORK multiply-adds and K >= 240 per product: K = 256
    by 256 columns takes the limb path from 16 rows (1M multiply-adds), not at 8; K = 64 by 64 columns (digits_mlp's
    first layer) keeps float32 at 256 and 1024 rows (1M, 4M), and takes the limb path at 16384 (64M: at the direct
    call's limit, where the general float path competes and GEMM_MIN_K_PER_PRODUCT holds)."""
    assert _rows_on_limbs(monkeypatch, 256, 256, 256, (8, 16), bits=8) == [16]
    assert 8 * 256 * 256 < limbs.FLOAT32_MIN_WORK <= 16 * 256 * 256
    assert _rows_on_limbs(monkeypatch, 64, 64, 64, (256, 1024, 16384), bits=8) == [16384]
    assert limbs.GEMM_MIN_K_PER_PRODUCT <= 64 < limbs.FLOAT32_GEMM_MIN_K_PER_PRODUCT
    assert 1024 * 64 * 64 < direct.GEMM_MAX_WORK <= 16384 * 64 * 64


def test_a_conv_with_few_output_positions_takes_the_limb_path_from_a_shorter_k(monkeypatch):
    """K = 432 (a 1x1 convolution of 432 channels at stride 2, which gathers its rows) against weights of two limbs
    and activations of three is 72 a product: below the threshold of 85, above the one of 60 for convolutions of up
    to FEW_COLUMNS output positions. A 13x13 image (49 positions) takes the limb path, a 46x46 one (529) the float
    path, both exact."""
    monkeypatch.setenv(limbs.ENVIRONMENT, "on")
    pin_limb_width(monkeypatch, limbs.X_LIMB_BITS)
    taken = []
    monkeypatch.setattr(limbs, "conv2d", lambda x, *rest, limb_conv=limbs.conv2d: taken.append(x.shape[-1])
                        or limb_conv(x, *rest))
    rng = np.random.default_rng(5)
    weights = prepare(edge_values(rng, (8, 432, 1, 1), -30000, 30000))
    for side in (13, 46):
        x = edge_values(rng, (1, 432, side, side), 0, 21845)  # (three 7-bit limbs)
        spec = Requantize(20, 16, True, rng.integers(-(1 << 30), 1 << 30, 8))
        fast = conv(x, weights, strides=(2, 2), requantize=spec, x_range=(0, 21845))
        assert np.array_equal(fast, conv(x, weights.values, strides=(2, 2), requantize=spec, path="reference"))
    assert taken == [13]
    assert limbs.FEW_COLUMNS_MIN_K_PER_PRODUCT * 6 <= 432 < limbs.MIN_K_PER_PRODUCT * 6
    assert 7 * 7 <= limbs.FEW_COLUMNS < 23 * 23


def test_a_conv_with_more_than_one_tap_takes_the_limb_path_from_a_shorter_k(monkeypatch):
    """The same K = 432, 72 a product, on 28x28 output positions (past FEW_COLUMNS): as a 3x3 convolution of 48
    channels, whose float path gathers columns or transforms tiles, it takes the limb path (from 70 a product); as a
    1x1 convolution of 432 channels at stride 2, which gathers its rows, the float path (85). Both exact."""
    monkeypatch.setenv(limbs.ENVIRONMENT, "on")
    pin_limb_width(monkeypatch, limbs.X_LIMB_BITS)
    taken = []
    monkeypatch.setattr(limbs, "conv2d", lambda x, kernel, *rest, limb_conv=limbs.conv2d: taken.append(kernel)
                        or limb_conv(x, kernel, *rest))
    rng = np.random.default_rng(6)
    for channels, side, stride in ((48, 3, 1), (432, 1, 2)):
        weights = prepare(edge_values(rng, (8, channels, side, side), -30000, 30000))
        x = edge_values(rng, (1, channels, 28 * stride, 28 * stride), 0, 21845)
        spec = Requantize(20, 16, True, rng.integers(-(1 << 30), 1 << 30, 8))
        geometry = {"pads": (side // 2,) * 4, "strides": (stride, stride)}
        fast = conv(x, weights, requantize=spec, x_range=(0, 21845), **geometry)
        assert np.array_equal(fast, conv(x, weights.values, requantize=spec, path="reference", **geometry))
    assert taken == [(3, 3)]
    assert limbs.WINDOWED_MIN_K_PER_PRODUCT * 6 <= 432 < limbs.MIN_K_PER_PRODUCT * 6


def test_a_pointwise_conv_of_a_batch_in_bands_of_one_image_equals_the_reference(limb_products, monkeypatch):
    """A 1x1 stride-1 convolution splits its limbs channels first and has onnxruntime transpose them to rows (no
    gather); here one image a band."""
    monkeypatch.setattr(limbs, "BAND_BYTES", 1)
    taken = []
    monkeypatch.setattr(limbs, "_pointwise_products", lambda x, *rest, limb_products=limbs._pointwise_products:
                        taken.append(x.shape) or limb_products(x, *rest))
    rng = np.random.default_rng(9)
    x, w = edge_values(rng, (3, 40, 5, 7), -Q15, Q15), prepare(edge_values(rng, (6, 40, 1, 1), -Q15, Q15))
    spec = Requantize(18, 16, False, rng.integers(-(1 << 40), 1 << 40, 6))
    assert np.array_equal(conv(x, w, requantize=spec), conv(x, w.values, requantize=spec, path="reference"))
    assert taken == [(3, 40, 5, 7)]


def test_against_a_float32_product_a_conv_of_more_than_one_tap_keeps_the_full_threshold(monkeypatch):
    """8-bit operands make the float path float32, twice float64's speed: a 3x3 convolution of 16 channels (K = 144,
    two 7-bit limbs of an 8-bit activation by one weight limb: 72 a product) takes the float path then, on 28x28,
    where the same K against float64 would take the limb path (70 a product). Both exact."""
    monkeypatch.setenv(limbs.ENVIRONMENT, "on")
    pin_limb_width(monkeypatch, limbs.X_LIMB_BITS)
    taken = []
    monkeypatch.setattr(limbs, "conv2d", lambda x, *rest, limb_conv=limbs.conv2d: taken.append(x.shape)
                        or limb_conv(x, *rest))
    rng = np.random.default_rng(7)
    weights = prepare(edge_values(rng, (8, 16, 3, 3), -127, 127))
    x = edge_values(rng, (1, 16, 28, 28), -127, 127)
    spec = Requantize(9, 16, True, rng.integers(-(1 << 20), 1 << 20, 8))
    fast = conv(x, weights, pads=(1, 1, 1, 1), x_bound=127, requantize=spec, x_range=(-127, 127))
    assert np.array_equal(fast, conv(x, weights.values, pads=(1, 1, 1, 1), requantize=spec, path="reference"))
    assert taken == []
    assert limbs.WINDOWED_MIN_K_PER_PRODUCT * 2 <= 144 < limbs.MIN_K_PER_PRODUCT * 2
    assert limbs._least_per_product(0, 784, 9, "float32") == limbs.MIN_K_PER_PRODUCT
    assert limbs._least_per_product(0, 784, 9, "float64") == limbs.WINDOWED_MIN_K_PER_PRODUCT


def test_a_model_commits_the_same_hash_on_limbs(monkeypatch, example_program, example_inputs):
    from verifier import InferenceSession

    monkeypatch.setenv(limbs.ENVIRONMENT, "off")
    floats = InferenceSession(example_program).run_fixed(example_inputs)
    monkeypatch.setenv(limbs.ENVIRONMENT, "always")
    on_limbs = InferenceSession(example_program).run_fixed(example_inputs)
    assert on_limbs.commitment == floats.commitment
