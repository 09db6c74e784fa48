"""Sliding-window geometry shared by convolution and pooling (ONNX semantics)."""

import functools
import itertools
import threading
from math import prod

import numpy as np


def normalize(spatial_rank: int, strides, pads, dilations):
    """Default and validate strides / pads ([begin..., end...]) / dilations for `spatial_rank` dims."""
    strides = tuple(int(s) for s in (strides if strides is not None else (1,) * spatial_rank))
    dilations = tuple(int(d) for d in (dilations if dilations is not None else (1,) * spatial_rank))
    pads = tuple(int(p) for p in (pads if pads is not None else (0,) * (2 * spatial_rank)))
    if len(strides) != spatial_rank or len(dilations) != spatial_rank or len(pads) != 2 * spatial_rank:
        raise ValueError(
            f"expected {spatial_rank} strides/dilations and {2 * spatial_rank} pads, "
            f"got strides={strides}, dilations={dilations}, pads={pads}"
        )
    if min(strides) < 1 or min(dilations) < 1 or min(pads, default=0) < 0:
        raise ValueError(f"strides and dilations must be >= 1 and pads >= 0: {strides}, {dilations}, {pads}")
    return strides, pads, dilations


def output_shape(in_shape, kernel, strides, pads, dilations, ceil_mode=False):
    """ONNX output spatial shape. With ceil_mode a last window that would start inside the end
    padding is dropped (onnxruntime and PyTorch rule)."""
    rank = len(in_shape)
    out = []
    for i in range(rank):
        span = dilations[i] * (kernel[i] - 1) + 1
        room = in_shape[i] + pads[i] + pads[i + rank] - span
        if room < 0:
            raise ValueError(f"kernel extent {span} exceeds padded input {in_shape[i] + pads[i] + pads[i + rank]}")
        n = (-(-room // strides[i]) if ceil_mode else room // strides[i]) + 1
        if ceil_mode and (n - 1) * strides[i] >= in_shape[i] + pads[i]:
            n -= 1
        out.append(n)
    return tuple(out)


def padded(x: np.ndarray, pads_begin, pads_end, fill, dtype, workspace: str | None = None) -> np.ndarray:
    """x (N, C, *spatial) in `dtype`, padded on the spatial axes with `fill` (in the named scratch
    buffer when `workspace` is given: valid until the next use of that name on this thread)."""
    lead, spatial = x.shape[:2], x.shape[2:]
    if not any(pads_begin) and not any(pads_end):
        if workspace is None or x.dtype == dtype:
            return x.astype(dtype, copy=False)
        out = scratch(workspace, x.shape, dtype)
        out[...] = x
        return out
    shape = lead + tuple(s + b + e for s, b, e in zip(spatial, pads_begin, pads_end))
    if workspace is None:
        out = np.full(shape, fill, dtype=dtype)
    else:
        out = scratch(workspace, shape, dtype)
        out.fill(fill)
    out[(slice(None), slice(None)) + tuple(slice(b, b + s) for b, s in zip(pads_begin, spatial))] = x
    return out


def offsets(kernel):
    """Every kernel offset (k_1, ..., k_n), in C order."""
    return itertools.product(*(range(k) for k in kernel))


def window_slices(offset, out_shape, strides, dilations):
    """Spatial slices of the padded input that kernel `offset` sees across all output positions."""
    return tuple(
        slice(k * d, k * d + s * (o - 1) + 1, s) for k, o, s, d in zip(offset, out_shape, strides, dilations)
    )


@functools.lru_cache(maxsize=1024)
def _taps(kernel: tuple, out_shape: tuple, strides: tuple, dilations: tuple) -> tuple:
    return tuple((offset, window_slices(offset, out_shape, strides, dilations)) for offset in offsets(kernel))


def taps(kernel, out_shape, strides, dilations) -> tuple:
    """(offset, window_slices(offset, ...)) for every kernel offset, in C order; cached per geometry
    (a layer asks for the same ones on every run)."""
    key = (tuple(int(k) for k in kernel), tuple(int(o) for o in out_shape), tuple(strides), tuple(dilations))
    if prod(key[0]) > 1024:  # a (hostile) huge window: not worth keeping
        return _taps.__wrapped__(*key)
    return _taps(*key)


def kernel_size(kernel) -> int:
    return prod(kernel)


_workspace = threading.local()


ALIGNMENT = 64  # bytes: a cache line, and an AVX-512 vector. glibc's large blocks start 16 bytes past a page, and
# vector loads across two cache lines cost: digits_cnn's banded conv took 1.10 ms on such columns, 0.90 aligned


def scratch(name: str, shape, dtype) -> np.ndarray:
    """A reusable per-thread buffer for an intermediate (im2col columns, padded input): fresh
    allocations this large cost a page fault and a zeroing pass per page on every call. The contents
    are garbage; the caller overwrites every element it reads. Not for results handed back. Starts on
    an ALIGNMENT boundary. (The view of a shape asked for before is handed out again: a layer asks for the
    same ones on every run.)"""
    views = getattr(_workspace, "views", None)
    if views is None:
        views = _workspace.views = {}
        _workspace.buffers = {}
    key = (name, tuple(shape), dtype)
    view = views.get(key)
    if view is not None:
        return view
    dtype = np.dtype(dtype)
    need = prod(int(d) for d in shape) * dtype.itemsize
    buffer = _workspace.buffers.get(name)
    if buffer is None or buffer.nbytes < need:
        raw = np.empty(max(need, 1) + ALIGNMENT, dtype=np.uint8)
        start = -raw.ctypes.data % ALIGNMENT
        buffer = _workspace.buffers[name] = raw[start:start + max(need, 1)]
        for old in [k for k in views if k[0] == name]:  # (views of the old buffer would keep it alive)
            del views[old]
    if len(views) >= MAX_SCRATCH_VIEWS:
        views.clear()
    view = views[key] = buffer[:need].view(dtype).reshape(tuple(int(d) for d in shape))
    return view


MAX_SCRATCH_VIEWS = 512  # views kept per thread (shapes of one model's layers; past it, made again)


def scratch_bytes() -> int:
    """Bytes held by this thread's scratch buffers."""
    return sum(buffer.nbytes for buffer in getattr(_workspace, "buffers", {}).values())


def release_scratch() -> None:
    """Free this thread's scratch buffers (they otherwise stay for the next call of the same size)."""
    _workspace.buffers, _workspace.views = {}, {}


def result_array(out: np.ndarray | None, shape) -> np.ndarray:
    """A kernel's result of `shape`: the caller's `out` when given (checked by fits_result), else a new int64 array."""
    return np.empty(shape, dtype=np.int64) if out is None else out


RESULT_TYPES = (np.dtype(np.int64), np.dtype(np.int16))  # what a kernel's `out` may be


def loop_operand(x: np.ndarray) -> np.ndarray:
    """x as a compiled loop reads it: C-contiguous int64, or int16 as it is (a replay's narrow tensor, replays.py;
    the loops widen each value as they read it)."""
    return np.ascontiguousarray(x, dtype=np.int16 if x.dtype == np.int16 else np.int64)


def fits_result(out: np.ndarray | None, shape) -> bool:
    """Whether `out` can take a kernel's finished result of `shape` in place: int64, or int16 (a replay's narrow
    tensor: replays.py; the kernels write only their epilogue's saturated values into `out`, never an accumulator),
    that shape, and contiguous past its first axis (a channel slice of a larger tensor: the kernels reshape their
    results only across those axes, which is then always a view)."""
    if out is None or out.dtype not in RESULT_TYPES or out.shape != tuple(shape) or not out.flags.writeable:
        return False
    step = out.itemsize
    for axis in range(out.ndim - 1, 0, -1):
        if out.shape[axis] != 1 and out.strides[axis] != step:
            return False
        step *= out.shape[axis]
    return True
