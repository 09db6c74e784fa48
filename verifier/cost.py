"""The deterministic cost of a run: the griefing guard (docs/fixed-point.md, "Cost").

A requester must not be able to make an honest worker run past the commit window, so every node is
charged, before it runs, a number of **units** computed from the program and the run-time shapes only
(never from timing, never from the machine), and a run whose total passes MAX_COST stops with the
cost-limit error outcome at the same node on every machine.

One unit is calibrated to take at most ~0.1 ns on the reference machine (scripts/bench_cost.py measures
every class at >= 10 G units/s, single-threaded, on a 2-core AMD EPYC), so MAX_COST = 2**39 units is at
most ~55 s there; with a 4x margin for slower hardware that is ~220 s, well inside the default 600 s
commit window. A node costs

    base(op)                                    (Python dispatch, planning, allocation of small tensors)
  + weight(op) * (work + largest output)        (work: the op's `cost`, default the elements it reads)

where weight(op) is the units per element of its class (WEIGHTS, calibrated from measurement with margin;
an op not listed gets the heaviest class) and GEMM/Conv/MatMul return their own units (MACs times the
weight of the exact path they take, see ops/conv.py, gemm.py, matmul.py). Memory is bounded by
MAX_ELEMENTS per tensor and MAX_LIVE_ELEMENTS for all tensors alive at once; MAX_NODES bounds the node
count. All checks use Python ints (no wrap-around).
"""

from __future__ import annotations

MAX_COST = 1 << 39  # units per job; <= ~55 s on the reference machine (docs/worker.md section 4)
MAX_NODES = 1 << 16  # nodes per program
MAX_ELEMENTS = 1 << 26  # elements of one tensor (512 MiB as int64), kernel scratch included
MAX_LIVE_ELEMENTS = 1 << 27  # elements of all run-time tensors alive at once (1 GiB as int64)

NODE_BASE = 1 << 19  # ~50 us of per-node overhead at 10 G units/s (measured: 2-40 us for listed ops)
HEAVY_NODE_BASE = 1 << 21  # ~200 us: ops not listed below (tables, normalizations: up to ~105 us measured)

# units per element, by class (scripts/bench_cost.py prints the measured ns/element behind each)
MOVE = 16  # copies and views: Reshape, Transpose, Concat, Slice, Gather, Cast, ...
ARITH = 32  # one or two integer passes: Relu, Add, Mul, Max, comparisons, max-pool windows, reductions
NONLINEAR = 1024  # tables, divisions, roots, normalizations: Sigmoid, Exp, Softmax, LayerNorm, Div,
# AveragePool (a rounding division per output: measured 12.5 G units/s as ARITH, the slowest class), ...
INT64_MAC = 64  # one multiply-add of a GEMM/conv on the int64 reference loops (operands too wide for BLAS)
FLOAT_MAC = 1  # one multiply-add of a GEMM/conv on an exact float BLAS path
COLUMN = 16  # one element of an im2col / depthwise column buffer (gathered once per product)

_MOVE_OPS = ("Identity Reshape Flatten Squeeze Unsqueeze Shape Transpose Concat Slice Gather Split Expand Tile "
             "Pad Cast Dropout ConstantOfShape ArrayFeatureExtractor DepthToSpace SpaceToDepth Size").split()
_ARITH_OPS = ("Relu Add Sub Mul Neg Abs Max Min Sum Mean Clip Sign Equal Greater GreaterOrEqual Less LessOrEqual "
              "And Or Xor Not Where IsNaN IsInf LeakyRelu PRelu ThresholdedRelu Shrink BatchNormalization "
              "MaxPool GlobalAveragePool GlobalMaxPool ReduceSum ReduceMax ReduceMin ReduceMean ReduceL1 "
              "ReduceSumSquare ArgMax ArgMin Hardmax Range OneHot").split()
# their `cost` is already in units (MACs by path, columns, passes)
_UNIT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "RNN", "GRU", "LSTM", "MatMulInteger",
             "ConvInteger", "QLinearMatMul", "QLinearConv")
WEIGHTS: dict[str, int] = {**{op: MOVE for op in _MOVE_OPS}, **{op: ARITH for op in _ARITH_OPS},
                           **{op: 1 for op in _UNIT_OPS}}


def base(op_type: str) -> int:
    """Units charged per node before any element: NODE_BASE for the listed (cheap-to-dispatch) ops,
    HEAVY_NODE_BASE for the rest (several integer passes even on a one-element tensor)."""
    return NODE_BASE if op_type in WEIGHTS else HEAVY_NODE_BASE


def weight(op_type: str) -> int:
    """Units per element of an op (the heaviest class for any op not listed: never under-charged)."""
    return WEIGHTS.get(op_type, NONLINEAR)


def mac_weight(path: str) -> int:
    """Units per multiply-add of an exact GEMM/conv plan path ("float32" | "float64" | "int64")."""
    return INT64_MAC if path == "int64" else FLOAT_MAC
