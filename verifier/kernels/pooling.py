"""Integer pooling with ONNX MaxPool / AveragePool semantics (kernel, strides, pads, dilations,
ceil_mode), separable: max and sum are taken along one spatial axis at a time, each a few vectorized
passes over strided views; 1-D and 2-D max pools run as one compiled loop (loops.max_pool), the same
maxima of the same values.

avg_pool_sum returns the window sums and the divisor of each output position, which the caller divides
with the fixed-point rounding rule (verifier.fixedpoint.rounding_divide); avg_pool does both, for 1-D and
2-D pools in one compiled loop (loops.avg_pool) that rounds with the same rule.
"""

import functools

import numpy as np

from verifier.fixedpoint import rounding_divide
from verifier.kernels import loops, window
from verifier.kernels.exact_gemm import _as_int64

_EMPTY = np.iinfo(np.int64).min  # the padding of a max pool: below every value


def max_pool(x, kernel_shape, *, strides=None, pads=None, dilations=None, ceil_mode: bool = False,
             compiled: bool = True) -> np.ndarray:
    """Max over each window of x (N, C, *spatial); padding never wins. int64 (N, C, *out). 1-D and 2-D
    pools run in one compiled loop (loops.max_pool) unless `compiled` is False; others, and those, as
    separable numpy passes over the padded input. A window entirely in the padding is an error."""
    x = _as_int64(x)
    kernel, strides, pads, dilations, out_shape = _max_geometry(x.shape, kernel_shape, strides, pads, dilations,
                                                                ceil_mode)
    rank = x.ndim - 2
    if compiled and rank in (1, 2) and x.size:
        return _max_pool_compiled(x, kernel, strides, pads, dilations, out_shape)
    xp = _padded_to_cover(x, kernel, strides, pads, dilations, out_shape, _EMPTY)
    return _separable(xp, kernel, strides, dilations, out_shape, np.maximum)


def bind_max_pool(x_shape: tuple, kernel_shape, *, strides=None, pads=None, dilations=None, ceil_mode: bool = False):
    """max_pool(x, kernel_shape, ...) for every x of shape x_shape, as a function of (x, out=None) with its geometry
    worked out and checked once (the interpreter's replays); None where max_pool does not take its compiled loop (1-D
    and 2-D, not empty) or refuses the geometry (its call then says why). A 2-D pool reads an int16 x as it is (a
    replay's narrow tensor) and writes into `out` (a new C-contiguous int64 or int16 array of the result's shape)
    when given; the result is otherwise a new int64 array."""
    if len(x_shape) not in (3, 4) or 0 in x_shape:
        return None
    geometry = _accepted_geometry(x_shape, kernel_shape, strides, pads, dilations, ceil_mode)
    if geometry is None:
        return None
    if len(x_shape) == 3:
        return lambda x, out=None: _max_pool_compiled(_as_int64(x), *geometry)
    arguments, width, result_shape = _loop_arguments(x_shape, *geometry)  # (2-D: _pooled's, worked out once)

    def pooled(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None or out.shape != result_shape or not out.flags.c_contiguous:
            out = np.empty(result_shape, dtype=np.int64)
        x = window.loop_operand(x)
        loops.max_pool(x.reshape(-1), *arguments, np.full(width, np.iinfo(x.dtype).min, dtype=x.dtype),
                       out.reshape(-1))
        return out

    pooled.result_shape = result_shape
    return pooled


def max_pool_geometry(x_shape: tuple, kernel_shape, *, strides=None, pads=None, dilations=None,
                      ceil_mode: bool = False) -> tuple | None:
    """(kernel, strides, pads, dilations, out_shape) of a 2-D max_pool on inputs of x_shape, for a kernel that pools
    its own output (kernels/direct.py); None where max_pool would refuse it (its call then says why) or not 2-D."""
    if len(x_shape) != 4:
        return None
    return _accepted_geometry(x_shape, kernel_shape, strides, pads, dilations, ceil_mode)


def _accepted_geometry(x_shape, kernel_shape, strides, pads, dilations, ceil_mode) -> tuple | None:
    """_max_geometry, or None where it refuses the pool."""
    try:
        return _max_geometry(tuple(x_shape), kernel_shape, strides, pads, dilations, ceil_mode)
    except ValueError:
        return None


def pool_arguments(attrs: dict) -> tuple[tuple, dict]:
    """(kernel, keyword arguments) of max_pool / max_pool_floats from a MaxPool node's attributes (kernel_shape,
    strides, pads, dilations, ceil_mode)."""
    return tuple(int(k) for k in attrs["kernel_shape"]), {
        "strides": attrs["strides"], "pads": attrs["pads"], "dilations": attrs["dilations"],
        "ceil_mode": bool(attrs["ceil_mode"])}


def max_pool_floats(y, kernel_shape, *, strides=None, pads=None, dilations=None, ceil_mode: bool = False) -> np.ndarray:
    """max_pool of a 2-D float64 array (N, C, H, W) of exact values (a convolution's fused product, pooled before its
    epilogue: convolution.py), the same windows and maxima; -inf pads. A new float64 array (N, C, *out)."""
    if y.ndim != 4 or y.dtype != np.float64:
        raise ValueError(f"max_pool_floats takes a float64 (N, C, H, W) array, got {y.dtype} {y.shape}")
    kernel, strides, pads, dilations, out_shape = _max_geometry(y.shape, kernel_shape, strides, pads, dilations,
                                                                ceil_mode)
    return _pooled(loops.max_pool, y, kernel, strides, pads, dilations, out_shape, -np.inf)


def _max_pool_compiled(x, kernel, strides, pads, dilations, out_shape):
    """loops.max_pool; a 1-D pool runs as 2-D with a unit height."""
    return _pooled(loops.max_pool, x, kernel, strides, pads, dilations, out_shape, _EMPTY)


def _pooled(loop, x, kernel, strides, pads, dilations, out_shape, fill, *counts):
    """A compiled 2-D pooling loop (loops.max_pool, or loops.avg_pool with the windows' counts) on x (N, C,
    H, W), its row buffer's padding columns `fill`; a 1-D pool runs as 2-D with a unit height."""
    one_dimensional = x.ndim == 3
    if one_dimensional:
        x, counts = x[:, :, None], tuple(c[None] for c in counts)
        kernel, strides, dilations = (1,) + tuple(kernel), (1,) + tuple(strides), (1,) + tuple(dilations)
        pads, out_shape = (0, pads[0], 0, pads[1]), (1,) + tuple(out_shape)
    arguments, width, result_shape = _loop_arguments(x.shape, kernel, strides, pads, dilations, out_shape)
    row = np.full(width, fill, dtype=x.dtype)
    out = np.empty(result_shape, dtype=x.dtype)
    loop(np.ascontiguousarray(x).reshape(-1), *arguments, *(np.ascontiguousarray(c) for c in counts), row,
         out.reshape(-1))
    return out[:, :, 0] if one_dimensional else out


def _loop_arguments(shape, kernel, strides, pads, dilations, out_shape) -> tuple[tuple, int, tuple]:
    """A 2-D pooling loop's geometry arguments for an input of `shape` (N, C, H, W): (H, W, kernel, strides,
    dilations, begin pads, out_shape), the width of its row buffer (through the last window, or the padded row),
    and the result's shape."""
    H, W = shape[2:]
    width = max(_reach(kernel, strides, dilations, out_shape, 1), pads[1] + W)
    arguments = (H, W, tuple(kernel), tuple(strides), tuple(dilations), tuple(pads[:2]), tuple(out_shape))
    return arguments, width, tuple(shape[:2]) + tuple(out_shape)


@functools.lru_cache(maxsize=256)
def _empty_window(size, kernel, stride, pad, dilation, out_size) -> bool:
    """Whether some output's window along one axis reads no input position (only padding)."""
    for o in range(out_size):
        if not any(0 <= o * stride - pad + j * dilation < size for j in range(kernel)):
            return True
    return False


def avg_pool_sum(x, kernel_shape, *, strides=None, pads=None, dilations=None, ceil_mode: bool = False,
                 count_include_pad: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sum of each window and its element count: (sums int64 (N, C, *out), counts int64 (*out)).

    counts: the window taps inside the input, plus (count_include_pad) those in the explicit pads;
    taps past the end padding that ceil_mode adds are never counted (onnxruntime / PyTorch)."""
    x = _as_int64(x)
    kernel, strides, pads, dilations, out_shape = _geometry(x.shape, kernel_shape, strides, pads, dilations, ceil_mode)
    counts = _window_counts(x.shape[2:], kernel, strides, pads, dilations, out_shape, count_include_pad)
    xp = _padded_to_cover(x, kernel, strides, pads, dilations, out_shape, 0)
    return _separable(xp, kernel, strides, dilations, out_shape, np.add), counts


def avg_pool(x, kernel_shape, *, strides=None, pads=None, dilations=None, ceil_mode: bool = False,
             count_include_pad: bool = False) -> np.ndarray:
    """fixedpoint.rounding_divide(*avg_pool_sum(...)): the same integers, for 1-D and 2-D pools in one compiled
    loop (loops.avg_pool: window sums and their division in one pass), else from avg_pool_sum."""
    x = _as_int64(x)
    kernel, strides, pads, dilations, out_shape = _geometry(x.shape, kernel_shape, strides, pads, dilations, ceil_mode)
    counts = _window_counts(x.shape[2:], kernel, strides, pads, dilations, out_shape, count_include_pad)
    if x.ndim not in (3, 4) or not x.size:  # (avg_pool_sum's separable sums, without its geometry again)
        xp = _padded_to_cover(x, kernel, strides, pads, dilations, out_shape, 0)
        return rounding_divide(_separable(xp, kernel, strides, dilations, out_shape, np.add), counts)
    return _pooled(loops.avg_pool, x, kernel, strides, pads, dilations, out_shape, 0, counts)


def _window_counts(spatial, kernel, strides, pads, dilations, out_shape, count_include_pad) -> np.ndarray:
    """The element count of every window (int64, out_shape), refused when a window counts none."""
    rank = len(spatial)
    xp_shape = tuple(pads[i] + max(_reach(kernel, strides, dilations, out_shape, i) - pads[i], s)
                     for i, s in enumerate(spatial))
    counted = np.zeros(xp_shape, dtype=np.int64)
    if count_include_pad:
        counted[tuple(slice(0, s + pads[i] + pads[i + rank]) for i, s in enumerate(spatial))] = 1
    else:
        counted[tuple(slice(pads[i], pads[i] + s) for i, s in enumerate(spatial))] = 1
    counts = _separable(counted, kernel, strides, dilations, out_shape, np.add)
    if counts.size and counts.min() == 0:
        raise ValueError(f"avg_pool_sum: a window lies entirely in the padding (pads={pads}, kernel={kernel})")
    return counts


def _separable(x, kernel, strides, dilations, out_shape, combine) -> np.ndarray:
    """combine (max or +, associative and commutative) over every window of the trailing len(kernel) axes of
    x, one axis at a time: sum(k_i) passes over shrinking arrays instead of prod(k_i) over the output
    (a 3x3 max pool: 6 passes; with stride 2, its first pass halves the data). A new int64 array."""
    rank = len(kernel)
    for i in reversed(range(rank)):  # the contiguous axis first
        axis = x.ndim - rank + i
        taps = []
        for j in range(kernel[i]):
            start = j * dilations[i]
            index = [slice(None)] * x.ndim
            index[axis] = slice(start, start + (out_shape[i] - 1) * strides[i] + 1, strides[i])
            taps.append(x[tuple(index)])
        reduced = taps[0].copy()
        for tap in taps[1:]:
            combine(reduced, tap, out=reduced)
        x = reduced
    return x if rank else x.copy()


def _max_geometry(shape, kernel_shape, strides, pads, dilations, ceil_mode):
    """_geometry of a max pool on an input of `shape`, refusing a window that lies entirely in the padding."""
    kernel, strides, pads, dilations, out_shape = _geometry(shape, kernel_shape, strides, pads, dilations, ceil_mode)
    for axis in range(len(shape) - 2):
        if _empty_window(shape[2 + axis], kernel[axis], strides[axis], pads[axis], dilations[axis], out_shape[axis]):
            raise ValueError(f"max_pool: a window lies entirely in the padding (pads={pads}, kernel={kernel})")
    return kernel, strides, pads, dilations, out_shape


def _geometry(shape, kernel_shape, strides, pads, dilations, ceil_mode):
    """(kernel, strides, pads, dilations, out_shape) of a pool on an input of `shape`, checked; the same for every run
    of a layer, so worked out once per input shape and attributes."""
    if len(shape) < 3:
        raise ValueError(f"pooling needs x of shape (N, C, *spatial), got {tuple(shape)}")
    arguments = (tuple(shape),) + tuple(tuple(v) if isinstance(v, list) else v
                                          for v in (kernel_shape, strides, pads, dilations)) + (bool(ceil_mode),)
    try:
        return _worked_out(*arguments)
    except TypeError:  # (an unhashable argument: worked out afresh, and its own error raised if it has one)
        return _worked_out.__wrapped__(*arguments)


@functools.lru_cache(maxsize=512)
def _worked_out(shape, kernel_shape, strides, pads, dilations, ceil_mode):
    rank = len(shape) - 2
    kernel = tuple(int(k) for k in kernel_shape)
    if len(kernel) != rank or min(kernel) < 1:
        raise ValueError(f"pooling kernel {kernel} does not fit input {shape}")
    strides, pads, dilations = window.normalize(rank, strides, pads, dilations)
    out_shape = window.output_shape(shape[2:], kernel, strides, pads, dilations, ceil_mode)
    return kernel, strides, pads, dilations, out_shape


def _padded_to_cover(x, kernel, strides, pads, dilations, out_shape, fill):
    """Pad the begin side as declared and the end side exactly as far as the last window reaches
    (further than the declared pads when ceil_mode adds a partial window)."""
    rank = x.ndim - 2
    ends = []
    for i, size in enumerate(x.shape[2:]):
        ends.append(max(_reach(kernel, strides, dilations, out_shape, i) - size - pads[i], 0))
    return window.padded(x, pads[:rank], ends, fill, np.int64)


def _reach(kernel, strides, dilations, out_shape, axis) -> int:
    """Positions of the padded input that the windows span along `axis`: through the last window's last tap."""
    return (out_shape[axis] - 1) * strides[axis] + dilations[axis] * (kernel[axis] - 1) + 1
