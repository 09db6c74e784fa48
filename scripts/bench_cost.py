"""The griefing guard, measured: adversarial programs for each cost class, their units per second and the
seconds a program at the protocol maximum (verifier.cost.MAX_COST) would take on this machine.

    .venv/bin/python scripts/bench_cost.py [--budget-s 1.5] [--ops Relu,Sigmoid] [--full CLASS]

Each case compiles a one-op ONNX model, replicates its compiled nodes into a chain and runs the chain
with the worker's interpreter (single-threaded, the cost metered exactly as execute_job meters it):
  tiny   MAX_NODES nodes (or as many as the budget allows) on a 1-element tensor: per-node overhead;
  huge   a chain of nodes on a tensor of MAX_LIVE_ELEMENTS / 8 elements: per-element work;
  gemm   MatMul / Conv / ConvTranspose at sizes where BLAS runs, on the fast float path and (with weights
         too wide for an exact float chunk) on the int64 loops; Einsum on its int64 loops.
"s at MAX" is the largest such program the limits allow (MAX_COST units, or MAX_NODES nodes of that
kind when those cost less) divided by the measured units per second: a class that runs slower than the
cost model assumes shows up as a large number here. The guard holds while the worst class stays well inside the
default commit window (docs/worker.md section 4) with a 4x margin. --full 'OP tiny|huge' runs one element-wise
case at the full limit instead of extrapolating (minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_verifier import _cpu_model  # noqa: E402

# op -> (class of verifier.cost, as documented; the printed one is read from verifier.cost), builder: a
# builder gives (inputs, attrs, initializers) for x of a shape
ELEMENTWISE = {
    "Relu": ("ARITH", lambda shape: (["x"], {}, [])),
    "Add": ("ARITH", lambda shape: (["x", "x"], {}, [])),
    "Mul": ("ARITH", lambda shape: (["x", "x"], {}, [])),
    "Max": ("ARITH", lambda shape: (["x", "x"], {}, [])),
    "Clip": ("ARITH", lambda shape: (["x", "lo", "hi"], {}, [("lo", np.float32(-1.0)), ("hi", np.float32(1.0))])),
    "ReduceSum": ("ARITH", lambda shape: (["x"], {"keepdims": 1}, [])),
    "ReduceSumSquare": ("ARITH", lambda shape: (["x"], {"keepdims": 1}, [])),
    "CumSum": ("NONLINEAR", lambda shape: (["x", "axis"], {}, [("axis", np.array(-1, np.int64))])),
    "ReduceL2": ("NONLINEAR", lambda shape: (["x"], {"axes": [-1], "keepdims": 1}, [])),
    "MaxPool": ("ARITH", lambda shape: (["x"], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, [])),
    "AveragePool": ("NONLINEAR", lambda shape: (["x"], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, [])),
    "Transpose": ("MOVE", lambda shape: (["x"], {"perm": list(range(len(shape)))[::-1]}, [])),
    "Concat": ("MOVE", lambda shape: (["x"], {"axis": 0}, [])),
    "Reshape": ("MOVE", lambda shape: (["x", "shape"], {}, [("shape", np.array([-1, shape[-1]], np.int64))])),
    "Sigmoid": ("NONLINEAR", lambda shape: (["x"], {}, [])),
    "Tanh": ("NONLINEAR", lambda shape: (["x"], {}, [])),
    "Exp": ("NONLINEAR", lambda shape: (["x"], {}, [])),
    "Erf": ("NONLINEAR", lambda shape: (["x"], {}, [])),
    "Softmax": ("NONLINEAR", lambda shape: (["x"], {"axis": -1}, [])),
    "Sqrt": ("NONLINEAR", lambda shape: (["x"], {}, [])),
    "Div": ("NONLINEAR", lambda shape: (["x", "x"], {}, [])),
    "LayerNormalization": ("NONLINEAR", lambda shape: (
        ["x", "gamma"], {"axis": -1}, [("gamma", np.ones(shape[-1:], np.float32))])),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=1.5, help="seconds of run per case (extrapolated)")
    parser.add_argument("--ops", default=None, help="comma-separated subset of the element-wise ops")
    parser.add_argument("--full", default=None, help="run one case (e.g. 'Sigmoid huge') at the full MAX_COST")
    args = parser.parse_args()

    from verifier import cost

    print(f"CPU: {_cpu_model()}; numpy {np.__version__}; single-threaded; "
          f"MAX_COST 2^{cost.MAX_COST.bit_length() - 1} units, NODE_BASE {cost.NODE_BASE}, "
          f"MAX_NODES {cost.MAX_NODES}, MAX_ELEMENTS {cost.MAX_ELEMENTS}, MAX_LIVE_ELEMENTS {cost.MAX_LIVE_ELEMENTS}")
    print(f"{'case':34} {'weight':>7} {'units':>10} {'seconds':>8} {'ns/elem':>8} {'G units/s':>10} "
          f"{'s at MAX':>9}")
    ops = args.ops.split(",") if args.ops else list(ELEMENTWISE)
    worst = (0.0, "")
    for label, program, feeds, elements in _cases(ops, args.budget_s, args.full):
        row = _measure(label, program, feeds, elements, cost)
        worst = max(worst, (row, label))
    print(f"worst case: {worst[1]} at {worst[0]:.0f} s for MAX_COST on this machine; "
          f"x4 margin = {4 * worst[0]:.0f} s (default commit window 600 s)")


def _cases(ops, budget_s, full):
    from verifier import cost

    huge_shape = (cost.MAX_LIVE_ELEMENTS // 8 // 1024, 1024)
    for op in ops:
        _, build = ELEMENTWISE[op]
        klass = {cost.MOVE: "MOVE", cost.ARITH: "ARITH"}.get(cost.weight(op), "NONLINEAR")
        tiny_shape = (1, 1, 1, 1) if op in ("MaxPool", "AveragePool") else (1, 1)
        shape4 = (1, 1) + huge_shape if op in ("MaxPool", "AveragePool") else huge_shape
        for kind, shape in (("tiny", tiny_shape), ("huge", shape4)):
            label = f"{op} {kind} ({klass})"
            block = _compiled_block(op, build, shape)
            per_node = _units_of(block, shape)
            if full == f"{op} {kind}":
                count = min(cost.MAX_NODES, cost.MAX_COST // per_node)
            else:  # as many nodes as fit the time budget, from a first timed node
                count = max(1, min(cost.MAX_NODES, int(budget_s / max(_seconds_of(block, shape), 1e-7))))
            yield label, _chain(block, count, shape), _feeds(shape), int(np.prod(shape))
    yield from _gemm_cases(full)


def _gemm_cases(full):
    """MatMul on the float BLAS path and on the int64 loops (weights too wide for an exact float chunk),
    and a 3x3 Conv (Winograd) and a depthwise Conv."""
    from verifier.program import Program, ProgramNode, TensorInfo

    rng = np.random.default_rng(0)
    cases = [
        ("MatMul float64 512x1024x1024", (512, 1024), rng.integers(-32767, 32768, (1024, 1024)), 8),
        ("MatMul int64 (wide weights) 64x256x256", (64, 256), rng.integers(-2**35, 2**35, (256, 256)), 2),
        ("MatMul tiny 1x1x1", (1, 1), rng.integers(-32767, 32768, (1, 1)), 4096),
    ]
    for label, shape, weight, count in cases:
        nodes = []
        for i in range(count):
            nodes.append(ProgramNode("MatMul", f"n{i}", ["x", ""], [f"y{i}"], {"acc_frac": 20, "out_frac": 10,
                                     "path": "", "path_reason": ""}, {"k1": weight}, [10]))
        program = Program([TensorInfo("x", shape, "float32", 10)], [TensorInfo(f"y{count - 1}", (), "float32", 10)],
                          nodes)
        yield label, program, _feeds(shape), int(np.prod(shape))
    for label, x_shape, w_shape, group, count in (
            ("Conv 3x3 64->64 on 8x64x32x32", (8, 64, 32, 32), (64, 64, 3, 3), 1, 4),
            ("Conv depthwise 3x3 on 8x256x32x32", (8, 256, 32, 32), (256, 1, 3, 3), 256, 4),
            ("Conv im2col 7x7 s2 on 8x64x64x64", (8, 64, 64, 64), (64, 64, 7, 7), 1, 1),
            ("Conv tiny 1x1x3x3", (1, 1, 3, 3), (1, 1, 3, 3), 1, 4096)):
        weight = rng.integers(-32767, 32768, w_shape)
        nodes = [ProgramNode("Conv", f"n{i}", ["x" if i == 0 else f"y{i - 1}", ""], [f"y{i}"],
                             {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": group,
                              "acc_frac": 20, "out_frac": 10, "path": "", "path_reason": ""}, {"weight": weight}, [10])
                 for i in range(count)]
        if "7x7" in label:
            nodes[0].attrs.update(strides=[2, 2], pads=[3, 3, 3, 3])
        program = Program([TensorInfo("x", x_shape, "float32", 10)],
                          [TensorInfo(f"y{count - 1}", (), "float32", 10)], nodes)
        yield label, program, _feeds(x_shape), int(np.prod(x_shape))
    yield from _transposed_and_einsum_cases(rng)
    yield from _recurrent_cases()


def _transposed_and_einsum_cases(rng):
    """ConvTranspose (a stride-1 3x3 keeps the shape, so nodes chain) and Einsum on its int64 loops."""
    from verifier.program import Program, ProgramNode, TensorInfo

    for label, x_shape, count in (("ConvTranspose 3x3 64->64 on 8x64x32x32", (8, 64, 32, 32), 2),
                                  ("ConvTranspose tiny 1x1x3x3", (1, 1, 3, 3), 4096)):
        channels = x_shape[1]
        weight = rng.integers(-32767, 32768, (1, channels * 9, channels))
        attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "output_padding": [0, 0],
                 "kernel": [3, 3], "acc_frac": 20, "out_frac": 10, "path": "", "path_reason": ""}
        nodes = [ProgramNode("ConvTranspose", f"n{i}", ["x" if i == 0 else f"y{i - 1}", ""], [f"y{i}"], dict(attrs),
                             {"weight": weight}, [10]) for i in range(count)]
        program = Program([TensorInfo("x", x_shape, "float32", 10)], [TensorInfo(f"y{count - 1}", (), "float32", 10)],
                          nodes)
        yield label, program, _feeds(x_shape), int(np.prod(x_shape))
    for label, x_shape, count in (("Einsum bij,bjk->bik 16x128x128", (16, 128, 128), 2),
                                  ("Einsum tiny 1x1x1", (1, 1, 1), 4096)):
        nodes = [ProgramNode("Einsum", f"n{i}", [f"y{i - 1}" if i else "x"] * 2, [f"y{i}"],
                             {"equation": "bij,bjk->bik", "acc_frac": 20, "out_frac": 10}, {}, [10])
                 for i in range(count)]
        program = Program([TensorInfo("x", x_shape, "float32", 10)], [TensorInfo(f"y{count - 1}", (), "float32", 10)],
                          nodes)
        yield label, program, _feeds(x_shape), int(np.prod(x_shape))


def _compiled_block(op, build, shape):
    """The compiled nodes of a one-op model x -> y (a Program)."""
    from onnx import TensorProto, helper, numpy_helper

    from verifier import compile_model

    inputs, attrs, initializers = build(shape)
    node = helper.make_node(op, inputs, ["y"], **attrs)
    dims = [f"d{i}" for i in range(len(shape) - 1)] + [shape[-1]]  # symbolic but the last (LayerNorm's gamma)
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [f"o{i}" for i in range(len(shape))])],
                              [numpy_helper.from_array(np.asarray(v), name) for name, v in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    sample = (4,) + tuple(min(int(d), 8) for d in shape[1:-1]) + (shape[-1],)
    calibration = {"x": np.random.default_rng(0).normal(0, 2.0, sample).astype(np.float32)}
    return compile_model(model, calibration=calibration)


def _chain(block, count: int, shape):
    """`count` copies of the block's nodes, each copy reading the previous copy's output."""
    import copy

    from verifier.program import Program, TensorInfo

    nodes, previous = [], "x"
    for i in range(count):
        renamed = {"x": previous}
        for node in block.nodes:
            clone = copy.copy(node)
            clone.inputs = [renamed.get(n, f"{n}.{i}" if n and n not in block.constants else n) for n in node.inputs]
            clone.outputs = [f"{n}.{i}" for n in node.outputs]
            clone.name = f"{node.name}.{i}"
            renamed.update(zip(node.outputs, clone.outputs))
            nodes.append(clone)
        previous = renamed[block.outputs[0].name]
    return Program([TensorInfo("x", shape, "float32", block.inputs[0].frac)],
                   [TensorInfo(previous, (), "float32", block.outputs[0].frac)], nodes, dict(block.constants))


def _recurrent_cases():
    """LSTM and GRU over many steps of a one-unit state (per-step overhead) and over a wide state (products,
    gates): compiled from one-node models with random weights."""
    from onnx import TensorProto, helper, numpy_helper

    from verifier import compile_model

    rng = np.random.default_rng(0)
    for op, gates in (("LSTM", 4), ("GRU", 3)):
        for label, seq, batch, hidden in ((f"{op} 4096 steps of 1 unit", 4096, 1, 1),
                                          (f"{op} 32 steps, 64 x 256 units", 32, 64, 256)):
            weights = {"W": rng.standard_normal((1, gates * hidden, hidden)) * 0.1,
                       "R": rng.standard_normal((1, gates * hidden, hidden)) * 0.1}
            node = helper.make_node(op, ["x", "W", "R"], ["y"], hidden_size=hidden)
            graph = helper.make_graph([node], op, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, batch, hidden])],
                                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [seq, 1, batch, hidden])],
                                      [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
            calibration = {"x": rng.uniform(-1, 1, (seq, batch, hidden)).astype(np.float32)}
            program = compile_model(model, calibration=calibration)
            feeds = {"x": rng.integers(-20000, 20000, (seq, batch, hidden)).astype(np.int64)}
            yield label, program, feeds, seq * batch * hidden


def _feeds(shape):
    return {"x": np.random.default_rng(1).integers(-20000, 20000, shape).astype(np.int64)}


def _units_of(block, shape) -> int:
    from verifier.interpreter import execute

    stats: dict = {}
    execute(_chain(block, 1, shape), _feeds(shape), max_cost=1 << 62, stats=stats)
    return stats["units"]


def _seconds_of(block, shape) -> float:
    from verifier.interpreter import execute
    from verifier.kernels import single_threaded

    program, feeds = _chain(block, 1, shape), _feeds(shape)
    with single_threaded():
        execute(program, feeds, max_cost=1 << 62)
        started = time.perf_counter()
        execute(program, feeds, max_cost=1 << 62)
    return time.perf_counter() - started


def _measure(label, program, feeds, elements, cost) -> float:
    from verifier.interpreter import execute
    from verifier.kernels import single_threaded

    stats: dict = {}
    with single_threaded():
        execute(program, feeds, max_cost=1 << 62)  # warm-up: plans, prepared weights, scratch buffers
        started = time.perf_counter()
        execute(program, feeds, max_cost=1 << 62, stats=stats)
        seconds = time.perf_counter() - started
    rate = stats["units"] / seconds
    # the largest program of this kind the limits allow: MAX_COST, or MAX_NODES such nodes if that is less
    at_max = min(cost.MAX_COST, cost.MAX_NODES * stats["units"] // stats["nodes"]) / rate
    op = program.nodes[0].op
    ns = seconds / (stats["nodes"] * elements) * 1e9
    print(f"{label:34} {cost.weight(op):7d} {stats['units']:10.3g} {seconds:8.3f} {ns:8.2f} {rate / 1e9:10.2f} "
          f"{at_max:9.1f}", flush=True)
    return at_max


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
