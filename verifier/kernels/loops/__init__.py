"""Compiled loops (numba) for the passes numpy would make one at a time: each reads its input once and
writes its output once, where the same arithmetic in numpy costs a pass over memory per step.

Every loop computes exactly what the numpy form it replaces computes, in the same operations:
  - integers: int64 additions, shifts and comparisons, which no compiler may change;
  - floats: additions, comparisons, min / max and power-of-two scalings of exact values, each one IEEE
    operation, compiled without fast-math (numba's default), so LLVM may neither reassociate nor fuse
    them into FMAs; the results are the bits of the proofs in epilogue.py whatever the CPU or its SIMD width.
tests/verifier/test_loops.py checks each against its plain-Python body (NUMBA_DISABLE_JIT=1: no compiler)
and against the numpy form; the kernels' and ops' fast == reference tests cover them too.

Arrays arrive in a fixed rank (the callers' wrappers add unit axes) and any strides; compiled code is
cached next to these files (numba's cache), so a process pays the compilation once per machine. numba itself
(and LLVM, about 150 MiB of memory) is imported on the first call of a loop, so processes that never run a
program - the CLI, the gateway, the SDK - never load it.

The loops live in six modules, re-exported here: rows.py (elementwise and per-row passes: the epilogue's
finish, narrowing, sums, products, per-channel affine maps, feeds, LayerNorm, Softmax), windows.py (window gathers
and reductions: im2col, depthwise convolution, max and average pooling), winograd.py (the Winograd transforms,
F(2x2, 3x3) and F(4x4, 3x3)), direct.py (small GEMMs and 2-D convolutions with their epilogue), limbs.py (the
limb products' splitting and recombining, kernels/limbs.py) and powers.py (integer log2 / exp2, and LRN); _compile.py holds the lazy compilation.
"""

from verifier.kernels.loops.rows import (affine_requantize, finish, layer_norm, multiply_requantize, narrow,
                                         quantize, softmax, sum_requantize, value_range)
from verifier.kernels.loops.direct import conv_requantize, gemm_chain
from verifier.kernels.loops.powers import lrn
from verifier.kernels.loops.limbs import (limb_channels, limb_combine, limb_combine_rows, limb_gather, limb_planes,
                                          limb_rows)
from verifier.kernels.loops.windows import avg_pool, depthwise, depthwise_fused, im2col, max_pool
from verifier.kernels.loops.winograd import winograd4_input, winograd4_output, winograd_input, winograd_output

__all__ = ["affine_requantize", "avg_pool", "conv_requantize", "depthwise", "depthwise_fused", "finish", "gemm_chain", "im2col", "layer_norm", "limb_channels", "limb_combine", "limb_combine_rows", "limb_gather",
           "limb_planes", "limb_rows", "lrn", "max_pool", "multiply_requantize", "narrow", "quantize", "softmax", "sum_requantize",
           "value_range", "winograd4_input", "winograd4_output", "winograd_input", "winograd_output"]
