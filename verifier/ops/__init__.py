"""The op table: one ONNX op per file, each a class named exactly like the op.

How to add an op
----------------
1. Create `verifier/ops/<op_name_lowercase>.py` with `class <OpName>` holding two static methods:

       class Relu:
           '''max(q, 0); output frac = input frac.'''          # integer semantics, as docs/fixed-point.md

           @staticmethod
           def compile(ctx: CompileContext) -> Lowering:
               # float math allowed here only: choose scales, quantize constants, prove bounds
               return Lowering(out_fracs=[ctx.inputs[0].frac])

           @staticmethod
           def run(inputs: list[np.ndarray | None], attrs: dict, consts: dict[str, np.ndarray]) -> list[np.ndarray]:
               # integers only (int64 arrays in, int64 arrays out); round/saturate via verifier.fixedpoint
               (x,) = inputs
               return [np.maximum(x, 0)]

   Optional third static method `cost(shapes: list[tuple[int, ...] | None], attrs, consts) -> int`: the work
   units of one run, known before running it (default: total elements of the run-time inputs). Ops whose
   work or output size is not bounded by their input shapes (Gemm, Conv, Pad, ...) must define it; ops whose
   output size depends on input *values* (ConstantOfShape, Expand, Tile) also define
   `output_size(inputs, attrs, consts) -> int`, checked (cheaply, before any allocation) with the cost.
   Ops that make or read activations may also declare `range_bits(attrs, input_widths) -> int`: a width w with
   every value of the first output proven within +-qmax(w) (0: none), whatever the attributes (ops/_ranges.py);
   and `takes_proven_ranges = True` with run(..., proven=widths): the interpreter then passes the widths it has
   proven of the inputs, so a GEMM/conv need not check them again.
   An op whose fast path spends a small layer's time deciding (Gemm, MatMul, Conv, LayerNormalization, Softmax, Add,
   Sub, Sum, Mul, MaxPool; Reshape and Gather by shapes or indices fixed for the run) may define
   `bind(shapes, attrs, consts, fixed, **hints) -> function(inputs) -> outputs, or None`: its fast path for inputs
   of exactly those shapes, with everything the shapes decide decided once (`fixed`: {input position: value} of the
   inputs whose values are the same on every such run, constants and cached shape arithmetic); the same outputs as
   `run` on the fast path, bit for bit (tests/verifier/test_replay.py). The interpreter's replays call it.
2. Nothing else: the table below imports every module of this package whose name does not start with "_"
   and registers the class whose lowercased name equals the module name (relu.py -> Relu,
   globalaveragepool.py -> GlobalAveragePool). The compiler looks ops up here, the interpreter calls `run`,
   `vinfer inspect` lists them. Shared helpers live in `_common.py` (underscore: not an op).
   One ONNX op type, one file: Div (div.py) lowers constant divisors itself and hands a tensor divisor to
   `verifier.ops._div_tensor.lower_div_by_tensor(ctx)` when that module exists (owned by nonlinear).

What `compile` sees (CompileContext) and returns (Lowering)
----------------------------------------------------------
- `ctx.inputs[i]` is an Operand: name, shape (ints; None for a symbolic dim), frac (fixed-point fraction
  bits of the run-time integer tensor; None for a plain integer tensor such as Shape outputs or token ids),
  and `value` (the float/int numpy value when the input is constant at compile time, else None). Missing
  optional inputs are None in the list.
- `ctx.attrs`: the ONNX attributes as Python values (ints, floats, strings, lists, numpy arrays for tensors).
- `ctx.out_range(i)`: the calibrated max |value| of output i (with headroom), float; `ctx.out_frac(i)`:
  frac_for_range of it, the default output scale. `ctx.opset`, `ctx.node_name`, `ctx.op_type`.
- `ctx.unsupported(reason)` raises UnsupportedOpError naming op, node and opset.
- Return `Lowering(out_fracs=[...], attrs={...}, consts={...}, absorbed={i, ...})`:
  * `attrs` go into the program bytes: ints, strings, lists of ints/strings only (no floats: the run is
    integer-only; quantize floats into ints here).
  * `consts` go into the program bytes: name -> integer numpy array (tables, quantized weights, biases).
  * `absorbed`: indices of constant inputs the op folded into its consts; they arrive as None in `run`.
    Constant inputs that are not absorbed are quantized at their own frac (Operand.frac) and fed at run.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from verifier.errors import UnsupportedOpError
from verifier.fixedpoint import frac_for_range


@dataclass
class Operand:
    name: str
    shape: tuple
    frac: int | None
    value: np.ndarray | None = None
    may_be_infinite: bool = False  # the calibration run saw +-inf in it (an attention mask): saturated = infinite
    range: float | None = None  # calibrated max |value| of a run-time tensor, None when unknown

    @property
    def is_const(self) -> bool:
        return self.value is not None


@dataclass
class Lowering:
    out_fracs: list
    attrs: dict = field(default_factory=dict)
    consts: dict = field(default_factory=dict)
    absorbed: set = field(default_factory=set)


@dataclass
class CompileContext:
    op_type: str
    node_name: str
    opset: int
    inputs: list  # list[Operand | None]
    attrs: dict
    output_names: list
    output_shapes: list
    ranges: list  # calibrated max |value| per output (float), None when unknown
    matmul_bits: int = 16  # operand width of Conv/Gemm/MatMul products (fixedpoint.MATMUL_BITS)
    narrow_output: bool = False  # output 0 only ever enters products at matmul_bits (compiler/share_scales.py)

    def out_range(self, index: int = 0) -> float:
        value = self.ranges[index] if index < len(self.ranges) else None
        if value is None:
            self.unsupported(f"no value range known for output {index} (calibration could not reach it)")
        return float(value)

    def out_frac(self, index: int = 0) -> int:
        return frac_for_range(self.out_range(index))

    def unsupported(self, reason: str):
        raise UnsupportedOpError(self.op_type, self.node_name, self.opset, reason)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


def default_cost(shapes, attrs, consts) -> int:
    # (no builtins such as sum/slice in this module: the op submodules sum.py, slice.py shadow them here)
    total = 0
    for shape in shapes:
        if shape is not None:
            total += math.prod(int(d) for d in shape)
    return total


def _discover() -> dict[str, type]:
    import importlib
    import pkgutil

    table: dict[str, type] = {}
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and value.__name__.lower() == module_info.name and hasattr(value, "run"):
                table[value.__name__] = value
    return table


OPS: dict[str, type] = _discover()


def lookup(op_type: str) -> type | None:
    return OPS.get(op_type)


def op_cost(op: type) -> Callable:
    return getattr(op, "cost", default_cost)
