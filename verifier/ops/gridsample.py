import itertools

import numpy as np

from verifier.fixedpoint import requantize, round_half_even, round_shift
from verifier.ops import CompileContext, Lowering

ACC_BITS = 61  # |value| * prod(weights) summed over 2**dims taps stays below 2**62


class GridSample:
    """y[n, c, o] = X[n, c] sampled at grid[n, o] (normalised coordinates in [-1, 1], the last axis in reverse
    dim order), 2-D or 3-D, modes nearest / linear (bilinear) with padding zeros, border or reflection and
    align_corners as the ONNX reference (onnx.reference op_grid_sample), all in integers: with the grid at
    frac fg, the pixel coordinate is exact at F = fg + 1 - (align_corners: x = (g + 1) (d - 1) / 2, else
    ((g + 1) d - 1) / 2); nearest rounds it half to even; outside the border it is clamped (border) or
    reflected (reflection, exact integer folding); linear takes floor(x) and x - floor(x) as the two taps'
    weights (exact, at F; F is lowered by a rounding when 3-D would pass int64); taps outside the input give
    0 (zeros), the edge (border) or their reflection; y = requantize(sum of value * weights, fx + dims * F,
    fy), fy = min(calibrated, fx). Error: 0.5 output step (nearest: exact). Cubic is refused."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        x, grid = ctx.inputs[0], ctx.inputs[1]
        if x.frac is None or grid.frac is None:
            ctx.unsupported("needs fixed-point (float) input and grid")
        mode = ctx.attr("mode", "linear" if ctx.opset >= 20 else "bilinear")
        mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
        padding = ctx.attr("padding_mode", "zeros")
        if mode not in ("linear", "nearest") or padding not in ("zeros", "border", "reflection"):
            ctx.unsupported(f"mode {mode!r} / padding_mode {padding!r} (cubic is not supported)")
        rank = len(x.shape) if x.shape is not None else 4
        if rank not in (4, 5):
            ctx.unsupported("only 2-D and 3-D sampling")
        dims = rank - 2
        frac = min(grid.frac + 1, (ACC_BITS - 15 - dims) // dims)
        out_frac = x.frac if mode == "nearest" else min(ctx.out_frac(), x.frac)
        attrs = {"mode": mode, "padding": padding, "align": int(ctx.attr("align_corners", 0)),
                 "grid_frac": grid.frac, "frac": frac, "in_frac": x.frac, "out_frac": out_frac}
        return Lowering(out_fracs=[out_frac], attrs=attrs)

    @staticmethod
    def run(inputs, attrs, consts):
        x, grid = inputs
        dims = x.ndim - 2
        if grid.ndim != dims + 2 or grid.shape[0] != x.shape[0] or grid.shape[-1] != dims:
            raise ValueError(f"GridSample: grid of shape {grid.shape} for an input of shape {x.shape}")
        frac = attrs["frac"]
        coords = [_pixel(grid[..., dims - 1 - k], x.shape[2 + k], attrs) for k in range(dims)]  # at 2**-frac
        batch = np.arange(x.shape[0]).reshape((-1,) + (1,) * (grid.ndim - 2))
        if attrs["mode"] == "nearest":
            taps = [_fetch_index(rounded >> frac, size, attrs) for rounded, size in zip(coords, x.shape[2:])]
            return [_gather(x, batch, taps)]
        acc = 0
        for corner in itertools.product((0, 1), repeat=dims):
            taps, weight = [], 1
            for side, coord, size in zip(corner, coords, x.shape[2:]):
                low = coord >> frac
                part = coord - (low << frac)
                taps.append(_fetch_index(low + side, size, attrs))
                weight = weight * (part if side else (1 << frac) - part)
            acc = acc + _gather(x, batch, taps) * np.expand_dims(weight, 1)
        return [requantize(acc, attrs["in_frac"] + dims * frac, attrs["out_frac"])]


def _pixel(g: np.ndarray, size: int, attrs: dict) -> np.ndarray:
    """The pixel coordinate of normalised g (at grid_frac) at 2**-frac: exact at grid_frac + 1, then the
    nearest rounding, the border clamp or the reflection."""
    exact_frac, one = attrs["grid_frac"] + 1, 1 << attrs["grid_frac"]
    scaled = (g + one) * (size - 1) if attrs["align"] else (g + one) * size - one  # at exact_frac
    coord = round_shift(scaled, exact_frac - attrs["frac"])
    frac = attrs["frac"]
    half = 1 << (frac - 1)
    if attrs["mode"] == "nearest":
        coord = round_half_even(coord, 1 << frac) << frac
    low, high = (0, (size - 1) << frac) if attrs["align"] else (-half, (size << frac) - half)
    if attrs["padding"] == "border":
        return np.where((coord < low) | (coord > high), np.clip(coord, 0, (size - 1) << frac), coord)
    if attrs["padding"] == "reflection":
        return _reflect(coord, low, high)
    return coord


def _reflect(v: np.ndarray, low: int, high: int) -> np.ndarray:
    """v folded into [low, high] by reflections at the nearer border (the reference's _gs_reflect), exactly."""
    span = high - low
    if span <= 0:
        return np.full_like(v, low)
    below, above = low - v, v - high
    folds_below, rest_below = below // span, below % span
    folds_above, rest_above = above // span, above % span
    from_below = np.where(folds_below % 2 == 0, low + rest_below, high - rest_below)
    from_above = np.where(folds_above % 2 == 0, high - rest_above, low + rest_above)
    return np.where(v < low, from_below, np.where(v > high, from_above, v))


def _fetch_index(index: np.ndarray, size: int, attrs: dict) -> np.ndarray:
    """Where a tap reads: its index, the clamped one (border), the reflected one (reflection, about the
    same borders as the coordinates, truncated toward zero), or -1 for a zero (zeros)."""
    if attrs["padding"] == "zeros":
        return np.where((index < 0) | (index >= size), -1, index)
    if attrs["padding"] == "border":
        return np.clip(index, 0, size - 1)
    if attrs["align"]:
        return _reflect(index, 0, size - 1)
    folded = _reflect(2 * index, -1, 2 * size - 1)  # (in half units: the borders are -0.5 and size - 0.5)
    return np.where(folded < 0, -((-folded) // 2), folded // 2)


def _gather(x: np.ndarray, batch: np.ndarray, taps: list) -> np.ndarray:
    """x[n, :, taps...] as (N, C, *grid dims), 0 where a tap is -1."""
    values = x[(batch, slice(None)) + tuple(np.maximum(t, 0) for t in taps)]  # (N, *grid dims, C)
    inside = np.logical_and.reduce([t >= 0 for t in taps])
    return np.where(np.expand_dims(inside, 1), np.moveaxis(values, -1, 1), 0)
