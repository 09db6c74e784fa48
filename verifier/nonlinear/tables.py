"""Elementwise functions of a 16-bit activation as lookup tables (docs/fixed-point-nonlinear.md, "Tables").

Compile time: T[i] = round_half_away(f((lo + i) * 2**-in_frac) * 2**out_frac), saturated to 16 bits, for
every representable input. f is evaluated in float64; an entry whose scaled value lies within TIE_MARGIN of
a rounding boundary is re-evaluated with mpmath at 100 bits, so the table does not depend on the
platform's libm. NaN results (outside the function's domain) become 0, infinities saturate. Runs of equal
entries at both ends are trimmed: clipping the input to the kept range gives the same outputs.

Run time: y = T[clip(q, lo, lo + len(T) - 1) - lo]; integers only.

Functions are written once as `fn(x, m)` against a small math namespace `m`, so the same formula runs
on numpy arrays (NUMPY) and on mpmath scalars (MPMATH).
"""

from types import SimpleNamespace

import numpy as np

from verifier.fixedpoint import ACT_BITS, frac_for_range, qmax, quantize

TIE_MARGIN = 1e-6


def _erf_numpy(x):
    from scipy.special import erf

    return erf(x)


NUMPY = SimpleNamespace(
    exp=np.exp, log=np.log, log1p=np.log1p, expm1=np.expm1, tanh=np.tanh, sqrt=np.sqrt, erf=_erf_numpy,
    sin=np.sin, cos=np.cos, tan=np.tan, sinh=np.sinh, cosh=np.cosh, arcsin=np.arcsin, arccos=np.arccos,
    arctan=np.arctan, arcsinh=np.arcsinh, arccosh=np.arccosh, arctanh=np.arctanh,
    where=np.where, abs=np.abs, minimum=np.minimum, maximum=np.maximum, pi=np.pi,
)


def _mpmath_namespace():
    import mpmath

    return SimpleNamespace(
        exp=mpmath.exp, log=mpmath.log, log1p=mpmath.log1p, expm1=mpmath.expm1, tanh=mpmath.tanh,
        sqrt=mpmath.sqrt, erf=mpmath.erf, sin=mpmath.sin, cos=mpmath.cos, tan=mpmath.tan, sinh=mpmath.sinh,
        cosh=mpmath.cosh, arcsin=mpmath.asin, arccos=mpmath.acos, arctan=mpmath.atan, arcsinh=mpmath.asinh,
        arccosh=mpmath.acosh, arctanh=mpmath.atanh, where=lambda c, a, b: a if c else b, abs=abs,
        minimum=min, maximum=max, pi=mpmath.pi,
    )


def sigmoid(x, m):
    return 1 / (1 + m.exp(-x))


def tanh(x, m):
    return m.tanh(x)


def input_grid(in_frac: int, bits: int = ACT_BITS) -> tuple[np.ndarray, np.ndarray]:
    """Every representable input: the integers q and their real values q * 2**-in_frac."""
    q = np.arange(-qmax(bits), qmax(bits) + 1, dtype=np.int64)
    return q, q.astype(np.float64) * 2.0**-in_frac


def evaluate(fn, in_frac: int, bits: int = ACT_BITS) -> np.ndarray:
    """f over every representable input, in float64 (compile time)."""
    _, x = input_grid(in_frac, bits)
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(fn(x, NUMPY), dtype=np.float64), x.shape).copy()


def choose_out_frac(fn, in_frac: int, calibrated: float | None, bits: int = ACT_BITS) -> int:
    """Output frac: from the largest finite |f| over the representable inputs, tightened to the calibrated
    output range when that is smaller (values beyond it saturate)."""
    y = np.abs(evaluate(fn, in_frac, bits))
    finite = y[np.isfinite(y)]
    bound = float(finite.max()) if finite.size else 0.0
    if calibrated is not None and np.isfinite(calibrated) and 0.0 < calibrated < bound:
        bound = float(calibrated)
    return frac_for_range(bound, bits)


def build_table(fn, in_frac: int, out_frac: int, bits: int = ACT_BITS) -> tuple[int, np.ndarray]:
    """(lo, T): the correctly rounded table of fn, tails trimmed, stored as int16 (int32 above 16 bits)."""
    q, _ = input_grid(in_frac, bits)
    y = evaluate(fn, in_frac, bits)
    limit = qmax(bits)
    y = np.where(np.isnan(y), 0.0, np.clip(y, -2.0 * limit * 2.0**-out_frac, 2.0 * limit * 2.0**-out_frac))
    table = quantize(y, out_frac, bits)
    scaled = np.abs(y) * 2.0**out_frac
    near_tie = np.abs(scaled - np.floor(scaled) - 0.5) < TIE_MARGIN
    for i in np.nonzero(near_tie & (scaled < limit + 1))[0]:
        table[i] = _exact_entry(fn, int(q[i]), in_frac, out_frac, limit)
    first, last = _trim(table)
    dtype = np.int16 if bits <= 16 else np.int32
    return int(q[first]), table[first : last + 1].astype(dtype)


def apply_table(x: np.ndarray, lo: int, table: np.ndarray) -> np.ndarray:
    """Run time: T[clip(x, lo, lo + len(T) - 1) - lo] as int64."""
    index = np.clip(np.asarray(x, dtype=np.int64), lo, lo + len(table) - 1) - lo
    return np.take(table, index).astype(np.int64)


def _exact_entry(fn, q: int, in_frac: int, out_frac: int, limit: int) -> int:
    import mpmath

    with mpmath.workprec(100):
        m = _mpmath_namespace()
        value = fn(mpmath.mpf(q) * mpmath.mpf(2) ** -in_frac, m) * mpmath.mpf(2) ** out_frac
        if not mpmath.isfinite(value):
            return 0 if mpmath.isnan(value) else (limit if value > 0 else -limit)
        magnitude = int(mpmath.floor(abs(value) + mpmath.mpf(0.5)))
        return max(-limit, min(limit, -magnitude if value < 0 else magnitude))


def _trim(table: np.ndarray) -> tuple[int, int]:
    """First and last index to keep: constant runs at either end shrink to one entry."""
    changes = np.nonzero(np.diff(table))[0]
    if changes.size == 0:
        return 0, 0
    return int(changes[0]), int(changes[-1] + 1)
