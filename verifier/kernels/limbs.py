"""Exact integer products on 8-bit integer hardware: operands split into limbs, multiplied by onnxruntime's
MatMulInteger (MLAS: AMX, AVX512-VNNI, AVX-VNNI, AVX2/AVX512BW, SSE, NEON kernels), recombined in int64.

A 16-bit product costs one float64 BLAS product on the float paths (exact_gemm.py); on a CPU with AMX an
8-bit integer product runs about 16 times faster than that, so four or six of them still win. An activation x
(the run-time operand) becomes u = x + offset >= 0 (offset = -min x, or 0), split into unsigned limbs of
s = x_limb_bits() bits, u = sum_i a_i 2**(s i), a_i in [0, 2**s - 1]; a weight w (the constant operand) into
signed 8-bit limbs w = sum_j b_j 2**(8 j), b_j in [-128, 127]. Then

    sum_k x_k w_k = sum_i sum_j 2**(s i + 8 j) (sum_k a_ik b_jk) - offset * sum_k w_k

and each inner sum is one MatMulInteger of uint8 rows by int8 weights into int32. It is exact, because
nothing in it can saturate or wrap:
  - MLAS kernels without VNNI (AVX2, AVX512BW) sum pairs of uint8 x int8 products in int16 with saturation
    (vpmaddubsw): with 7-bit limbs |a1 b1 + a2 b2| <= 2 * 127 * 128 = 32512 < 2**15, exact on every kernel;
    8-bit limbs (2 * 255 * 128 = 65280) are taken only where the CPU has VNNI or AMX, whose kernels multiply
    into int32 with no int16 step, and MLAS's own products of saturating pairs came out exact (`x_limb_bits`);
  - every kernel sums in int32 (VNNI's vpdpbusds saturates there; the kernels that flip b's sign bit to
    use unsigned products sum a * (b + 128) before subtracting 128 * sum a): |sum| <= K * (2**s - 1) * 255
    < 2**31 for K <= max_k(s);
  - zero points are 0, so no other term enters.
The int32 results are exact integers, combined in int64 (loops.limb_combine) with the bias, the offset's
correction (folded into the bias: offset * column sums) and the epilogue's one rounding rule: the same
integers as the int64 reference, so the same bits. Which kernel MLAS picks, on how many threads, and the limb
width change nothing but the time (a 16-bit activation takes 3 limbs of 7 bits, or 2 of 8).

A 1x1 stride-1 convolution's activation limbs are split channels first (one contiguous pass) and transposed to rows by
onnxruntime in the session that multiplies them (`product_of_planes`); other convolutions gather rows from
channels-last planes (loops.limb_planes, limb_gather).

The limb path is a speed choice of the fast path, made per machine (`setting`): on by default on CPUs with
AMX (`auto`), else off; VINFER_LIMB_PRODUCTS=on / off forces it, and `always` also takes it for products too
short to pay for it (the tests, on every machine). A product takes it when its inner dimension is long enough
to pay for the splitting and recombining (`planned`). Cost units and plans describe the float paths, the same
on every machine.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from verifier.kernels import direct, loops, window
from verifier.kernels.epilogue import finished_in_loop, integer_epilogue

X_LIMB_BITS = 7  # activation limbs in [0, 127], exact on every MLAS kernel
WIDE_X_LIMB_BITS = 8  # activation limbs in [0, 255], where the CPU's kernels have no int16 step (x_limb_bits)
W_LIMB_BITS = 8  # weight limbs in [-128, 127]
MAX_K = 1 << 16  # K * 127 * 255 < 2**31 (max_k: 2**15 for 8-bit activation limbs, K * 255 * 255 < 2**31)
MAX_LIMBS = 3  # operands past 21 (x) / 24 (w) bits take the float paths
MIN_K_PER_PRODUCT = 85  # the limb path when K >= this many per limb product (scripts/bench_kernels.py)
# A convolution with few output positions (N * OH * OW up to FEW_COLUMNS) pays for it from fewer: float BLAS runs
# such narrow products well below its peak, the limb products do not. Over 56 shapes (3x3 and 1x1, K 288..504, OC
# 64 and 192, 7x7 to 56x56, 3 x 2 limbs) the limb path took 0.54-0.95 of the float time from 60 per product at
# 7x7 and 14x14 (one 1.09 at 7x7 with 64 outputs), and 0.89-1.74 at 28x28 and 56x56, where 85 stays
FEW_COLUMNS = 256
FEW_COLUMNS_MIN_K_PER_PRODUCT = 60
# A convolution whose kernel has more than one tap pays for it from fewer than a 1x1 one: its float path gathers
# columns or transforms Winograd tiles. Over 72 3x3 shapes (16-96 channels, OC 64-192, 27x27 to 56x56, 2 x 2 limbs,
# with a Relu) the limb path took 0.73-0.87 of the float time from 72 a product at 27x27 and 28x28, 0.94-1.04 at
# 55x55 and 56x56, and 0.64-0.92 from 108 (1x1 convolutions at 64 a product: 1.4-1.6)
# That is against float64: a float32 product, of 8-bit operands, runs twice as fast (digits_cnn's 8-bit program at
# batch 256 took 1.98 ms with its 72-long 3x3 products on single 8-bit limbs, 1.61 in float32)
WINDOWED_MIN_K_PER_PRODUCT = 70
# (1x1 stride-1 convolutions keep MIN_K_PER_PRODUCT: alone, over 45 shapes, the limb path took 0.42-0.68 of the float
# time from 64 a product and 0.77-0.93 at 32, but inside the models, whose float paths find their inputs in cache, it
# did not pay: light_squeezenet took 10.21-10.26 ms with a threshold of 32 or 48 and 10.22-10.24 with 85,
# light_resnet50 76.4 / 73.5 / 71.8 ms with 32 / 48 / 85)
# A GEMM (no gather) pays for it from K >= 40 per product once it has GEMM_MIN_WORK multiply-adds: over 60 shapes
# (M 1..1024, K 64..1024, N 10..1000) the limb path took 0.18-0.8 of the float time there, and lost only on
# products of a few microseconds (fixed costs) or K < 240 (the splitting and combining)
GEMM_MIN_K_PER_PRODUCT = 40
GEMM_MIN_WORK = 1 << 18
# Below LIMB_MIN_WORK multiply-adds no product pays for it, whatever its K: onnxruntime's session takes some 7 us a
# call, and the splitting and combining theirs. Against the float paths (scripts/bench_small.py --tables limbs),
# GEMMs of 5K-66K took 1.3-2.3x the float time (K 256 and 512; 16- and 8-bit), a 3x3 convolution of 74K 1.0-1.5x;
# from 262K on the results were mixed (0.43-1.65)
LIMB_MIN_WORK = 1 << 17
# Against a float32 product (8-bit operands), which the direct call (kernels/direct.py) runs below 1M multiply-adds
# (64M for a GEMM) with no Python between its passes, the limb path pays later (bench_small.py --tables limbs,
# 8-bit, limbs "always" against "off", two runs): convolutions of 74K-346K took 1.52-1.94x the float time, of 1.2M
# 0.78-0.89 and 6.2M 0.39-0.41; GEMMs took 1.14-3.55x below 1M, and at 1M 0.63-0.65 at K = 256 (16 rows by 256
# columns), 0.98-1.01 at K = 256 (64 rows by 64) and 1.20 at K = 64 (256 rows by 64: digits_mlp's first layer at
# batch 256); from 4M, where the direct call makes its products in row blocks, 1.06-1.08 at K = 64 (1024 and 4096
# rows by 64), 0.83 at K = 64 by 128 columns, 0.75 at K = 128 and 0.60 at K = 256 (512 rows by 64). Past the direct
# call's GEMM limit the general float path competes, and GEMM_MIN_K_PER_PRODUCT holds (against it, 1024 rows by 64 at
# K = 64 took 0.42 when the direct call stopped at 4M)
FLOAT32_MIN_WORK = 1 << 20
FLOAT32_GEMM_MIN_K_PER_PRODUCT = 240
ENVIRONMENT = "VINFER_LIMB_PRODUCTS"  # auto | on | always | off (setting)
_ENVIRONMENT_KEY = os.fsencode(ENVIRONMENT)  # (os.environ's key for it on POSIX)


_broken: list[str] = []  # why onnxruntime could not make a limb session, once it could not (then never again)


@functools.cache
def _warn_once(message: str) -> None:
    import warnings

    warnings.warn(message, RuntimeWarning, stacklevel=3)


def _hardware_has_amx() -> bool:
    return _hardware_has(("amx_int8",))


@functools.cache
def _hardware_has(flags: tuple[str, ...]) -> bool:
    """Whether the CPU reports any of these /proc/cpuinfo flags."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and not set(flags).isdisjoint(line.split()) for line in cpuinfo)
    except OSError:
        return False


@functools.cache
def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def setting() -> str:
    """This process's choice: "off", "on" (products that pay for it take the limb path) or "always" (every
    product that fits it does: the tests' setting), from VINFER_LIMB_PRODUCTS; "auto" (the default) is "on"
    on a CPU with AMX, else "off". Always "off" without onnxruntime. The results are the same bits whatever it is."""
    return "off" if _broken else _chosen(_environment_text())


def _environment_text() -> str:
    """VINFER_LIMB_PRODUCTS's text ("auto" when unset), read from os.environ's own mapping on POSIX: every product and
    every replay asks, and os.environ.get of an unset variable raises and catches a KeyError inside (0.6 us, against
    0.03 for this lookup). Changes to os.environ (monkeypatch.setenv, os.environ[...] = ...) show at once either way."""
    data = getattr(os.environ, "_data", None)
    if os.name != "posix" or not isinstance(data, dict):
        return os.environ.get(ENVIRONMENT, "auto")
    value = data.get(_ENVIRONMENT_KEY)
    return "auto" if value is None else os.fsdecode(value)


@functools.lru_cache(maxsize=16)  # (asked by every product: the environment's text decides it)
def _chosen(text: str) -> str:
    value = text.strip().lower()
    if value not in ("on", "always", "off", "auto"):
        _warn_once(f"{ENVIRONMENT}={value!r} is not auto, on, always or off: taken as auto")
        value = "auto"
    if value == "off" or (value == "auto" and not _hardware_has_amx()) or _onnxruntime() is None:
        return "off"
    return "on" if value == "auto" else value


def x_limbs(low: int, high: int, bits: int | None = None) -> tuple[int, int, int] | None:
    """(limb count, offset, bits) that hold every activation in [low, high] as limbs of `bits` bits (this machine's
    x_limb_bits() when None) of x + offset >= 0, or None past MAX_LIMBS limbs."""
    bits = x_limb_bits() if bits is None else bits
    offset = -int(low) if low < 0 else 0
    count = max(1, -(-(int(high) + offset).bit_length() // bits))
    return (count, offset, bits) if count <= MAX_LIMBS else None


def max_k(bits: int) -> int:
    """The longest K whose int32 sums of `bits`-bit activation limbs by 8-bit weight limbs cannot wrap."""
    return MAX_K if bits <= X_LIMB_BITS else MAX_K >> 1


def x_limb_bits() -> int:
    """8 where this machine's MLAS kernels multiply bytes with no saturating int16 step (`_wide_limbs_exact`), else
    7. The same integers either way; 8-bit limbs make a 16-bit activation 2 limbs instead of 3."""
    return WIDE_X_LIMB_BITS if _wide_limbs_exact() else X_LIMB_BITS


@functools.cache
def _wide_limbs_exact() -> bool:
    """Whether 8-bit activation limbs are exact here: the CPU has VNNI or AMX (MLAS's kernels for them multiply
    into int32; the saturating vpmaddubsw pairs are the AVX2 / AVX512BW kernels'), and MLAS, asked for products
    whose every pair of terms passes int16 (255 * 127 * 2 = 64770, and -65280), in the shapes of its GEMV and
    GEMM kernels, gives them exactly."""
    if not _hardware_has(("amx_int8", "avx512_vnni", "avx_vnni")) or _onnxruntime() is None:
        return False
    try:
        for rows, depth, columns in ((1, 67, 3), (5, 256, 17), (64, 4, 40)):
            weights = np.full((depth, columns), 127, dtype=np.int64)
            weights[:, ::2] = -128
            weights[::3, 1::3] = 1
            activations = np.full((rows, depth), 255, dtype=np.uint8)
            activations[-1, ::5] = 7
            products = _session(weights.astype(np.int8)).run(None, {"rows": activations})[0]
            if not np.array_equal(products.astype(np.int64), activations.astype(np.int64) @ weights):
                return False
    except Exception:  # any failure of the library: the 7-bit limbs, which every kernel multiplies exactly
        return False
    return True


def weight_limbs(low: int, high: int) -> int:
    """How many signed 8-bit limbs hold every weight in [low, high]: n limbs hold exactly
    [-128 R, 127 R], R = 1 + 256 + ... + 256**(n - 1)."""
    count, reach = 1, 1
    while low < -128 * reach or high > 127 * reach:
        count, reach = count + 1, reach * 256 + 1
    return count


class LimbWeights:
    """A constant (K, N) weight matrix as signed 8-bit limbs side by side, (K, count * N) int8, multiplied in an
    onnxruntime session that packs them once (made on the first product, taking rows or channels-first planes as
    the weight's product needs: `ready`); `column_sums` (N,) for the offset's correction."""

    __slots__ = ("count", "column_sums", "_limbs", "_session", "_plane_session")

    def __init__(self, matrix: np.ndarray):
        matrix = np.asarray(matrix, dtype=np.int64)
        self.count = weight_limbs(int(matrix.min()), int(matrix.max())) if matrix.size else 1
        self.column_sums = matrix.sum(axis=0)
        limbs, rest = [], matrix
        for _ in range(min(self.count, MAX_LIMBS)):  # (past MAX_LIMBS, never multiplied: planned refuses it)
            limb = ((rest + 128) & 255) - 128
            limbs.append(limb.astype(np.int8))
            rest = (rest - limb) >> W_LIMB_BITS
        self._limbs, self._session, self._plane_session = np.concatenate(limbs, axis=1), None, None

    def ready(self, channels_first: bool = False) -> bool:
        """Makes the session taking rows (or, `channels_first`, planes: product_of_planes) on first use, then drops
        the limbs: the session holds them packed. False when onnxruntime cannot (the limb path then off for this
        process, with a warning), or when the other kind of session took the limbs first (a weight read by both
        kinds of product, which no exported model has): the float paths then give the same bits."""
        attribute = "_plane_session" if channels_first else "_session"
        if getattr(self, attribute) is None and self._limbs is not None and not _broken:
            try:
                setattr(self, attribute, _session(np.ascontiguousarray(self._limbs), channels_first))
                self._limbs = None
            except Exception as exc:  # any failure of the library: fall back, never fail a run
                _broken.append(f"{type(exc).__name__}: {exc}")
                _warn_once(f"onnxruntime could not run the limb products ({_broken[0]}): float paths from now on")
        return getattr(self, attribute) is not None

    def product(self, rows: np.ndarray) -> np.ndarray:
        """rows (R, K) uint8 limbs @ the weight limbs -> (R, count * N) int32, exact (module docstring)."""
        return self._session.run(None, {"rows": rows})[0]

    def product_of_planes(self, planes: np.ndarray) -> np.ndarray:
        """planes (images, limbs, K, P) uint8, channels first, -> the products of their rows, (images * P * limbs,
        count * N) int32, rows ordered (image, position, limb) as `product` takes them. onnxruntime transposes the
        bytes and multiplies in one session: its uint8 Transpose moved 2 x 128 x 3025 bytes in 55 us, where the
        compiled loop that splits and transposes at once (loops.limb_planes) took 400. After ready(True)."""
        return self._plane_session.run(None, {"planes": planes})[0]


def _session(limbs: np.ndarray, channels_first: bool = False):
    """A session multiplying uint8 rows (R, K) by the int8 `limbs` (K, width) into int32; with `channels_first`, its
    input is planes (images, limb count, K, P), transposed to rows (image, position, limb) first."""
    ort = _onnxruntime()
    from onnx import TensorProto, helper, numpy_helper

    K, width = limbs.shape
    initializers = [numpy_helper.from_array(limbs, "limbs")]
    if channels_first:
        nodes = [helper.make_node("Transpose", ["planes"], ["by_position"], perm=[0, 3, 1, 2]),
                 helper.make_node("Reshape", ["by_position", "row_shape"], ["rows"]),
                 helper.make_node("MatMulInteger", ["rows", "limbs"], ["products"])]
        inputs = [helper.make_tensor_value_info("planes", TensorProto.UINT8, ["N", "L", K, "P"])]
        initializers.append(numpy_helper.from_array(np.array([-1, K], dtype=np.int64), "row_shape"))
    else:
        nodes = [helper.make_node("MatMulInteger", ["rows", "limbs"], ["products"])]
        inputs = [helper.make_tensor_value_info("rows", TensorProto.UINT8, ["R", K])]
    graph = helper.make_graph(nodes, "limb_product", inputs,
                              [helper.make_tensor_value_info("products", TensorProto.INT32, ["R", width])],
                              initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a job is single-threaded (the worker runs jobs side by side)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def planned(prepared, layout: str, matrix, K: int, x: np.ndarray, x_range, work: int = 0, columns: int = 0,
            taps: int = 1, float_path: str = "float64",
            channels_first: bool = False) -> tuple[tuple[int, int, int], LimbWeights] | None:
    """(x limbs, packed weights) of a product with inner dimension K of run-time x by a constant `prepared`
    weight, when this machine takes the limb path and the product fits it (at most MAX_LIMBS limbs a side,
    K <= max_k) and pays for it (at least least_work(float_path) multiply-adds, `work`, and K >= MIN_K_PER_PRODUCT
    per limb product, or GEMM_MIN_K_PER_PRODUCT (FLOAT32_GEMM_MIN_K_PER_PRODUCT against a float32 direct call) for a
    GEMM (no `columns`) of work >= GEMM_MIN_WORK,
    FEW_COLUMNS_MIN_K_PER_PRODUCT for a convolution of 1..FEW_COLUMNS
    output `columns`, WINDOWED_MIN_K_PER_PRODUCT for one whose kernel has more than one of `taps` and whose float
    path, `float_path`, is float64; anything when the setting is "always"), else None. The weights are
    split once (`matrix()` gives their (K, N) form, cached under `layout`); x_range is x's (min, max), taken from
    x when None. `channels_first`: the product takes planes (LimbWeights.product_of_planes), not rows."""
    least = _threshold(K, work, columns, taps, float_path)
    if least is None:
        return None
    key = ("limbs", layout)
    if key not in prepared.cache:
        prepared.cache[key] = LimbWeights(matrix())
    packed = prepared.cache[key]
    if packed.count > MAX_LIMBS or K < least * packed.count:  # (too short even for one activation limb: no need
        return None  # to take x's range, a pass over x, a copy when x is strided)
    low, high = x_range if x_range is not None else loops.value_range(np.ascontiguousarray(x).reshape(-1))
    limbs = x_limbs(low, high)
    if (limbs is None or K < least * limbs[0] * packed.count or K > max_k(limbs[2])
            or not packed.ready(channels_first)):
        return None
    return limbs, packed


def may_take(K: int, weights: np.ndarray, work: int = 0, columns: int = 0, taps: int = 1,
             float_path: str = "float64") -> bool:
    """Whether `planned` may take the limb path for a product of such a shape by these constant weights with some
    activations: False when it never does, whatever their range (the setting is off, or K is outside what pays for
    the weights' limbs times one activation limb)."""
    least = _threshold(K, work, columns, taps, float_path)
    return least is not None and (not weights.size or K >= least * weight_limbs(int(weights.min()), int(weights.max())))


def _threshold(K: int, work: int, columns: int, taps: int, float_path: str) -> int | None:
    """The least K per limb product from which this process takes the limb path for such a product, or None where it
    never does (the setting is off, fewer than LIMB_MIN_WORK multiply-adds, K past MAX_K or below that least)."""
    chosen = setting()
    if chosen == "off" or K > MAX_K or (chosen == "on" and work < least_work(float_path)):
        return None
    least = 0 if chosen == "always" else _least_per_product(work, columns, taps, float_path)
    return least if K >= least else None


def least_work(float_path: str) -> int:
    """The multiply-adds below which a product keeps its float path under "on": LIMB_MIN_WORK against float64,
    FLOAT32_MIN_WORK against float32."""
    return FLOAT32_MIN_WORK if float_path == "float32" else LIMB_MIN_WORK


def _least_per_product(work: int, columns: int, taps: int = 1, float_path: str = "float64") -> int:
    """The K per limb product from which the limb path pays (see the constants above)."""
    if not columns and work >= GEMM_MIN_WORK:  # (a GEMM: no output positions given)
        direct_call = float_path == "float32" and work < direct.GEMM_MAX_WORK
        return FLOAT32_GEMM_MIN_K_PER_PRODUCT if direct_call else GEMM_MIN_K_PER_PRODUCT
    if 0 < columns <= FEW_COLUMNS:
        return FEW_COLUMNS_MIN_K_PER_PRODUCT
    return WINDOWED_MIN_K_PER_PRODUCT if taps > 1 and float_path == "float64" else MIN_K_PER_PRODUCT


def describe(K: int, operand_bits: int, weight_range: tuple[int, int], gemm: bool = False, taps: int = 1) -> str:
    """For `vinfer inspect`: whether and how a product with inner dimension K of operands of `operand_bits` by
    weights in weight_range (a convolution's kernel of `taps` taps) runs on limbs on this machine (the activation
    limbs depend on the run-time range: at most those of the signed full range; a GEMM's also on its rows, and a
    convolution's on its output positions, known at run time: `planned` decides with the same thresholds)."""
    chosen = setting()
    if chosen == "off":
        return f"float here ({ENVIRONMENT}={os.environ.get(ENVIRONMENT, 'auto')}: off on this machine)"
    w_count = weight_limbs(*weight_range)
    bound = (1 << (operand_bits - 1)) - 1
    x_count, _, bits = x_limbs(-bound, bound)
    products = x_count * w_count
    shape = f"up to {x_count} x {w_count} 8-bit products"
    if w_count > MAX_LIMBS or K > max_k(bits):
        return f"float: weights of {w_count} limbs or K = {K} past the limb path's bounds"
    from verifier.kernels.exact_gemm import plan_gemm  # (here: exact_gemm imports this module)

    float_path = plan_gemm(K, bound, max(-weight_range[0], weight_range[1])).path
    least = 0 if chosen == "always" else _least_per_product(0, 0, 1 if gemm else taps, float_path) * products
    taken = f"{shape} of {bits}-bit by 8-bit limbs on this machine (onnxruntime MatMulInteger, exact; K = {K})"
    smallest = f" of at least {least_work(float_path)} multiply-adds" if chosen == "on" else ""
    if K >= least:
        return f"{taken} for runs{smallest}, else float" if smallest else taken
    if gemm and K >= _least_per_product(GEMM_MIN_WORK, 0, 1, float_path) * products:
        return f"{taken} for runs of at least {max(GEMM_MIN_WORK, least_work(float_path))} multiply-adds, else float"
    if not gemm and K >= _least_per_product(0, FEW_COLUMNS) * products:
        return f"{taken} for runs{smallest} of at most {FEW_COLUMNS} output positions, else float"
    return f"float here: K = {K} < {least}, too short to pay for {shape}"


def conv2d(x, kernel, limbs: tuple[int, int], packed: LimbWeights, strides, pads, dilations, out_shape,
           requantize, out=None) -> np.ndarray:
    """An ungrouped 2-D convolution on the limb path: x int64 or int16 (N, C, H, W), a (KH, KW) kernel whose weights
    are `packed` as conv_matrix gives them, `limbs` = x_limbs of x's range -> int64 (N, OC, *out_shape),
    finished by `requantize` (or the accumulator), in `out` when given (window.fits_result)."""
    count, offset, bits = limbs
    N, C, H, W = x.shape
    K = C * kernel[0] * kernel[1]
    positions = N * out_shape[0] * out_shape[1]
    if requantize is None or not finished_in_loop(requantize):  # (`out` takes finished values only)
        out = None
    out = window.result_array(out, (N, packed.column_sums.shape[0]) + tuple(out_shape))
    if pointwise(kernel, strides, (H, W), out_shape):  # the rows are x's positions
        _pointwise_products(x, limbs, packed, requantize, out.reshape(out.shape[:2] + (-1,)))
        return out if finished_in_loop(requantize) else requantize.apply(out, 1)
    planes = window.scratch("limb_planes", (N, H, W, count, C), np.uint8)
    loops.limb_planes(x, offset, bits, planes)
    rows = window.scratch("limb_rows", (positions, count, K), np.uint8)
    padding = np.array([_limb(offset, l, count, bits) for l in range(count)], dtype=np.uint8)
    loops.limb_gather(planes, tuple(kernel), tuple(strides), tuple(dilations), tuple(pads[:2]),
                      tuple(out_shape), padding, rows)
    _products(rows.reshape(positions * count, K), limbs, packed, requantize, loops.limb_combine,
              out.reshape(out.shape[:2] + (-1,)))
    return out if finished_in_loop(requantize) else requantize.apply(out, 1)


def gemm(a, limbs: tuple[int, int], packed: LimbWeights, requantize) -> np.ndarray:
    """a int64 (..., M, K) @ a Prepared (K, N) on the limb path -> int64 (..., M, N), finished by `requantize`
    (or the accumulator)."""
    count, offset, bits = limbs
    K = a.shape[-1]
    flat = a.reshape(-1, K)
    rows = window.scratch("limb_rows", (flat.shape[0], count, K), np.uint8)
    loops.limb_rows(flat, offset, bits, rows)
    out = np.empty((flat.shape[0], packed.column_sums.shape[0]), dtype=np.int64)
    _products(rows.reshape(-1, K), limbs, packed, requantize, loops.limb_combine_rows, out)
    out = out.reshape(a.shape[:-1] + out.shape[-1:])
    return out if finished_in_loop(requantize) else requantize.apply(out, -1)


def conv_matrix(weight: np.ndarray) -> np.ndarray:
    """A convolution's (OC, C, *kernel) weight as the (K, OC) matrix of limb_gather's rows, taps major."""
    return weight.transpose((0,) + tuple(range(2, weight.ndim)) + (1,)).reshape(weight.shape[0], -1).T


BAND_BYTES = 1 << 20  # int32 products combined per band: about half an L2 cache


def _products(rows, limbs: tuple[int, int, int], packed: LimbWeights, requantize, combine, out) -> None:
    """The limb products of `rows` (positions * count, K), combined into `out` band by band, so that each
    band's int32 products are still in cache when they are combined."""
    count, offset, bits = limbs
    bias, finish = integer_epilogue(requantize, -offset * packed.column_sums)
    positions = rows.shape[0] // count
    band = max(1, BAND_BYTES // (4 * count * packed.count * bias.shape[0]))
    for first in range(0, positions, band):
        products = packed.product(rows[first * count:min(first + band, positions) * count])
        combine(products, count, bits, packed.count, first, bias, *finish, out)


def pointwise(kernel, strides, spatial, out_shape) -> bool:
    """Whether a convolution is 1x1 at stride 1 with its output the input's `spatial` shape (so unpadded): its rows
    are its input's positions (_pointwise_products)."""
    return all(k == 1 for k in kernel) and all(s == 1 for s in strides) and tuple(out_shape) == tuple(spatial)


def _pointwise_products(x, limbs: tuple[int, int, int], packed: LimbWeights, requantize, out) -> None:
    """A 1x1 stride-1 convolution's limb products, combined into `out` (N, OC, H * W): x's limbs split channels
    first (loops.limb_channels, one contiguous pass), transposed to rows and multiplied by onnxruntime
    (LimbWeights.product_of_planes), a band of whole images at a time."""
    count, offset, bits = limbs
    N, C, H, W = x.shape
    P = H * W
    planes = window.scratch("limb_channels", (N, count, C, P), np.uint8)
    loops.limb_channels(x, offset, bits, planes.reshape(N, count, C, H, W))
    bias, finish = integer_epilogue(requantize, -offset * packed.column_sums)
    band = max(1, BAND_BYTES // (4 * P * count * packed.count * bias.shape[0]))
    for first in range(0, N, band):
        products = packed.product_of_planes(planes[first:first + band])
        loops.limb_combine(products, count, bits, packed.count, first * P, bias, *finish, out)


def _limb(value: int, index: int, count: int, bits: int) -> int:
    """Limb `index` of `count` limbs of `bits` bits of value >= 0 (the last one unmasked)."""
    limb = value >> (bits * index)
    return limb if index == count - 1 else limb & ((1 << bits) - 1)
