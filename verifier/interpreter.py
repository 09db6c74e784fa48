"""Integer execution of a Program: the nodes in order, each op's `run` on int64 arrays.

Work is metered before each node (docs/fixed-point.md, "Cost"): the op's cost from the shapes of its
run-time inputs is added to a running total, and a run whose total would pass `max_cost` stops with
CostLimitError at that node. The count depends only on the program and the input shapes, so every honest
machine stops at the same node."""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from verifier.encoding import encode_tensors, keccak_hex
from verifier.errors import CostLimitError, ProgramFormatError
from verifier.ops import lookup, op_cost
from verifier.program import Program

MAX_COST = 1 << 36  # protocol maximum work units per job (about 69e9 multiply-adds)
MAX_ELEMENTS = 1 << 28  # protocol maximum elements of one tensor whose size comes from input values (2 GiB)

# "fast" | "reference" | None (None: each node's compiled choice). Results are identical either way.
_FORCED_PATH: contextvars.ContextVar = contextvars.ContextVar("vinfer_forced_path", default=None)


@contextlib.contextmanager
def forced_path(path: str | None):
    token = _FORCED_PATH.set(path)
    try:
        yield
    finally:
        _FORCED_PATH.reset(token)


def current_forced_path() -> str | None:
    return _FORCED_PATH.get()


def execute(program: Program, feeds: dict, *, max_cost: int = MAX_COST, trace: list | None = None) -> dict:
    """Run on integer feeds (name -> int64 array, already validated); returns output name -> int64 array.
    With `trace` (a list), appends (node name, [(output name, keccak of its canonical bytes)]) per node."""
    env: dict[str, np.ndarray] = dict(program.constants)
    env.update(feeds)
    last_use = _last_use(program)
    spent = 0
    for index, node in enumerate(program.nodes):
        op = lookup(node.op)
        if op is None:
            raise ProgramFormatError(f"node {node.name!r}: unknown op {node.op!r}")
        try:
            inputs = [env[name] if name else None for name in node.inputs]
        except KeyError as exc:
            raise ProgramFormatError(f"node {node.name!r}: input {exc.args[0]!r} is not computed before it") from exc
        spent += int(op_cost(op)([None if x is None else x.shape for x in inputs], node.attrs, node.consts))
        size = _output_size(op, inputs, node)
        if size > MAX_ELEMENTS:
            raise CostLimitError(f"node {node.name!r} would make a tensor of {size} elements "
                                 f"(the maximum is {MAX_ELEMENTS})")
        spent += size
        if spent > max_cost:
            raise CostLimitError(f"program cost passes the maximum {max_cost} at node {node.name!r}")
        outputs = op.run(inputs, node.attrs, node.consts)
        if node.attrs.get("relu"):  # a Relu fused at compile time (verifier/compiler/fuse.py)
            np.maximum(outputs[0], 0, out=outputs[0])  # fusable ops return a fresh array (fuse.py)
        if len(outputs) < len([o for o in node.outputs if o]):
            raise ProgramFormatError(f"node {node.name!r}: op {node.op} gave {len(outputs)} outputs")
        for name, value in zip(node.outputs, outputs):
            if name:
                env[name] = np.asarray(value, dtype=np.int64)
        if trace is not None:
            trace.append((node.name, [(name, keccak_hex(encode_tensors({name: env[name]})))
                                      for name in node.outputs if name]))
        for name in last_use.get(index, ()):
            env.pop(name, None)
    return {info.name: env[info.name] for info in program.outputs}


def _output_size(op, inputs, node) -> int:
    """Elements of the node's largest output, known before running it: the op's own `output_size` (sizes
    that come from values or geometry), else the broadcast of its inputs' shapes (0 when they do not
    broadcast: such ops never produce more than their inputs)."""
    if hasattr(op, "output_size"):
        return int(op.output_size(inputs, node.attrs, node.consts))
    shapes = [x.shape for x in inputs if x is not None]
    try:
        shape = np.broadcast_shapes(*shapes) if shapes else ()
    except ValueError:
        return 0
    size = 1
    for d in shape:  # Python ints: cannot wrap
        size *= int(d)
    return size


def _last_use(program: Program) -> dict[int, list[str]]:
    keep = {info.name for info in program.outputs}
    last: dict[str, int] = {}
    for index, node in enumerate(program.nodes):
        for name in list(node.inputs) + list(node.outputs):
            if name:
                last[name] = index
    by_node: dict[int, list[str]] = {}
    for name, index in last.items():
        if name not in keep:
            by_node.setdefault(index, []).append(name)
    return by_node
