"""Chains of direct GEMMs (verifier/replays.py _chained, kernels/direct.py chain_kernel, loops.gemm_chain): a replay
runs consecutive Dense layers - each layer's one output the next one's operand alone - as one compiled call, their
requantized integers kept in float between links. The chain gives the bits of the links one after another, of the
metered loop and of the reference path, at 16- and 8-bit products, and forms only where no other reader or output
needs the tensors between its links."""

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from verifier import InferenceSession, Program, compile_model, interpreter
from verifier.feeds import integer_feeds
from verifier import fixedpoint
from verifier.fixedpoint import qmax
from verifier.interpreter import execute
from verifier.kernels import direct, limbs
from verifier.replays import Chain

Q15 = qmax(16)


def dense_stack(widths: list[int], style: str = "gemm", relu: tuple | None = None, bias: bool = True,
                outputs: tuple = (), reread: int | None = None, seed: int = 0) -> onnx.ModelProto:
    """x (B, widths[0]) through Dense layers of the given widths: Gemm (transB = 1, as torch exports a Linear on 2-D
    inputs) or MatMul + Add (a Linear on 3-D inputs: x is (B, 3, widths[0])); Relu after every layer but the last
    unless `relu` says per layer. `outputs`: layer indices whose result is also a program output; `reread`: a layer
    whose result is added to the next layer's (a second reader)."""
    rng = np.random.default_rng(seed)
    relu = relu if relu is not None else tuple(i < len(widths) - 2 for i in range(len(widths) - 1))
    nodes, initializers, names = [], [], ["x"]
    for layer, (k, n) in enumerate(zip(widths, widths[1:])):
        weight = (rng.standard_normal((n, k) if style == "gemm" else (k, n)) / np.sqrt(k)).astype(np.float32)
        initializers.append(numpy_helper.from_array(weight, f"w{layer}"))
        inputs = [names[-1], f"w{layer}"]
        if bias:
            initializers.append(numpy_helper.from_array(rng.standard_normal(n).astype(np.float32) * 0.1, f"b{layer}"))
        out = f"h{layer}"
        if style == "gemm":
            nodes.append(helper.make_node("Gemm", inputs + ([f"b{layer}"] if bias else []), [out], transB=1))
        else:
            nodes.append(helper.make_node("MatMul", inputs, [out + "_mm" if bias else out]))
            if bias:
                nodes.append(helper.make_node("Add", [out + "_mm", f"b{layer}"], [out]))
        if reread is not None and layer == reread + 1:
            nodes.append(helper.make_node("Add", [out, f"h{reread}"], [out + "_sum"]))
            out += "_sum"
        if relu[layer]:
            nodes.append(helper.make_node("Relu", [out], [out + "_relu"]))
            out += "_relu"
        names.append(out)
    shape = ["B", widths[0]] if style == "gemm" else ["B", 3, widths[0]]
    out_shape = shape[:-1] + [widths[-1]]
    graph_outputs = [helper.make_tensor_value_info(names[-1], TensorProto.FLOAT, out_shape)]
    graph_outputs += [helper.make_tensor_value_info(names[i + 1], TensorProto.FLOAT, shape[:-1] + [widths[i + 1]])
                      for i in outputs]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              graph_outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def chains(program: Program, feeds: dict) -> list[tuple[str, ...]]:
    """The node names of each chain the fast path's replay of these feeds runs (after a first, metered run)."""
    execute(program, feeds)
    replay = interpreter._shape_values(program, feeds).replay
    execute(program, feeds)
    steps = replay.bound[("fast", limbs.setting())][0]
    return [tuple(node.name for node in step[0].nodes) for step in steps if isinstance(step[0], Chain)]


def assert_bits_agree(program: Program, x: np.ndarray) -> None:
    """The replay (chained), the metered loop and the reference path give the same bits on x, x's edges and x
    reversed: each output at its committed width."""
    peak = np.max(np.abs(x))
    edges = np.where(x > 0, peak, -peak).astype(np.float32)  # (every value at the range's end)
    for values in (x, edges, x[::-1].copy(), x * 0.01):
        feeds = integer_feeds(program, {"x": values})
        metered = execute(Program.from_bytes(program.to_bytes()), feeds, replay=False)
        replayed = [execute(program, feeds) for _ in range(2)]
        reference = InferenceSession(Program.from_bytes(program.to_bytes()), path="reference").run_fixed({"x": values})
        for name, expected in metered.items():
            for got in (replayed[0][name], replayed[1][name], reference.outputs[name]):
                assert got.dtype == expected.dtype and np.array_equal(got, expected), name


def _calibration(widths, style, seed=1, batch=64):
    shape = (batch, widths[0]) if style == "gemm" else (batch, 3, widths[0])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("matmul_bits", [16, 8])
@pytest.mark.parametrize("style", ["gemm", "matmul"])
@pytest.mark.parametrize("widths", [[64, 64, 32, 10], [9, 5], [7, 33, 1, 12, 4]])
def test_a_dense_stack_runs_as_one_chain_with_the_metered_and_reference_bits(widths, style, matmul_bits):
    model = dense_stack(widths, style)
    x = _calibration(widths, style)
    program = compile_model(model, calibration={"x": x}, matmul_bits=matmul_bits)
    layers = [node.name for node in program.nodes if node.op in ("Gemm", "MatMul")]
    assert len(layers) == len(widths) - 1
    found = chains(program, integer_feeds(program, {"x": x}))
    if matmul_bits == 16 or len(layers) == 1:
        assert found == ([tuple(layers)] if len(layers) > 1 else [])
    else:  # (an 8-bit layer whose epilogue shifts left - its output scale finer than its sums' - takes another
        # kernel, and ends a chain; so does a bias Add the compiler leaves unfused at 8 bits)
        assert all(chain == tuple(layers[layers.index(chain[0]):][:len(chain)]) for chain in found)
        assert found or style == "matmul"
    assert_bits_agree(program, x)


def test_a_chain_agrees_with_onnxruntime_as_its_layers_do():
    from verifier_helpers import ort_run

    model = dense_stack([20, 30, 30, 6], "gemm")
    x = _calibration([20], "gemm", batch=200)
    program = compile_model(model, calibration={"x": x})
    assert len(chains(program, integer_feeds(program, {"x": x}))) == 1
    ours = InferenceSession(program).run(None, {"x": x})[0]
    theirs = ort_run(model, {"x": x})[0]
    assert np.max(np.abs(ours - theirs)) <= 2e-3 * float(np.max(np.abs(theirs)))


def test_a_layer_without_relu_or_bias_chains_too():
    model = dense_stack([16, 16, 16, 8], "gemm", relu=(False, True, False), bias=False)
    x = _calibration([16], "gemm")
    program = compile_model(model, calibration={"x": x})
    assert len(chains(program, integer_feeds(program, {"x": x}))[0]) == 3
    assert_bits_agree(program, x)


def test_a_result_that_is_also_a_program_output_ends_the_chain():
    model = dense_stack([16, 24, 24, 12, 4], "gemm", outputs=(1,))  # (h1, after the second layer)
    x = _calibration([16], "gemm")
    program = compile_model(model, calibration={"x": x})
    layers = [node.name for node in program.nodes if node.op == "Gemm"]
    assert chains(program, integer_feeds(program, {"x": x})) == [tuple(layers[:2]), tuple(layers[2:])]
    assert_bits_agree(program, x)


def test_a_result_read_by_a_second_node_ends_the_chain():
    model = dense_stack([16, 24, 24, 24, 4], "gemm", reread=1)  # (h1 is also added to h2)
    x = _calibration([16], "gemm")
    program = compile_model(model, calibration={"x": x})
    layers = [node.name for node in program.nodes if node.op == "Gemm"]
    found = chains(program, integer_feeds(program, {"x": x}))
    assert all(not (layers[1] in chain and layers[2] in chain) for chain in found)
    assert tuple(layers[:2]) in found
    assert_bits_agree(program, x)


def test_the_bench_mlp_chains_its_three_layers_with_the_reference_bits(digits_models, digits):
    x = digits[0][:256]
    program = compile_model(digits_models["mlp_torchscript"], calibration={"input": x})
    feeds = integer_feeds(program, {"input": x})
    assert [len(chain) for chain in chains(program, feeds)] == [3]
    fast = InferenceSession(program).run_fixed({"input": x})
    reference = InferenceSession(Program.from_bytes(program.to_bytes()), path="reference").run_fixed({"input": x})
    assert fast.commitment == reference.commitment


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 9), st.integers(1, 4), st.sampled_from([np.float64, np.float32]))
def test_chain_kernel_equals_its_links_one_after_another(seed, rows, length, dtype):
    """Random links - widths, epilogues with shifts of 0 to 40, Relu or not, narrowings or not - at the edges of the
    range: chain_kernel's integers are the link kernels' applied in turn (each narrowing as loops.narrow)."""
    rng = np.random.default_rng(seed)
    float32 = dtype is np.float32
    widths = [int(w) for w in rng.integers(1, 12, length + 1)]
    links = []
    for k, n in zip(widths, widths[1:]):
        bound = 127 if float32 else Q15
        weights = rng.integers(-bound, bound + 1, (k, n))
        weights[0, :] = bound
        shift = int(rng.integers(0, 41))
        relu = bool(rng.integers(0, 2))
        narrowing = (int(rng.integers(1, 12)), 127) if float32 or rng.integers(0, 2) else (0, 0)
        links.append(direct.Link(weights.astype(dtype), rng.integers(-(1 << 40), 1 << 40, n),
                                 (shift, 0 if relu else -Q15, Q15, not relu), (rows,), narrowing=narrowing))
    links[0] = direct.Link(links[0].weights, links[0].bias, links[0].epilogue, (rows,), narrowing=(0, 0))
    a = rng.integers(-(127 if float32 else Q15), (127 if float32 else Q15) + 1, (rows, widths[0]))
    a[0] = -(127 if float32 else Q15)
    expected = a
    for index, link in enumerate(links):  # (the numpy forms: int64 products, fixedpoint's rounding)
        if index and link.narrowing != (0, 0):
            expected = fixedpoint.requantize(expected, link.narrowing[0], 0, 8)
        shift, low, high, _ = link.epilogue
        sums = expected @ link.weights.astype(np.int64) + link.bias
        expected = np.clip(fixedpoint.round_shift(sums, shift), low, high)
    assert all(before.feeds(after) for before, after in zip(links, links[1:]))
    assert np.array_equal(direct.chain_kernel(links)(a), expected)


def test_links_of_other_rows_types_or_widths_do_not_feed_each_other():
    weights = np.ones((4, 3))
    link = direct.Link(weights, np.zeros(3, np.int64), (0, -Q15, Q15, True), (5,), narrowing=(0, 0))
    assert link.feeds(direct.Link(np.ones((3, 2)), np.zeros(2, np.int64), (0, -Q15, Q15, True), (5,),
                                  narrowing=(0, 0)))
    others = [direct.Link(np.ones((3, 2)), np.zeros(2, np.int64), (0, -Q15, Q15, True), (6,), narrowing=(0, 0)),
              direct.Link(np.ones((3, 2), np.float32), np.zeros(2, np.int64), (0, -Q15, Q15, True), (5,),
                          narrowing=(0, 0)),
              direct.Link(np.ones((4, 2)), np.zeros(2, np.int64), (0, -Q15, Q15, True), (5,), narrowing=(0, 0)),
              direct.Link(np.ones((3, 2)), np.zeros(2, np.int64), (0, -Q15, Q15, True), (5,), narrowing=None)]
    assert not any(link.feeds(other) for other in others)
    wide = direct.Link(weights, np.zeros(3, np.int64), (0, -(1 << 20), 1 << 20, True), (5,), narrowing=(0, 0))
    assert not wide.feeds(direct.Link(np.ones((3, 2)), np.zeros(2, np.int64), (0, -Q15, Q15, True), (5,),
                                      narrowing=(0, 0)))
