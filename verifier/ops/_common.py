"""Helpers several ops share. Integer helpers here only compose verifier.fixedpoint; nothing new rounds."""

import functools

import numpy as np

from verifier.errors import OutOfRangeError
from verifier.fixedpoint import ACT_BITS, WEIGHT_BITS, frac_for_range, qmax, quantize, requantize, round_shift
from verifier.kernels import window

MAX_SHIFT = 62
ACTIVATION_LIMIT = qmax(ACT_BITS)  # |value| of every fixed-point activation (checked_range)


def weight_frac(value: np.ndarray, bits: int = WEIGHT_BITS) -> int:
    """The frac a constant is quantized at: as many fraction bits as fit `bits` for its largest magnitude."""
    value = np.asarray(value, dtype=np.float64)
    return frac_for_range(float(np.max(np.abs(value))) if value.size else 0.0, bits)


def quantize_const(value: np.ndarray, frac: int, bits: int = 62) -> np.ndarray:
    """A compile-time constant at a given frac (wide: biases live at accumulator scale)."""
    return quantize(value, frac, bits)


def align(q: np.ndarray, from_frac: int, to_frac: int) -> np.ndarray:
    """Exact move to a larger frac (a left shift); never rounds."""
    assert to_frac >= from_frac
    return round_shift(q, from_frac - to_frac)


def to_output(acc: np.ndarray, acc_frac: int, out_frac: int) -> np.ndarray:
    """The one way a wide result becomes an activation: round half away from zero, saturate to 16 bits."""
    return requantize(acc, acc_frac, out_frac, ACT_BITS)


def multiplier_for(real: float, target_bits: int = 30) -> tuple[int, int]:
    """(m, s) with m / 2**s ~= real, |m| < 2**target_bits: scaling by a float constant with integers."""
    if real == 0.0:
        return 0, 0
    shift = int(np.floor(target_bits - 1 - np.log2(abs(real))))
    shift = max(min(shift, MAX_SHIFT), -MAX_SHIFT)
    return int(quantize(np.array([real]), shift, 63)[0]), shift


def broadcast_shape(*shapes):
    return np.broadcast_shapes(*shapes)


def size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


# -- run-time helpers ------------------------------------------------------------------------------

_PREPARED: dict = {}


def prepared(array: np.ndarray):
    """A constant operand wrapped once for the kernels (its float copies cached while the array lives)."""
    known = _PREPARED.get(id(array))
    if known is not None:
        return known
    import weakref

    from verifier.kernels import prepare

    key = id(array)
    _PREPARED[key] = prepare(array)
    weakref.finalize(array, _PREPARED.pop, key, None)
    return _PREPARED[key]


def checked_range(x: np.ndarray, value_range: tuple[int, int] | None = None) -> tuple[int, int]:
    """(min, max) of a run-time GEMM/conv operand ((0, 0) when empty; `value_range` when the caller took it
    already). A GEMM/conv plans and is costed with the 16-bit activation range every fixed-point tensor
    lies in; a value outside it (only a hostile program's) is refused with OutOfRangeError rather than
    silently taking a slower path than the cost charged for."""
    if not x.size:
        return 0, 0
    if value_range is None:
        from verifier.kernels import loops

        value_range = loops.value_range(window.loop_operand(x).reshape(-1))
    low, high = int(value_range[0]), int(value_range[1])
    if high > ACTIVATION_LIMIT or low < -ACTIVATION_LIMIT:
        raise OutOfRangeError(f"a matrix operand holds values beyond the 16-bit activation range "
                              f"±{ACTIVATION_LIMIT}")
    return low, high


def epilogue(acc: np.ndarray, attrs: dict, bias, path: str) -> np.ndarray:
    """The end of a GEMM/conv: y = requantize(acc + bias, acc_frac, out_frac), then the fused Relu
    (attrs["relu"]). Fast: kernels.requantize in place on the accumulator; reference: the fixedpoint
    primitives step by step. Identical bits (tests/verifier/test_kernels_epilogue.py)."""
    if path == "reference":
        if bias is not None:
            acc = acc + bias
        out = requantize(acc, attrs["acc_frac"], attrs["out_frac"], output_bits(attrs))
        return np.maximum(out, 0) if attrs.get("relu") else out
    from verifier.kernels import requantize as requantize_fast

    return requantize_fast(acc, attrs["acc_frac"], attrs["out_frac"], output_bits(attrs), bias=bias, out=acc,
                           relu=bool(attrs.get("relu")))


def output_bits(attrs: dict) -> int:
    """The saturation width of a GEMM/conv output: 16, or 8 for a node of an 8-bit program whose output
    only ever enters 8-bit products (attrs["out_bits"]: it is produced at its narrow scale directly)."""
    return int(attrs.get("out_bits", ACT_BITS))


def requantize_spec(weight, attrs: dict, bias, channels: int):
    """The epilogue of a GEMM/conv node as a kernels Requantize, cached on the node's prepared weight: the
    kernels fuse it into their float product when its bound allows. None when the bias is not one value
    per output channel (`channels` of them, or a single one for all): a Gemm's C may be a whole matrix,
    which the unfused epilogue adds with broadcasting."""
    from verifier.kernels.epilogue import Requantize

    key = ("requantize", attrs["acc_frac"], attrs["out_frac"], output_bits(attrs), bool(attrs.get("relu")), id(bias))
    if key not in weight.cache:
        if bias is not None and bias.size == 1:
            bias = np.full(channels, bias.reshape(-1)[0], dtype=np.int64)
        per_channel = bias is None or (bias.size == channels and bias.shape[-1] == channels)
        weight.cache[key] = Requantize(attrs["acc_frac"] - attrs["out_frac"], output_bits(attrs), bool(attrs.get("relu")),
                                       bias) if per_channel else None
    return weight.cache[key]


@functools.lru_cache(maxsize=256)
def _bias_free_spec(shift: int, bits: int, relu: bool):
    from verifier.kernels.epilogue import Requantize

    return Requantize(shift, bits, relu)


def runtime_spec(attrs: dict):
    """The epilogue of a product of two run-time operands (no bias) as a kernels Requantize (shared by
    every node with the same shift, width and Relu)."""
    return _bias_free_spec(attrs["acc_frac"] - attrs["out_frac"], output_bits(attrs), bool(attrs.get("relu")))


def epilogue_plan(op: str, attrs: dict, consts: dict) -> str | None:
    """How a GEMM/conv node's epilogue runs on the fast path, for `vinfer inspect`: fused into the float
    product (epilogue.Requantize) or as int64 passes over the accumulator; None for other nodes."""
    from verifier.kernels.epilogue import FUSED_LIMIT

    if op not in ("Conv", "Gemm", "MatMul") or "acc_frac" not in attrs:
        return None
    unfused = "int64 passes over the accumulator"
    weight = consts.get("weight", consts.get("k1"))
    if op == "MatMul" and not consts and attrs.get("path") in ("float64", "float32"):
        return (f"finished from the {attrs['path']} product in one pass while K * |a| * |b| + 1 < "
                f"2**{FUSED_LIMIT.bit_length() - 1} (checked per run)")
    if weight is None or "c_shift" in attrs or (op == "MatMul" and ("k0" in consts or weight.ndim != 2)):
        return unfused
    K, channels = (size(weight.shape[1:]), weight.shape[0]) if op == "Conv" else weight.shape
    operand_bound = qmax(int(attrs.get("operand_bits", ACT_BITS)))
    bound = int(K) * operand_bound * (int(np.max(np.abs(weight))) if weight.size else 0)
    spec = requantize_spec(prepared(weight), attrs, consts.get("bias"), channels)
    float32 = attrs.get("path") == "float32"
    depthwise = op == "Conv" and attrs.get("path_reason", "").startswith("depthwise")
    if depthwise and weight.ndim in (3, 4) and spec is not None and spec.fits_int64(bound):
        return (f"products and epilogue in one compiled int64 loop instead (1-D and 2-D): |acc| + |bias| <= "
                f"{bound + spec.bias_bound} < 2**62")
    if float32 and op == "Conv" and not attrs.get("path_reason", "").startswith("im2col"):
        return unfused  # (a float32 depthwise product ends with the int64 passes)
    if attrs.get("path") not in ("float64", "float32") or spec is None or not spec.fusable(bound):
        return unfused
    where = "summed onto the bias in float64 and finished there" if float32 else "fused into the product"
    return (f"{where}: |acc| + |bias| + 1 <= {bound + spec.bias_bound + 1} < 2**{FUSED_LIMIT.bit_length() - 1}"
            + _direct_note(op, weight, int(K) * int(channels), bound, spec))


def _direct_note(op: str, weight: np.ndarray, per_row: int, bound: int, spec) -> str:
    """When a node's products are small enough for kernels/direct.py's one compiled call, for epilogue_plan."""
    from verifier.kernels import direct

    if not direct.applies(0, 1, bound, spec) or (op == "Conv" and weight.ndim not in (3, 4)):  # (work 0: the rest)
        return ""
    if op == "Conv":
        return (f"; a run of fewer than {direct.CONV_MAX_WORK} multiply-adds (images x positions x K x channels; "
                f"planned im2col: an image, and {direct.CONV_BATCH_MAX_WORK} in all) takes product and epilogue in "
                f"one compiled call")
    rows = (direct.GEMM_MAX_WORK - 1) // max(per_row, 1)
    return f"; up to {rows} rows, product and epilogue in one compiled call" if rows else ""


def limb_plan(op: str, attrs: dict, consts: dict) -> str | None:
    """Whether a GEMM/conv node's product takes the 8-bit limb path on this machine (kernels/limbs.py), for
    `vinfer inspect`; None for nodes that never do (no constant weight against a run-time operand, grouped or
    3-D convolutions)."""
    from verifier.kernels import limbs

    weight = consts.get("weight") if op in ("Conv", "Gemm") else consts.get("k1")
    if op not in ("Conv", "Gemm", "MatMul") or weight is None or not weight.size or "k0" in consts:
        return None
    if op == "Conv" and (int(attrs.get("group", 1)) != 1 or weight.ndim not in (3, 4)):
        return None
    if (op == "MatMul" and weight.ndim != 2) or "c_shift" in attrs:
        return None
    K = size(weight.shape[1:]) if op == "Conv" else weight.shape[0]
    return limbs.describe(int(K), int(attrs.get("operand_bits", ACT_BITS)), (int(weight.min()), int(weight.max())),
                          gemm=op != "Conv", taps=size(weight.shape[2:]) if op == "Conv" else 1)


def window_cost(shapes, attrs, consts) -> int:
    """Work of a pooling window op (MaxPool, AveragePool): every output element reads its window once,
    plus one pass over the input."""
    import math

    x = shapes[0]
    out = window_output_shape(x, attrs)
    return math.prod(int(d) for d in x) + math.prod(out) * math.prod(int(k) for k in attrs["kernel_shape"])


def window_output_size(inputs, attrs, consts) -> int:
    """Elements of a pooling op's larger buffer: its output, or the padded copy of its input."""
    return window_buffer_size(inputs[0].shape, attrs)


def window_buffer_size(x, attrs) -> int:
    """window_output_size for an input of shape x."""
    import math

    rank = len(attrs["kernel_shape"])
    padded = math.prod(int(d) for d in x[:2]) * math.prod(
        int(d) + int(b) + int(e) for d, b, e in zip(x[2:], attrs["pads"][:rank], attrs["pads"][rank:]))
    return max(math.prod(window_output_shape(x, attrs)), padded)


def window_output_shape(x, attrs) -> tuple:
    """The output shape of a pooling window op (kernel_shape, strides, pads, dilations, ceil_mode) on shape x."""
    from verifier.kernels.window import normalize, output_shape

    kernel = [int(k) for k in attrs["kernel_shape"]]
    if len(x) != len(kernel) + 2:
        raise ValueError(f"pooling input of rank {len(x)} for a {len(kernel)}-D kernel")
    geometry = normalize(len(kernel), attrs["strides"], attrs["pads"], attrs["dilations"])
    spatial = output_shape(tuple(int(d) for d in x[2:]), kernel, *geometry, ceil_mode=bool(attrs.get("ceil_mode")))
    return (int(x[0]), int(x[1])) + tuple(spatial)


def or_run(compute, op, attrs: dict, consts: dict):
    """A bound function (interpreter replays) giving op's output as compute(first input), or by op.run where compute
    gives None (a compiled loop that declines: run then takes the values as it always did); None for no compute."""
    if compute is None:
        return None

    def bound(inputs):
        out = compute(inputs[0])
        return [out] if out is not None else op.run(inputs, attrs, consts)

    return bound


def narrowable(kernel, result_shape: tuple | None):
    """A bound function (interpreter replays) [kernel(x)] of a node's first input x, where kernel(x, out=None) takes
    an int16 x as it is and writes its result into `out` where it can (else returns a new int64 array). With a
    result_shape it carries `narrowed`: the same values as an int16 array (replays.py: a tensor proven within 16
    bits that only ops reading int16 read), in a new one the kernel fills, or converted where it does not; and it
    `places` its result: bound(inputs, out) computes it into `out` (a Concat's slice: window.fits_result) where the
    kernel can."""

    def bound(inputs, out=None):
        if out is not None and not window.fits_result(out, result_shape):
            out = None
        return [kernel(inputs[0], out)]

    def narrowed(inputs):
        out = np.empty(result_shape, dtype=np.int16)
        result = kernel(inputs[0], out)
        return [out if result is out else result.astype(np.int16)]

    if result_shape is not None:
        bound.narrowed, bound.places = narrowed, True
    return bound


def reshaped(run, shape: tuple, attrs: dict, consts: dict):
    """A bound function (interpreter replays) for an op whose output is its input's values in another shape (Flatten,
    Squeeze, Unsqueeze): that shape worked out once, by the op's own `run` on a stand-in of the input's shape (zero
    strides: nothing allocated). A shape run refuses raises here, and the replay then keeps run, which reports it."""
    target = run([np.broadcast_to(np.int64(0), shape)], attrs, consts)[0].shape
    return lambda inputs: [inputs[0].reshape(target)]


def kernel_path() -> str:
    """The execution path of GEMM/conv kernels: a forced one (tests, `--path`) or the fast exact plan."""
    return _forced_path()() or "fast"


@functools.cache
def _forced_path():
    """interpreter.current_forced_path, imported once, on first use (the interpreter imports the ops)."""
    from verifier.interpreter import current_forced_path

    return current_forced_path


def window_geometry(ctx, weight_shape) -> tuple[list, list, list, list]:
    """(kernel, strides, pads, dilations) of a Conv-like node with a weight of `weight_shape`: the attributes
    with ONNX's defaults, auto_pad resolved (auto_pads), checked (window.normalize)."""
    from verifier.kernels.window import normalize

    rank = len(weight_shape) - 2
    kernel = list(ctx.attr("kernel_shape", weight_shape[2:]))
    strides = list(ctx.attr("strides", [1] * rank))
    dilations = list(ctx.attr("dilations", [1] * rank))
    pads = auto_pads(ctx, kernel, strides, dilations)
    normalize(rank, strides, pads, dilations)
    return kernel, strides, pads, dilations


def auto_pads(ctx, kernel, strides, dilations) -> list:
    """Explicit ONNX pads [begin..., end...] for an auto_pad attribute (needs static spatial dims)."""
    mode = ctx.attr("auto_pad", "NOTSET")
    rank = len(kernel)
    if mode in ("NOTSET", ""):
        return list(ctx.attr("pads", [0] * (2 * rank)))
    if mode == "VALID":
        return [0] * (2 * rank)
    shape = ctx.inputs[0].shape
    if shape is None or any(d is None for d in shape[2:]):
        ctx.unsupported(f"auto_pad={mode} needs static spatial input dims")
    begin, end = [], []
    for size_i, k, s, d in zip(shape[2:], kernel, strides, dilations):
        out = -(-size_i // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size_i, 0)
        small, large = total // 2, total - total // 2
        begin.append(large if mode == "SAME_LOWER" else small)
        end.append(small if mode == "SAME_LOWER" else large)
    return begin + end


def int_list(value) -> list:
    return [int(v) for v in np.asarray(value).reshape(-1)]


def const_ints(ctx, index: int, what: str) -> list | None:
    """A constant integer input (axes, shape, pads...) as a list; None when absent."""
    if index >= len(ctx.inputs) or ctx.inputs[index] is None:
        return None
    operand = ctx.inputs[index]
    if not operand.is_const:
        return None
    return int_list(operand.value)
