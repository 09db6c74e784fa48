"""Integer square root, division of two tensors, and layer normalisation (docs/fixed-point-nonlinear.md)."""

import numpy as np

from verifier.fixedpoint import (
    ACT_BITS, INT64_SAFE, bit_length, qmax, round_shift, round_shift_each, rounding_divide, saturate,
    with_sign_of,
)

Z_FRAC = 24  # fraction bits of the normalised value (x - mean) / std inside layer_norm
NEWTON_MAX_STEPS = 64


def isqrt(n: np.ndarray) -> np.ndarray:
    """floor(sqrt(n)) for int64 n >= 0 (negative n count as 0): Newton's iteration x <- (x + n // x) // 2
    from 2**ceil(bitlen(n) / 2), stopped when it no longer decreases."""
    n = np.maximum(np.asarray(n, dtype=np.int64), 0)
    positive = np.maximum(n, 1)  # keeps x >= 1; n == 0 is patched at the end
    x = np.left_shift(np.int64(1), (bit_length(positive) + 1) >> 1)
    for _ in range(NEWTON_MAX_STEPS):
        nxt = (x + positive // x) >> 1
        smaller = nxt < x
        if not np.any(smaller):
            break
        x = np.where(smaller, nxt, x)
    return np.where(n == 0, 0, x)


def sqrt_round(n: np.ndarray) -> np.ndarray:
    """sqrt(n) rounded to the nearest integer (no ties exist for integer n)."""
    n = np.maximum(np.asarray(n, dtype=np.int64), 0)
    r = isqrt(n)
    return r + (n - r * r > r)


def divide(a: np.ndarray, a_frac: int, b: np.ndarray, b_frac: int, out_frac: int, bits: int = ACT_BITS) -> np.ndarray:
    """a / b at 2**-out_frac, rounded half away from zero, saturated (numpy broadcasting).
    b == 0 gives +qmax, -qmax or 0 by the sign of a (the saturated infinities; 0/0 is 0)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    shift = out_frac - a_frac + b_frac
    numerator = round_shift(np.abs(a), -shift) if shift >= 0 else np.abs(a)
    denominator = np.abs(b) if shift >= 0 else round_shift(np.abs(b), shift)
    safe = np.where(denominator == 0, 1, denominator)
    magnitude = rounding_divide(numerator, safe)
    magnitude = np.where(denominator == 0, np.where(numerator == 0, 0, qmax(bits)), magnitude)
    return saturate(with_sign_of(a ^ b, magnitude), bits)  # (a ^ b < 0 exactly when the signs differ)


MAX_NORM_BITS = 16  # N < 2**16 keeps N * sum(x*x) and sum(x)**2 below 2**62


def inv_sqrt_bits(n: int) -> int:
    """K: 1/sqrt is carried as round(2**K / sqrt), K as large as lets c * inv stay below 2**61."""
    return min(61, 74 - int(n).bit_length())


def layer_norm_eps(eps: float, n: int, in_frac: int) -> int:
    """Compile time: eps in the units of V below, eps * N**2 * 2**(2 in_frac), rounded, capped at 2**61."""
    return int(min(np.floor(eps * float(n) ** 2 * 2.0 ** (2 * in_frac) + 0.5), float(1 << 61)))


def layer_norm(
    x: np.ndarray, n_axes: int, gamma: np.ndarray, gamma_frac: int, beta: np.ndarray, eps_q: int, out_frac: int,
    bits: int = ACT_BITS, stats_fracs: tuple[int, int, int] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalise over the last n_axes dims (N elements), then y = z * gamma + beta:
    S = sum(x); c = N*x - S and V = N*sum(x*x) - S*S (both exact: N*(x - mean) and N**2 * var);
    D = max(V + eps_q, 1); s even with D * 2**s in [2**60, 2**62); inv = round(2**K / sqrt_round(D * 2**s));
    z = round(c * inv / 2**(K - s/2 - 24))  (= c / sqrt(D) = (x - mean) / sqrt(var + eps) at 2**-24);
    y = round((z * gamma + beta) / 2**(24 + gamma_frac - out_frac)), saturated.
    gamma is int64 at 2**-gamma_frac, beta int64 at 2**-(24 + gamma_frac); both broadcast over the normalised dims.
    With stats_fracs = (in_frac, mean_frac, inv_std_frac) also returns the mean, rounding_divide(S * 2**(f_m - f_in), N)
    (the shift moves to N when negative), and 1/sqrt(var + eps) = N * 2**f_in * 2**(s/2) * inv / 2**K rounded to
    2**-inv_std_frac, both saturated and with the normalised dims kept as 1."""
    x = np.asarray(x, dtype=np.int64)
    axes = tuple(range(x.ndim - n_axes, x.ndim))
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    total = np.sum(x, axis=axes, keepdims=True)
    c = n * x - total
    v = n * np.sum(x * x, axis=axes, keepdims=True) - total * total
    d = np.maximum(np.minimum(v + np.int64(eps_q), INT64_SAFE), 1)
    s = (62 - bit_length(d)) & ~1
    k = inv_sqrt_bits(n)
    inv = rounding_divide(np.int64(1 << k), sqrt_round(d << s))
    z = round_shift_each(c * inv, k - (s >> 1) - Z_FRAC)
    y = round_shift(z * np.asarray(gamma, dtype=np.int64) + np.asarray(beta, dtype=np.int64), Z_FRAC + gamma_frac - out_frac)
    y = saturate(y, bits)
    if stats_fracs is None:
        return y
    in_frac, mean_frac, inv_frac = stats_fracs
    up = mean_frac - in_frac
    mean = rounding_divide(round_shift(total, -up), n) if up >= 0 else rounding_divide(total, n << -up)
    shift = k - (s >> 1) - in_frac - inv_frac
    inv_std = np.where(shift >= 0, round_shift_each(n * inv, np.clip(shift, 0, 62)), qmax(bits))
    return y, saturate(mean, bits), saturate(inv_std, bits)
