"""Exact integer convolution with ONNX Conv semantics (1-D, 2-D, 3-D; groups; no bias).

Fast paths, each an exact float computation under a proven bound (see exact_gemm.py):
  winograd   3x3 stride-1 convolutions with many channels and tiles (winograd.py): F(2x2, 3x3), 2.25x fewer
             products, or F(4x4, 3x3), 4x fewer, from 64 channels on images of about 20x20 and up;
  depthwise  one input channel per group (depthwise.py): with its epilogue (1-D, 2-D), one compiled loop over
             stride phases in float64 (loops.depthwise_fused), or in int64 for biases too wide for it
             (loops.depthwise); otherwise per-channel products over stride-phase columns;
  im2col     everything else: columns gathered into a reused buffer (one compiled loop for 2-D at stride
             1 or small inputs, loops.im2col; else one vectorized copy per kernel offset), then one
             batched BLAS product per group.
Below direct.CONV_MAX_WORK multiply-adds (planned im2col: an image, and CONV_BATCH_MAX_WORK in all) a 1-D or 2-D
convolution planned im2col or Winograd runs as one compiled call instead - its columns, a BLAS product and the
epilogue, image by image, with any fused MaxPool (direct.py).
On a machine that takes the limb path (limbs.py: 8-bit integer products, AMX), an ungrouped 1-D or 2-D
convolution with a long enough K gathers rows of 7-bit limbs instead (loops.limb_planes, limb_gather).
Reference path: the direct definition, out[n, o, p] = sum over kernel offsets and input channels of
w * x, in int64 loops. Every fast path equals it bit for bit (tests/verifier/test_kernels_conv.py).
"""

import math

import numpy as np

from verifier.kernels import depthwise, direct, exact_gemm, limbs, loops, pooling, window, winograd
from verifier.kernels.epilogue import Requantize, float_product
from verifier.kernels.exact_gemm import GemmPlan, Prepared, _as_int64, _max_abs, plan_gemm


WINOGRAD = ("winograd", "winograd4x4")  # the algorithms of winograd.conv3x3


def plan_conv(x_shape, w_shape, group: int, x_bound: int, w_bound: int, *,
              strides=None, pads=None, dilations=None) -> GemmPlan:
    """The exact path of a convolution: its dot products have length C/group * kernel size.
    With the geometry (strides, pads, dilations) the plan also names the algorithm the fast path
    takes (GemmPlan.algorithm: "im2col", "depthwise", "winograd" or "winograd4x4")."""
    base = plan_gemm(math.prod(w_shape[1:]), x_bound, w_bound)
    if base.path == "int64":
        return base
    if w_shape[1] == 1 and group > 1:
        return GemmPlan(base.path, base.chunk, f"depthwise; {base.reason}", algorithm="depthwise")
    # Winograd saves 2.25x of the products but widens its operands past float32's exact range: with
    # operands narrow enough for float32 (twice float64's speed), im2col in float32 is as fast, with no transforms
    if base.path == "float64" and (strides is not None or pads is not None or dilations is not None):
        strides, pads, dilations = window.normalize(len(x_shape) - 2, strides, pads, dilations)
        if winograd.applies(x_shape, w_shape, strides, pads, dilations, group):
            transformed = (winograd.plan_large(x_shape, pads, x_bound, w_bound)
                           or winograd.plan(x_shape[1], x_bound, w_bound))
            if transformed.path != "int64":
                return transformed
    return GemmPlan(base.path, base.chunk, f"im2col; {base.reason}", algorithm="im2col")


def conv(x, w, *, strides=None, pads=None, dilations=None, group: int = 1,
         x_bound: int | None = None, w_bound: int | None = None, path: str = "fast",
         requantize: Requantize | None = None, x_range: tuple[int, int] | None = None,
         out: np.ndarray | None = None, pool: dict | None = None) -> np.ndarray:
    """ONNX Conv on integers: x (N, C, *spatial), w (OC, C/group, *kernel) -> int64 (N, OC, *out). x is an integer
    array; int16 (a replay's narrow tensor, replays.py) reaches the fused kernels as it is, whose compiled loops and
    float conversions widen each value as they read it.

    pads in ONNX order [begin..., end...]; x_bound / w_bound are proven max |value| (computed from
    the data when None); x_range is x's (min, max) when the caller has it (the limb path needs it).
    path: "fast" or "reference"; both give the same bits. With `requantize` the
    result is the requantized activations instead of the accumulator, its bias per output channel
    (fused into the float product when its bound allows: epilogue.Requantize). `out`: an int64 array of the
    result's shape, contiguous past its first axis (window.fits_result; e.g. a channel slice of a Concat's
    output), that the paths with an epilogue write into: the result is then `out`, else a new array.
    `pool`: a 2-D MaxPool on the result (its kernel_shape, strides, pads, dilations, ceil_mode: a Conv + MaxPool
    node, compiler/fuse.py), the same integers as pooling.max_pool of it. The fused im2col product is pooled
    before its epilogue instead, since the epilogue's rounding is monotone: the window's largest value rounds to
    the window's largest result, and only the pooled values are rounded and written."""
    if pool is None:
        return _convolve(x, w, strides, pads, dilations, group, x_bound, w_bound, path, requantize, x_range, out)
    request = _Pool(*pooling.pool_arguments(pool))
    result = _convolve(x, w, strides, pads, dilations, group, x_bound, w_bound, path, requantize, x_range, None,
                       request)
    return result if request.done else pooling.max_pool(result, request.kernel, **request.geometry)


class _Pool:
    """A MaxPool to apply to a convolution's result, and whether the kernel did (pooling its float product)."""

    def __init__(self, kernel: tuple, geometry: dict):
        self.kernel, self.geometry, self.done = kernel, geometry, False


def _convolve(x, w, strides, pads, dilations, group, x_bound, w_bound, path, requantize, x_range, out, pool=None):
    """conv without its MaxPool; `pool` (a _Pool) is offered to the fused im2col product, which sets pool.done
    when it pooled."""
    x = x if type(x) is np.ndarray and x.dtype == np.int16 else _as_int64(x)  # (int16: a replay's narrow tensor)
    w_values = w.values if isinstance(w, Prepared) else _as_int64(w)
    if x_bound is None:
        x_bound = _max_abs(x)
    if w_bound is None:
        w_bound = w.bound if isinstance(w, Prepared) else _max_abs(w_values)
    if path not in ("fast", "reference"):
        raise ValueError(f"conv: unknown path {path!r}; use 'fast' or 'reference'")
    plan, geometry = _planned(x.shape, w, w_values, group, x_bound, w_bound, strides, pads, dilations)
    pads, out_shape = geometry[1], geometry[3]
    if requantize is None or not window.fits_result(out, (x.shape[0], w_values.shape[0]) + tuple(out_shape)):
        out = None
    if x.size == 0 or w_values.size == 0:  # an empty batch or channel set: nothing to sum
        acc = np.zeros((x.shape[0], w_values.shape[0]) + tuple(out_shape), dtype=np.int64)
        return acc if requantize is None else requantize.apply(acc, 1)
    K = math.prod(w_values.shape[1:])
    if (path == "fast" and group == 1 and x.ndim in (3, 4) and isinstance(w, Prepared)
            and (requantize is None or requantize.fits_int64(K * x_bound * w_bound))):
        on_limbs = _conv_limbs(x, w, K, x_range, geometry, requantize, out, plan.path)
        if on_limbs is not None:
            return on_limbs
    fused = None if path != "fast" else _fused_kernel(x.shape, w, w_values, plan, geometry, group,
                                                       (x_bound, w_bound), requantize)
    if fused is not None:
        return fused(x, out, pool)
    acc = _accumulate(x, w, w_values, group, plan, (x_bound, w_bound), geometry, path)
    return acc if requantize is None else requantize.apply(acc, 1)


def _accumulate(x, w, w_values, group, plan, bounds, geometry, path):
    x = _as_int64(x)  # (these paths do int64 arithmetic on x: a narrow tensor widens here)
    if path == "reference" or plan.path == "int64":
        return _conv_reference(x, w_values, group, *geometry)
    if plan.algorithm in WINOGRAD:
        weight = w if isinstance(w, Prepared) else w_values
        return winograd.conv3x3(x, weight, plan, bounds, geometry[1], geometry[3])
    dtype = np.float64 if plan.path == "float64" else np.float32
    w_float = w.as_float(dtype) if isinstance(w, Prepared) else w_values.astype(dtype)
    OC, kernel = w_values.shape[0], w_values.shape[2:]
    if plan.algorithm == "depthwise":
        return depthwise.conv(x, w_float.reshape(x.shape[1], OC // group, -1), kernel, group, dtype, *geometry)
    return _conv_im2col(x, w_float.reshape(group, OC // group, -1), kernel, group, plan, dtype, *geometry)


def _planned(x_shape, w, w_values, group, x_bound, w_bound, strides, pads, dilations):
    """(plan, (strides, pads, dilations, out_shape)) of a call on an input of x_shape: checked and planned once per
    input shape and bounds for a Prepared weight (a layer runs with the same geometry every time)."""
    key = None
    if isinstance(w, Prepared):
        key = ("conv", x_shape, group, x_bound, w_bound, _key(strides), _key(pads), _key(dilations))
        known = w.cache.get(key)
        if known is not None:
            return known
    _check_shapes(x_shape, w_values.shape, group)
    rank = len(x_shape) - 2
    strides, pads, dilations = window.normalize(rank, strides, pads, dilations)
    out_shape = window.output_shape(x_shape[2:], w_values.shape[2:], strides, pads, dilations)
    plan = plan_conv(x_shape, w_values.shape, group, x_bound, w_bound,
                     strides=strides, pads=pads, dilations=dilations)
    result = (plan, (strides, pads, dilations, out_shape))
    if key is not None and len(w.cache) < 64:
        w.cache[key] = result
    return result


def _key(values):
    return None if values is None else tuple(values)


def _check_shapes(x_shape, w_shape, group):
    if len(x_shape) < 3 or len(w_shape) != len(x_shape):
        raise ValueError(f"conv: x must be (N, C, *spatial) and w (OC, C/group, *kernel), got {tuple(x_shape)}, "
                         f"{tuple(w_shape)}")
    if group < 1 or x_shape[1] % group or w_shape[0] % group or w_shape[1] * group != x_shape[1]:
        raise ValueError(f"conv: {x_shape[1]} input / {w_shape[0]} output channels do not split into "
                         f"{group} groups with weight {tuple(w_shape)}")


COLUMN_BAND_BYTES = 320 << 10  # columns of a batch past this go in bands of images (_im2col_in_bands): on digits_cnn's
# second conv, bands of 160 / 320 / 640 KiB took 1.26 / 1.18 / 1.21 ms, one product 1.58
NARROW_COLUMNS = 100  # up to this many positions (N * L) the product runs as columns^T @ weights^T
SMALL_COLUMNS = 1 << 16  # 2-D columns up to this many entries, any at stride 1, and any of a kernel up to 3x3 at
# stride 2 are gathered by one compiled loop (loops.im2col); numpy's per-tap strided copies are faster for large
# gathers of wide kernels at stride 2 or more (a 7x7 stride-2 stem on 224x224: 0.54 ms against 0.64)


def _conv_im2col(x, weights, kernel, group, plan, dtype, strides, pads, dilations, out_shape, requantize=None,
                 out=None, pool=None):
    """Columns (C * kernel taps, N * positions): the whole batch is one BLAS product per group (a batch
    of small per-image products runs far slower), written back to (N, OC, *out).

    weights: (group, OC/group, K) in `dtype`. With `requantize` (a fused epilogue, epilogue.Requantize)
    the product is finished into the int64 activations instead of converted to the accumulator: float64
    weights are then Requantize.doubled, (group, OC/group, K + 1), against a row of ones in the columns;
    float32 products are widened onto the bias in float64 as they are finished (epilogue.float_product)."""
    N, C = x.shape[:2]
    rank = x.ndim - 2
    OC = weights.shape[0] * weights.shape[1]
    Cg = C // group
    K = Cg * window.kernel_size(kernel)
    L = math.prod(out_shape)
    extra = 1 if requantize is not None and dtype == np.float64 else 0
    images = max(1, COLUMN_BAND_BYTES // ((K + extra) * L * np.dtype(dtype).itemsize))
    if (images < N and rank == 2 and group == 1 and requantize is not None and plan.chunk >= K
            and all(s == 1 for s in strides)):
        return _im2col_in_bands(x, weights[0], kernel, dilations, pads, out_shape, requantize, images, out)
    buffer = window.scratch("conv_cols", (group, K + extra, N * L), dtype)
    if extra:
        buffer[:, K] = 1.0
    by_channel = (1, 0) + tuple(range(2, rank + 2))  # (C, N, *spatial)
    if _compiled_gather(rank, kernel, strides, K * N * L):
        loops.im2col(x, tuple(kernel), tuple(strides), tuple(dilations), tuple(pads[:2]), tuple(out_shape), buffer)
    elif window.kernel_size(kernel) == 1 and all(s == 1 for s in strides) and not any(pads):
        cols = buffer[:, :K].reshape((group, Cg, N) + x.shape[2:])  # 1x1 stride 1: the input is the matrix
        cols[...] = x.transpose(by_channel).reshape(cols.shape)
    else:
        xp = window.padded(x, pads[:rank], pads[rank:], 0, dtype, workspace="conv_padded").transpose(by_channel)
        xp = xp.reshape((group, Cg) + xp.shape[1:])
        cols = buffer[:, :K].reshape((group, Cg) + tuple(kernel) + (N,) + tuple(out_shape))
        lead = (slice(None), slice(None))
        for offset, slices in window.taps(kernel, out_shape, strides, dilations):
            cols[lead + offset] = xp[lead + (slice(None),) + slices]
    out_channels = (group, OC // group, N * L)
    out = window.result_array(out, (N, OC) + tuple(out_shape))
    if requantize is not None:
        return _finished_columns(buffer, weights, requantize, plan.chunk, N, out_shape, out, pool)
    if plan.chunk >= K:
        activations = np.matmul(weights, buffer, out=window.scratch("conv_product", out_channels, dtype))
    else:
        activations = exact_gemm.matmul_chunked(weights, buffer, K, plan.chunk, b_k_axis=1)
    by_group = out.reshape(N, group, OC // group, L).transpose(1, 2, 0, 3)  # (group, OC/group, N, L) view
    np.copyto(by_group, activations.reshape(group, OC // group, N, L), casting="unsafe")
    return out


def _compiled_gather(rank: int, kernel, strides, entries: int) -> bool:
    """Whether _conv_im2col gathers its columns (`entries` of them) in one compiled loop (loops.im2col)."""
    return rank == 2 and (all(s == 1 for s in strides) or entries <= SMALL_COLUMNS
                          or (all(s <= 2 for s in strides) and all(k <= 3 for k in kernel)))


def _finished_columns(buffer, weights, requantize, chunk: int, N: int, out_shape, out, pool=None) -> np.ndarray:
    """The fused product of gathered columns `buffer` (group, K [+ 1], N * L) by `weights` (group, OC/group, K [+ 1]),
    finished into `out` (N, OC, *out_shape) - or, for a 2-D `pool` the product can take first, into a new array of
    the pooled shape (pool.done set)."""
    group, OC, L = weights.shape[0], weights.shape[0] * weights.shape[1], math.prod(out_shape)
    if group == 1 and N * L <= NARROW_COLUMNS:  # BLAS runs a weight-bound product faster this way round
        product, doubled = _fused_product(buffer[0].T, weights[0].T, requantize, chunk)
        rows, channels, target = product.reshape(N, L, OC), (OC,), out.reshape(N, OC, L).transpose(0, 2, 1)
    else:
        product, doubled = _fused_product(weights, buffer, requantize, chunk)
        if pool is not None and doubled and len(out_shape) == 2:  # (its planes: (OC, N) of the output's (OH, OW))
            return _pooled_then_finished(product.reshape((OC, N) + tuple(out_shape)), requantize, pool)
        rows, channels, target = product.reshape(OC, N, L), (OC, 1, 1), out.reshape(N, OC, L).transpose(1, 0, 2)
    requantize.finish(rows, doubled, 0.0 if doubled else requantize.offset(channels), out=target)
    return out


def _fused_kernel(x_shape: tuple, w, w_values, plan: GemmPlan, geometry: tuple, group: int, bounds: tuple,
                  requantize: Requantize | None):
    """The fast path's kernel with the epilogue for an input of x_shape, as a function of (x, out, pool) (`out`: where
    the kernel can write its result; `pool`: a _Pool the direct loop or the fused float64 im2col product may take);
    None where the fast path has none and sums an accumulator instead (no epilogue, or one too wide for every
    kernel). Shapes, bounds and the epilogue decide it: _convolve asks it on every call, bind_conv once."""
    if requantize is None:
        return None
    pads, out_shape = geometry[1], geometry[3]
    K, OC, kernel = math.prod(w_values.shape[1:]), w_values.shape[0], tuple(w_values.shape[2:])
    bound = K * bounds[0] * bounds[1]
    fusable = requantize.fusable(bound)
    if _direct(x_shape, w, plan, geometry, bound, requantize):
        return _direct_kernel(tuple(x_shape), w, group, geometry, requantize, bound)
    if plan.algorithm in WINOGRAD:
        weight = w if isinstance(w, Prepared) else w_values
        return lambda x, out, pool: winograd.conv3x3(x, weight, plan, bounds, pads, out_shape, requantize, out)
    if plan.algorithm == "depthwise" and len(x_shape) in (3, 4) and (fusable or requantize.fits_int64(bound)):
        weight = w if fusable else w_values
        return lambda x, out, pool: depthwise.conv_compiled(x, weight, requantize, fusable, *geometry, out=out)
    if not fusable:
        return None
    if plan.path == "float64" and plan.algorithm == "depthwise":
        weights = requantize.doubled(w, (x_shape[1], OC // group, K))
        return lambda x, out, pool: depthwise.conv(x, weights, kernel, group, np.float64, *geometry,
                                                    finish=requantize.finish)
    if plan.path == "float64" or (plan.path == "float32" and plan.algorithm == "im2col"):
        return _im2col_kernel(tuple(x_shape), w, w_values, plan, geometry, group, requantize)
    return None  # (float32 depthwise: unfused)


def _direct(x_shape: tuple, w, plan: GemmPlan, geometry: tuple, acc_bound: int, requantize) -> bool:
    """Whether the convolution runs in direct.py's one compiled call (which takes a fused 2-D MaxPool too)."""
    image = math.prod(geometry[3]) * math.prod(w.shape[1:]) * w.shape[0]
    work = x_shape[0] * image
    batch = plan.algorithm == "im2col" and image < direct.CONV_MAX_WORK  # (im2col-planned: a batch of small images)
    limit = direct.CONV_BATCH_MAX_WORK if batch else direct.CONV_MAX_WORK
    return (plan.algorithm in ("im2col",) + WINOGRAD and len(x_shape) in (3, 4) and isinstance(w, Prepared)
            and direct.applies(work, limit, acc_bound, requantize))


def _direct_kernel(x_shape: tuple, w: Prepared, group: int, geometry: tuple, requantize: Requantize, acc_bound: int):
    """direct.conv_kernel as a function of (x, out, pool): a 2-D MaxPool asked (a _Pool) is taken in its loop."""
    small = direct.conv_kernel(x_shape, w, group, geometry, requantize, acc_bound)

    def kernel(x: np.ndarray, out: np.ndarray | None, pool: _Pool | None) -> np.ndarray:
        windows = pool and pooling.max_pool_geometry((x_shape[0], w.shape[0]) + tuple(geometry[3]), pool.kernel,
                                                     **pool.geometry)
        if not windows:  # (none asked, or one max_pool refuses: it says why, after)
            return small(x, out)
        pool.done = True
        return direct.conv_kernel(x_shape, w, group, geometry, requantize, acc_bound, windows)(x, None)

    return kernel


def bind_conv(x_shape: tuple, w: Prepared, strides, pads, dilations, group: int, x_bound: int,
              requantize: Requantize, pool: dict | None = None):
    """conv(x, w, ..., x_bound=x_bound, requantize=requantize, pool=pool) on the fast path for every x of shape
    x_shape with |x| <= x_bound, as a function of (x, out=None) with conv's choices that shapes decide made once (the
    interpreter's replays: a small layer's run is then mostly its product); the limb path, which x's range decides,
    is still asked at each call where it may take the product. `out`, as conv's (int64 or int16, the result's shape:
    window.fits_result), is where the kernel writes the result when it can; the result is then `out`, else a new
    int64 array. The function's `result_shape` is its result's (None where a MaxPool's geometry is refused: its call
    says why). None where the choice is not a fused kernel."""
    if requantize is None or not math.prod(x_shape) or not w.values.size:
        return None
    plan, geometry = _planned(tuple(x_shape), w, w.values, group, x_bound, w.bound, strides, pads, dilations)
    fused = _fused_kernel(tuple(x_shape), w, w.values, plan, geometry, group, (x_bound, w.bound), requantize)
    if fused is None:
        return None
    out_shape = geometry[3]
    K, OC, taps = math.prod(w.shape[1:]), w.shape[0], math.prod(w.shape[2:])
    on_limbs = (group == 1 and len(x_shape) in (3, 4) and requantize.fits_int64(K * x_bound * w.bound)
                and limbs.may_take(K, w.values, x_shape[0] * math.prod(out_shape) * K * OC,
                                   x_shape[0] * math.prod(out_shape), taps, plan.path))
    pooling_arguments = None if pool is None else pooling.pool_arguments(pool)
    result_shape = (x_shape[0], OC) + tuple(out_shape)
    windows = pooling_arguments and pooling.max_pool_geometry(result_shape, pooling_arguments[0],
                                                               **pooling_arguments[1])
    if not on_limbs and windows and _direct(x_shape, w, plan, geometry, K * x_bound * w.bound, requantize):
        kernel = direct.conv_kernel(tuple(x_shape), w, group, geometry, requantize, K * x_bound * w.bound,
                                    windows)  # (the direct loop, pooling its own output)
    elif not on_limbs and pool is None:
        def kernel(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
            return fused(x, out, None)
    else:
        kernel = _convolved_then_pooled(fused, w, K, geometry, requantize, plan.path if on_limbs else None,
                                        pooling_arguments, result_shape)
    kernel.result_shape = result_shape if pool is None else (windows and result_shape[:2] + tuple(windows[4]))
    return kernel


def _convolved_then_pooled(fused, w: Prepared, K: int, geometry: tuple, requantize: Requantize, limb_float_path,
                           pooling_arguments, result_shape: tuple):
    """bind_conv's kernel (x, out=None) where the limb path may take the product (limb_float_path: the float path it
    would replace; None where it never does) or a MaxPool follows outside the kernel (pooling_arguments)."""
    pooled = pooling_arguments and pooling.bind_max_pool(result_shape, pooling_arguments[0], **pooling_arguments[1])

    def convolved(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        request = None if pooling_arguments is None else _Pool(*pooling_arguments)
        into = None if request else out  # (`out` has the pooled shape, not the convolution's)
        result = None
        if limb_float_path is not None:
            result = _conv_limbs(x, w, K, None, geometry, requantize, into, limb_float_path)
        if result is None:
            result = fused(x, into, request)
        if request is None or request.done:
            return result
        return pooled(result, out) if pooled else pooling.max_pool(result, request.kernel, **request.geometry)

    return convolved


def _im2col_kernel(x_shape: tuple, w, w_values, plan: GemmPlan, geometry: tuple, group: int, requantize: Requantize):
    """_conv_im2col with a fused epilogue for inputs of x_shape, as a function of (x, out, pool): where one compiled
    loop gathers the columns in one band, that loop, the product and its finish with nothing asked again; else
    _conv_im2col itself, its weights prepared (float64: doubled, against a row of ones; float32: as they are)."""
    strides, pads, dilations, out_shape = geometry
    N, kernel, OC = x_shape[0], tuple(w_values.shape[2:]), w_values.shape[0]
    K, L = math.prod(w_values.shape[1:]), math.prod(out_shape)
    extra = 1 if plan.path == "float64" else 0
    dtype = np.float64 if extra else np.float32
    if extra:
        weights = requantize.doubled(w, (group, OC // group, K))
    else:
        weights = (w.as_float(np.float32) if isinstance(w, Prepared) else w_values.astype(np.float32))
        weights = weights.reshape(group, OC // group, K)
    if (group != 1 or not _compiled_gather(len(x_shape) - 2, kernel, strides, K * N * L)
            or N * (K + extra) * L * np.dtype(dtype).itemsize > COLUMN_BAND_BYTES):  # (bands: _im2col_in_bands)
        return lambda x, out, pool: _conv_im2col(x, weights, kernel, group, plan, dtype, *geometry,
                                                 requantize=requantize, out=out, pool=pool)
    gather = (kernel, tuple(strides), tuple(dilations), tuple(pads[:2]), tuple(out_shape))

    def gathered(x: np.ndarray, out: np.ndarray | None, pool: _Pool | None) -> np.ndarray:
        columns = window.scratch("conv_cols", (1, K + extra, N * L), dtype)
        if extra:
            columns[:, K] = 1.0
        loops.im2col(x, *gather, columns)
        out = window.result_array(out, (N, OC) + tuple(out_shape))
        return _finished_columns(columns, weights, requantize, plan.chunk, N, out_shape, out, pool)

    return gathered


def _pooled_then_finished(product, requantize, pool: _Pool) -> np.ndarray:
    """A fused product's planes (OC, N, OH, OW) max-pooled, then finished into int64 (N, OC, *pooled): the epilogue's
    rounding is non-decreasing (Requantize.finish: a correction that moves values at or below a threshold down
    by one, a clip, a round-to-nearest), and one bias per plane, so the largest product of a window rounds to
    its largest result."""
    pooled = pooling.max_pool_floats(product, pool.kernel, **pool.geometry)
    OC, N = pooled.shape[:2]
    result = np.empty((N, OC) + pooled.shape[2:], dtype=np.int64)
    requantize.finish(pooled.reshape(OC, N, -1), True, out=result.reshape(N, OC, -1).transpose(1, 0, 2))
    pool.done = True
    return result


def _im2col_in_bands(x, weights, kernel, dilations, pads, out_shape, requantize, images, out=None):
    """A fused stride-1 2-D convolution of a batch whose columns pass COLUMN_BAND_BYTES, `images` at a time:
    each band is gathered, multiplied and finished while its columns are still in the L2 cache (digits_cnn's
    second convolution at batch 256, 9.4 MB of columns: 1.58 ms in one product, 1.18 in bands of 8 images).
    The same products and epilogue as _conv_im2col's, band by band. weights: (OC, K [+ 1]), as there. (A fused
    MaxPool runs after it: pooling each band's product cost more in per-band calls than it saved.)"""
    N = x.shape[0]
    OC, depth = weights.shape
    K = x.shape[1] * window.kernel_size(kernel)
    L = math.prod(out_shape)
    doubled = weights.dtype == np.float64
    correct, threshold, low, high, magic, unit = requantize.rounding(doubled)
    offset = np.zeros((OC, 1, 1)) if doubled else requantize.offset((OC, 1, 1))
    out = window.result_array(out, (N, OC) + tuple(out_shape))
    geometry = (tuple(kernel), (1, 1), tuple(dilations), tuple(pads[:2]), tuple(out_shape))
    for first in range(0, N, images):
        band = min(images, N - first)
        if first == 0 or band < images:  # (the last band's buffers are shaped to it: contiguous operands)
            columns = window.scratch("conv_cols", (depth, band * L), weights.dtype)
            columns[K:] = 1.0  # (the row of ones against the bias, float64 only)
            product = window.scratch("conv_product", (OC, band, L), weights.dtype)
            offsets = np.broadcast_to(offset, product.shape)
        loops.im2col(x[first:first + band], *geometry, columns[None])
        np.matmul(weights, columns, out=product.reshape(OC, band * L))
        loops.finish(product, offsets, correct, threshold, low, high, magic, unit,
                     out[first:first + band].reshape(band, OC, L), True)
    return out


def _fused_product(a, b, requantize, chunk):
    """(product, doubled) of a fused epilogue: float64 operands are the doubled weights and the columns
    with their ones (one product in scratch space), float32 ones the exact product to add offset() to
    (epilogue.float_product)."""
    if a.dtype == np.float32:
        return float_product(a, b, chunk), False
    return np.matmul(a, b, out=exact_gemm.product_buffer(a, b, "conv_product")), True


def _conv_limbs(x, w: Prepared, K: int, x_range, geometry, requantize, out=None, float_path: str = "float64"):
    """The limb path (limbs.conv2d) when this machine takes it and K pays for it against the `float_path` it would
    replace, else None. A 1-D convolution runs as 2-D with a unit height (into a new array)."""
    strides, pads, dilations, out_shape = geometry
    columns = x.shape[0] * math.prod(out_shape)
    plan = limbs.planned(w, "conv", lambda: limbs.conv_matrix(w.values), K, x, x_range, columns * K * w.shape[0],
                         columns=columns, taps=math.prod(w.shape[2:]),
                         float_path=float_path,
                         channels_first=limbs.pointwise(w.shape[2:], strides, x.shape[2:], out_shape))
    if plan is None:
        return None
    kernel = tuple(w.shape[2:])
    if x.ndim == 3:
        planar = limbs.conv2d(x[:, :, None, :], (1,) + kernel, *plan, (1,) + tuple(strides), (0, pads[0]),
                              (1,) + tuple(dilations), (1,) + tuple(out_shape), requantize)
        return planar[:, :, 0]
    return limbs.conv2d(x, kernel, *plan, strides, pads, dilations, out_shape, requantize, out)


def _conv_reference(x, w, group, strides, pads, dilations, out_shape):
    """The definition, in int64: for every kernel offset, add w[o, c, offset] * x[n, c, shifted]."""
    N, C = x.shape[:2]
    rank = x.ndim - 2
    OC, Cg = w.shape[:2]
    xp = window.padded(x, pads[:rank], pads[rank:], 0, np.int64)
    x_groups = xp.reshape((N, group, Cg) + xp.shape[2:])
    w_groups = w.reshape((group, OC // group, Cg) + w.shape[2:])
    out = np.zeros((N, group, OC // group) + tuple(out_shape), dtype=np.int64)
    lead = (slice(None),) * 3
    for offset in window.offsets(w.shape[2:]):
        patch = x_groups[lead + window.window_slices(offset, out_shape, strides, dilations)]
        out += np.einsum("goc,ngc...->ngo...", w_groups[lead + offset], patch)
    return out.reshape((N, OC) + tuple(out_shape))
