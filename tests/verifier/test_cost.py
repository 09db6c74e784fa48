"""The cost model (verifier/cost.py, docs/fixed-point.md "Cost"): a deterministic charge from the program
and the input shapes, limits on nodes and tensor sizes checked before anything is allocated, and the
cost-limit error outcome when a program passes them."""

import numpy as np
import pytest

from verifier import cost, execute_job
from verifier.encoding import decode_tensors, encode_tensors
from verifier.errors import CostLimitError, OutOfRangeError
from verifier.feeds import integer_feeds
from verifier.interpreter import execute
from verifier.job import ERROR_TENSOR
from verifier.program import Program, ProgramNode, TensorInfo


def _program(nodes, input_shape, output, frac=8):
    return Program([TensorInfo("x", input_shape, "float32", frac)], [TensorInfo(output, (), "float32", frac)], nodes)


def _relu_chain(count):
    return _program([ProgramNode("Relu", f"n{i}", ["x" if i == 0 else f"t{i - 1}"], [f"t{i}"], {}, {}, [8])
                     for i in range(count)], (1, 4), f"t{count - 1}")


def _units(program, feeds):
    stats = {}
    execute(program, feeds, stats=stats)
    return stats["units"]


def _error_code(outcome):
    return int(decode_tensors(outcome.output_bytes)[ERROR_TENSOR][0])


def test_cost_depends_on_shapes_not_on_values(example_program, example_inputs):
    feeds = integer_feeds(example_program, example_inputs)
    other = {name: np.zeros_like(value) for name, value in feeds.items()}
    assert _units(example_program, feeds) == _units(example_program, other)


def test_every_node_pays_at_least_its_base_cost():
    program = _relu_chain(10)
    assert _units(program, {"x": np.ones((1, 4), np.int64)}) >= 10 * cost.NODE_BASE


def test_ops_outside_the_cheap_classes_pay_the_heavy_base_and_weight():
    assert cost.base("SomeFutureOp") == cost.HEAVY_NODE_BASE and cost.weight("SomeFutureOp") == cost.NONLINEAR
    assert cost.weight("Relu") == cost.ARITH and cost.weight("Reshape") == cost.MOVE


def test_a_program_with_more_than_the_maximum_nodes_is_the_cost_error_outcome():
    program = _relu_chain(cost.MAX_NODES + 1)
    outcome = execute_job(program.to_bytes(), encode_tensors({"x": np.ones((1, 4), np.int64)}))
    assert not outcome.ok and _error_code(outcome) == 3 and "nodes" in outcome.error


def test_a_window_op_whose_padding_would_make_a_huge_tensor_stops_before_allocating():
    pool = ProgramNode("MaxPool", "pool", ["x"], ["y"], {"kernel_shape": [1, 1], "strides": [1, 1],
                       "dilations": [1, 1], "pads": [10**5, 10**5, 10**5, 10**5], "ceil_mode": 0}, {}, [8])
    program = _program([pool], (1, 1, 1, 1), "y")
    outcome = execute_job(program.to_bytes(), encode_tensors({"x": np.ones((1, 1, 1, 1), np.int64)}))
    assert _error_code(outcome) == 3 and "elements" in outcome.error


def test_tensors_alive_together_are_bounded(monkeypatch):
    import verifier.interpreter as interpreter

    nodes = [ProgramNode("Relu", f"n{i}", ["x"], [f"t{i}"], {}, {}, [8]) for i in range(4)]
    program = Program([TensorInfo("x", (10, 10), "float32", 8)],
                      [TensorInfo(f"t{i}", (), "float32", 8) for i in range(4)], nodes)
    feeds = {"x": np.ones((10, 10), np.int64)}
    execute(program, feeds)  # 500 elements alive at the end
    monkeypatch.setattr(interpreter, "MAX_LIVE_ELEMENTS", 450)
    with pytest.raises(CostLimitError, match="alive"):
        execute(program, feeds)


def test_a_pooling_window_is_charged_per_output_element_times_its_size():
    def pool_units(kernel):
        node = ProgramNode("MaxPool", "pool", ["x"], ["y"], {"kernel_shape": [kernel, kernel], "strides": [1, 1],
                           "dilations": [1, 1], "pads": [kernel // 2] * 4, "ceil_mode": 0}, {}, [8])
        return _units(_program([node], (1, 2, 32, 32), "y"), {"x": np.ones((1, 2, 32, 32), np.int64)})

    elements = 2 * 32 * 32
    assert pool_units(9) - pool_units(1) >= cost.ARITH * elements * (81 - 1)


def _matmul(weight, input_frac=8):
    node = ProgramNode("MatMul", "mm", ["x", ""], ["y"], {"acc_frac": 16, "out_frac": 8}, {"k1": weight}, [8])
    return _program([node], (4, weight.shape[0]), "y", frac=input_frac)


def test_a_product_on_the_int64_loops_is_charged_at_the_int64_weight():
    rng = np.random.default_rng(0)
    narrow = rng.integers(-32767, 32768, (64, 64))
    wide = rng.integers(-(1 << 35), 1 << 35, (64, 64))  # |a| |w| > 2**49: no exact float chunk of 16
    x = {"x": rng.integers(-100, 100, (4, 64))}
    macs = 4 * 64 * 64
    assert _units(_matmul(wide), x) - _units(_matmul(narrow), x) >= macs * (cost.INT64_MAC - cost.FLOAT_MAC)


def test_a_matrix_operand_beyond_the_activation_range_is_refused():
    program = _matmul(np.ones((8, 8), np.int64), input_frac=None)  # a plain integer input: no range check
    with pytest.raises(OutOfRangeError, match="activation range"):
        execute(program, {"x": np.full((4, 8), 40000, np.int64)})
    outcome = execute_job(program.to_bytes(), encode_tensors({"x": np.full((4, 8), 40000, np.int64)}))
    assert _error_code(outcome) == 5


def test_memory_error_is_not_an_outcome_but_propagates(monkeypatch, example_program, example_inputs):
    """Whether an allocation fails depends on the machine, so no hash is committed for it."""
    import verifier.job as job

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(job, "execute", out_of_memory)
    inputs = encode_tensors(integer_feeds(example_program, example_inputs))
    with pytest.raises(MemoryError):
        execute_job(example_program.to_bytes(), inputs)


def test_the_maximum_fits_the_default_commit_window_with_margin():
    """The documented guarantee: every class measured at >= 10 G units/s here (scripts/bench_cost.py),
    so MAX_COST takes <= ~55 s; four times that stays inside the 600 s default commit window."""
    from contracts.binding import DEFAULT_PARAMS

    worst_seconds = cost.MAX_COST / 10e9
    assert 4 * worst_seconds < DEFAULT_PARAMS["commit_window"]


def test_kernel_buffers_above_the_kept_size_are_freed_after_a_job(monkeypatch, example_program, example_inputs):
    import verifier.job as job
    from verifier.kernels import scratch_bytes

    monkeypatch.setattr(job, "KEPT_SCRATCH_BYTES", 0)
    inputs = encode_tensors(integer_feeds(example_program, example_inputs))
    assert execute_job(example_program.to_bytes(), inputs).ok
    assert scratch_bytes() == 0
