"""Shared by LayerNormalization and InstanceNormalization: the constant scale and bias of y = z * gamma + beta,
quantized for roots.layer_norm (docs/fixed-point-nonlinear.md, "Layer normalisation")."""

import numpy as np

from verifier.fixedpoint import frac_for_range, quantize
from verifier.nonlinear.roots import Z_FRAC

GAMMA_BITS = 20
BETA_LIMIT = 2.0**58


def gamma_frac_for(gamma: np.ndarray, beta: np.ndarray | None) -> int:
    """gamma's frac: its 20-bit scale, made coarser while beta at 2**-(24 + f_gamma) would pass 2**58."""
    gamma_frac = frac_for_range(float(np.max(np.abs(gamma))) if gamma.size else 0.0, GAMMA_BITS)
    while beta is not None and beta.size and float(np.max(np.abs(beta))) * 2.0 ** (Z_FRAC + gamma_frac) >= BETA_LIMIT:
        gamma_frac -= 1
    return gamma_frac


def quantize_gamma(gamma: np.ndarray, gamma_frac: int) -> np.ndarray:
    return quantize(gamma, gamma_frac, GAMMA_BITS)


def quantize_beta(beta: np.ndarray, gamma_frac: int) -> np.ndarray:
    return quantize(beta, Z_FRAC + gamma_frac, 63)
