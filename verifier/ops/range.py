import numpy as np

from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering
from verifier.ops._align import aligned, lower_aligned


class Range:
    """y = start + i * delta for i < n, n = max(ceil((limit - start) / delta), 0) (ONNX). Plain integers:
    exact. Fixed-point: start, limit and delta moved exactly to the common frac c = max of their fracs
    (constants quantized at c), n from those integers in exact integer arithmetic, and
    y = requantize(S + i * D, c, fy) at the output's calibrated frac fy. delta = 0 is a run error; the
    output's size comes from the values and is metered before anything is allocated."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        return lower_aligned(ctx, [0, 1, 2])

    @staticmethod
    def run(inputs, attrs, consts):
        start, limit, delta = _scalars(inputs, attrs, consts)
        values = start + np.arange(_count(start, limit, delta), dtype=np.int64) * delta
        if attrs.get("integer"):
            return [values]
        return [requantize(values, attrs["common"], attrs["out_frac"])]

    @staticmethod
    def output_size(inputs, attrs, consts):
        return _count(*_scalars(inputs, attrs, consts))


def _scalars(inputs, attrs, consts) -> tuple[int, int, int]:
    values = []
    for index, name in enumerate(("start", "limit", "delta")):
        value = np.asarray(aligned(inputs, attrs, consts, index))
        if value.size != 1:
            raise ValueError(f"Range: {name} must be a single value, got shape {value.shape}")
        values.append(int(value.reshape(-1)[0]))
    return values[0], values[1], values[2]


def _count(start: int, limit: int, delta: int) -> int:
    if delta == 0:
        raise ValueError("Range: delta is 0")
    return max(-((start - limit) // delta), 0)  # ceil((limit - start) / delta), Python ints
