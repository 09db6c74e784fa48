"""Range facts: the widths an op proves its first output's values within, from its attributes and what is
proven of its inputs (verifier/interpreter.py gathers them once per program; a GEMM/conv skips checking an
operand proven within its operand width, _operands.narrowed).

An op's optional `range_bits(attrs, inputs) -> int` gives that width (|y| <= qmax(width)), or 0 for none;
`inputs` holds a width per input (0: nothing proven). A rule must hold for every program, hostile ones
included, whatever the attributes: the interpreter keeps widths of 1 to 16 only, and the reference path
checks each proven operand, so every reference run tests the rules."""

from verifier.fixedpoint import ACT_BITS
from verifier.ops._common import output_bits


def saturated(attrs: dict, inputs: tuple) -> int:
    """A GEMM/conv: its epilogue saturates at its output width on every path (8 or 16 bits), whatever its
    inputs."""
    bits = output_bits(attrs)
    return bits if bits in (8, ACT_BITS) else 0


def requantized(attrs: dict, inputs: tuple) -> int:
    """An op whose result is requantized and saturated at 16 bits (Add, Sub, Sum: a flagged infinite operand gives
    +-qmax there; Mul, BatchNormalization, LayerNormalization, Softmax, LRN), unless it works on plain integers
    (attrs["integer"])."""
    return 0 if attrs.get("integer") else ACT_BITS


def of_first_input(attrs: dict, inputs: tuple) -> int:
    """An op whose output values lie within its first input's range: values of it or 0 (Relu, MaxPool, Gather, a
    reshape or transpose), or averages of them rounded to the nearest integer (AveragePool, GlobalAveragePool,
    ReduceMean: counted padding adds zeros)."""
    return inputs[0] if inputs else 0


def proven_width(proven: tuple, index: int) -> int:
    """The width proven of input `index` in a run's `proven` tuple (0 when none, or the tuple is shorter)."""
    return proven[index] if index < len(proven) else 0
