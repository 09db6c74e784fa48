"""compile_model: ONNX -> integer Program, one pass a file, run in this order:

    load.py       read (external data too), check, infer shapes; CastLike -> Cast
    functions.py  ops ONNX defines as functions (RMSNormalization, Attention, ...) -> their bodies
    fold.py       constant folding (incl. Shape subgraphs), Identity/Dropout aliases; an If on a constant
                  condition -> its branch, a Loop or Scan of known length -> its iterations (unroll.py)
    batchnorm.py  per-channel affine maps (BatchNormalization, Mul/Div/Add/Sub by a per-channel constant) folded
                  into the Conv, Gemm or BatchNormalization before them
    feature_scales.py  per-feature scales for inputs whose features differ widely in magnitude (tabular data)
    ranges.py     value ranges from calibration (or synthetic inputs) for scale selection
    fuse_tables.py  Log(Sigmoid(x)) -> one LogSigmoid table (one rounding instead of two)
    share_scales.py the inputs of a Concat produced at its scale (no rounding in the Concat)
    lower.py      each op's compile step -> Program
    fuse.py       a constant bias Add after a MatMul by a constant weight folded into the MatMul (torch's Linear
                  on 3-D input); Relu fused into the Conv/Gemm/MatMul/Add before it; a 2-D MaxPool into the Conv
                  before it
    committed.py  each output's committed width: int16 (int8) for outputs proven within 16 (8) bits; then the
                  bytes are frozen
"""

from __future__ import annotations

import numpy as np

from verifier.compiler.batchnorm import fold_batchnorm
from verifier.compiler.committed import commit_output_widths
from verifier.compiler.feature_scales import scale_input_features
from verifier.compiler.fold import fold_constants, refresh_shapes
from verifier.compiler.fuse import fuse_matmul_bias, fuse_max_pool, fuse_relu
from verifier.compiler.fuse_tables import fuse_tables
from verifier.compiler.load import load_model, to_graph
from verifier.compiler.lower import HINTS, lower
from verifier.compiler.ranges import value_ranges
from verifier.compiler.share_scales import share_concat_scales
from verifier.compiler.unroll import concat_sequences
from verifier.errors import CompileError, UnsupportedOpError
from verifier.fixedpoint import MATMUL_BITS
from verifier.program import Program


FOLD_ROUNDS = 4


def prepare_graph(model_or_path):
    """Passes 1-3: the float graph the program is lowered from."""
    graph = to_graph(load_model(model_or_path))
    for _ in range(FOLD_ROUNDS):  # shapes found after a fold (a Pad's folded pads) can let Shape nodes fold
        remaining = len(graph.nodes)
        graph = fold_constants(graph)
        concat_sequences(graph)
        refresh_shapes(graph)
        if len(graph.nodes) == remaining:
            break
    for node in graph.nodes:  # (refused before calibration, which cannot run their subgraphs' run-time values)
        if node.op_type in ("If", "Loop", "Scan"):
            raise UnsupportedOpError(node.op_type, node.name or node.output[0], graph.opset, HINTS[node.op_type])
    return fold_batchnorm(graph)


def compile_model(model_or_path, calibration: dict | None = None, matmul_bits: int = 16) -> Program:
    """Compile an ONNX model (path, bytes or ModelProto) to a fixed-point Program.

    `calibration`: input name -> array of representative inputs (batch on axis 0); it sets the scales.
    `matmul_bits`: operand width of every Conv, Gemm and MatMul product. 16 (the default) keeps weights and
    activations at 16 bits (float64 BLAS); 8 rounds both to 8 bits before the product, which float32 BLAS
    computes exactly at about twice the speed, at the accuracy of 8-bit quantization (docs/fixed-point.md).
    """
    if matmul_bits not in MATMUL_BITS:
        raise CompileError(f"matmul_bits must be one of {', '.join(map(str, MATMUL_BITS))}, got {matmul_bits!r}")
    if calibration is not None:
        calibration = {name: np.asarray(value) for name, value in dict(calibration).items()}
    graph = prepare_graph(model_or_path)
    calibration = scale_input_features(graph, calibration)
    ranges, input_ranges = value_ranges(graph, calibration)
    graph = fuse_tables(graph)
    ranges = share_concat_scales(graph, ranges)
    program = lower(graph, ranges, input_ranges, calibrated=calibration is not None, matmul_bits=matmul_bits)
    program = commit_output_widths(fuse_max_pool(fuse_relu(fuse_matmul_bias(program))))
    program.to_bytes()  # freeze now: a program that cannot serialize fails at compile time
    return program
