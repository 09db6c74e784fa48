"""Integer execution of a Program: the nodes in order, each op's `run` on int64 arrays.

Work is metered before each node (docs/fixed-point.md, "Cost"; verifier/cost.py): the node's units,
from its op and the shapes of its run-time inputs, are added to a running total, and a run whose total
would pass `max_cost`, or whose tensors would pass the element limits, stops with CostLimitError at
that node. The count depends only on the program and the input shapes, so every honest machine stops at
the same node.

The per-node bookkeeping (op lookup, which tensors die after which node, the cost of a node for a given
set of input shapes) is planned once per Program and reused by every run: a small model's run is
mostly this loop, so it does no more Python work per node than it must.

Nodes whose outputs follow from the program and the shapes of the feeds alone (Shape, Size and what is
computed from them and from constants: the shape arithmetic of a model exported with a dynamic batch) are
run once per set of feed shapes; later runs with the same shapes take their outputs from a cache (up to
`SHAPE_CACHE_ELEMENTS`), read-only like the program's constants. Each such node is still metered and
checked where it stands, so a run stops at the same node with the same error whether or not it is cached.

A Concat whose inputs only it reads does not copy those made by ops that can write into a given array (Conv):
once a run with the same feed shapes has shown where each input lands in the Concat's output (a `_Layout`),
later runs compute them straight into their slices of it. Memory placement only: the same values, metering and
errors.

A GEMM/conv checks that its run-time operand lies in the 16-bit activation range (ops/_common.checked_range: a
hostile program's values may not), unless the program proves it: range facts, planned once per program
(`_plan_ranges`), follow each tensor from the validated feeds and the op that made it (a saturating epilogue proves
its output width, a Relu or MaxPool passes its input's on: ops/_ranges.py). Constants are never trusted; the
reference path checks every fact it is given."""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field

import numpy as np

from verifier import cost
from verifier.cost import MAX_COST, MAX_ELEMENTS, MAX_LIVE_ELEMENTS, MAX_NODES  # noqa: F401 (re-exported)
from verifier.encoding import encode_tensors, keccak_hex
from verifier.errors import CostLimitError, ProgramFormatError, ProgramRunError
from verifier.fixedpoint import ACT_BITS
from verifier.ops import lookup, op_cost
from verifier.program import Program

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


@dataclass
class NodePlan:
    """What the loop needs of one node, resolved once per program."""

    name: str
    op: type
    inputs: tuple
    outputs: tuple
    attrs: dict
    consts: dict
    base: int  # units per node of the op's class
    weight: int  # units per element of the op's class
    relu: bool  # a Relu fused at compile time (verifier/compiler/fuse.py) that the loop applies
    named_outputs: int = 0  # outputs the program names (the op must give at least this many)
    shape_only: bool = False  # its outputs follow from the program and the feed shapes alone
    dies: tuple = ()  # tensors no later node (nor the result) reads: freed after this node
    units: dict = field(default_factory=dict)  # input shapes -> (units, largest output) when shapes decide both
    into: tuple | None = None  # (Concat node index, input position): its output may be computed into that slice
    gathers: bool = False  # a Concat some of whose inputs are computed into its output (`into`)
    hints: dict = field(default_factory=dict)  # keywords for its op's run: {"proven": widths} (_plan_ranges)


def plan(program: Program) -> list[NodePlan]:
    """The node plans of a program, built on first use and cached on the program object."""
    cached = getattr(program, "_node_plans", None)
    if cached is not None and cached[0] is program.nodes and cached[1] == len(program.nodes):
        return cached[2]
    if len(program.nodes) > MAX_NODES:
        raise CostLimitError(f"program has {len(program.nodes)} nodes (the maximum is {MAX_NODES})")
    plans = []
    for node in program.nodes:
        op = lookup(node.op)
        if op is None:
            raise ProgramFormatError(f"node {node.name!r}: unknown op {node.op!r}")
        relu = bool(node.attrs.get("relu")) and not getattr(op, "fuses_relu", False)
        plans.append(NodePlan(node.name, op, tuple(node.inputs), tuple(node.outputs), node.attrs, node.consts,
                              cost.base(node.op), cost.weight(node.op), relu, sum(1 for o in node.outputs if o)))
    fixed = set(program.constants)  # tensors the program and the feed shapes alone decide
    for node in plans:
        if getattr(node.op, "reads_only_shapes", False) or all(name in fixed for name in node.inputs if name):
            node.shape_only = True
            fixed.update(name for name in node.outputs if name)
    keep = {info.name for info in program.outputs}
    _plan_placements(plans, keep | set(program.constants))
    _plan_ranges(plans, {info.name: ACT_BITS for info in program.inputs if info.frac is not None})
    last: dict[str, int] = {}
    for index, node in enumerate(plans):
        for name in node.inputs + node.outputs:
            if name:
                last[name] = index
    dies: dict[int, list[str]] = {}
    for name, index in last.items():
        if name not in keep and name not in program.constants:
            dies.setdefault(index, []).append(name)
    for index, names in dies.items():
        plans[index].dies = tuple(names)
    program._node_plans = (program.nodes, len(program.nodes), plans)
    program._shape_values = {}  # (node indices of these plans: _shape_values)
    return plans


def execute(program: Program, feeds: dict, *, max_cost: int = MAX_COST, trace: list | None = None,
            stats: dict | None = None) -> dict:
    """Run on integer feeds (name -> int64 array, validated by verifier/feeds.py: integer_feeds or check_encoded,
    so fixed-point feeds lie in the 16-bit activation range); returns output name -> int64 array.
    With `trace` (a list), appends (node name, [(output name, keccak of its canonical bytes)]) per node.
    With `stats` (a dict), sets "units" (the cost charged), "nodes" and "peak_live_elements"."""
    env: dict[str, np.ndarray] = dict(program.constants)
    env.update(feeds)
    live = {name: int(np.size(value)) for name, value in feeds.items()}
    live_total = sum(live.values())
    spent = peak = 0
    plans = plan(program)
    cached = _shape_values(program, feeds)
    pending: dict = {}  # Concat node index -> (its output, {input position: the slice given to that input's node})
    for index, node in enumerate(plans):
        hit = cached.get(index) if node.shape_only else None
        if hit is not None:  # (its outputs, units and size for these feed shapes)
            outputs, units, size = hit
        else:
            try:
                inputs = [env[name] if name else None for name in node.inputs]
            except KeyError as exc:
                raise ProgramFormatError(f"node {node.name!r}: input {exc.args[0]!r} is not computed before it") from exc
            known = node.units.get(tuple([None if x is None else x.shape for x in inputs]))
            units, size = known if known is not None else _meter(node, inputs)
        if size > MAX_ELEMENTS:
            raise CostLimitError(f"node {node.name!r} would make a tensor of {size} elements "
                                 f"(the maximum is {MAX_ELEMENTS})")
        if live_total + size > MAX_LIVE_ELEMENTS:
            raise CostLimitError(f"node {node.name!r} would hold {live_total + size} elements alive "
                                 f"(the maximum is {MAX_LIVE_ELEMENTS})")
        spent += units
        if live_total + size > peak:
            peak = live_total + size
        if spent > max_cost:
            raise CostLimitError(f"program cost passes the maximum {max_cost} at node {node.name!r}")
        if hit is None:
            if node.into is not None:
                outputs = _run(node, inputs, _slot(node.into, cached.layouts, pending))
            elif node.gathers:
                outputs = _gather(node, index, inputs, cached.layouts, pending)
            else:
                outputs = _run(node, inputs)
            if node.shape_only:
                _keep_shape_values(cached, index, outputs, units, size)
        for name, value in zip(node.outputs, outputs):
            if name:
                env[name] = value
                live_total += value.size - live.get(name, 0)
                live[name] = value.size
        if trace is not None:
            trace.append((node.name, [(name, keccak_hex(encode_tensors({name: env[name]})))
                                      for name in node.outputs if name]))
        for name in node.dies:
            env.pop(name, None)
            live_total -= live.pop(name, 0)
    if stats is not None:
        stats.update(units=spent, nodes=len(program.nodes), peak_live_elements=peak)
    return {info.name: env[info.name] for info in program.outputs}


def _run(node: NodePlan, inputs: list, out: np.ndarray | None = None) -> list:
    """The node's outputs on these inputs, its fused Relu applied; the named ones as int64 arrays. `out`: an array
    the op may compute its first output into (ops with `places_output`)."""
    try:
        if out is None:
            outputs = node.op.run(inputs, node.attrs, node.consts, **node.hints)
        else:
            outputs = node.op.run(inputs, node.attrs, node.consts, out=out, **node.hints)
    except (ValueError, IndexError, ZeroDivisionError, OverflowError) as exc:  # what an op finds in its inputs
        raise ProgramRunError(f"node {node.name!r} ({node.op.__name__}) cannot run on these inputs: {exc}") from exc
    if node.relu:  # fusable ops that do not apply it themselves return a fresh array (fuse.py)
        np.maximum(outputs[0], 0, out=outputs[0])
    if len(outputs) < node.named_outputs:
        raise ProgramFormatError(f"node {node.name!r}: op {node.op.__name__} gave {len(outputs)} outputs")
    outputs = list(outputs)
    for position, name in enumerate(node.outputs[:len(outputs)]):
        value = outputs[position]
        if name and (type(value) is not np.ndarray or value.dtype != np.int64):
            outputs[position] = np.asarray(value, dtype=np.int64)
    return outputs


SHAPE_CACHE_ELEMENTS = 1 << 16  # elements of shape-only outputs cached per set of feed shapes (masks past it
# are computed again: a hostile program cannot grow the cache past this)
SHAPE_CACHE_KEYS = 8  # sets of feed shapes cached per program


class _ShapeValues(dict):
    """A program's shape-only nodes for one set of feed shapes: node index -> (outputs, units, size: the node's
    metering, the same for these shapes), and the elements held; and the layouts of its Concats (`layouts`: node
    index -> _Layout) seen with these shapes."""

    elements = 0

    def __init__(self):
        super().__init__()
        self.layouts: dict[int, _Layout] = {}


def _shape_values(program: Program, feeds: dict) -> _ShapeValues:
    """The cached shape-only outputs of the program for these feed shapes (filled by the run as it goes)."""
    key = tuple(sorted((name, np.shape(value)) for name, value in feeds.items()))
    caches = program._shape_values  # (made with the node plans: a program whose nodes change starts afresh)
    if key not in caches and len(caches) >= SHAPE_CACHE_KEYS:
        caches.clear()
    return caches.setdefault(key, _ShapeValues())


def _keep_shape_values(cached: _ShapeValues, index: int, outputs: list, units: int, size: int) -> None:
    """Cache a shape-only node's outputs while the budget allows, made read-only as the program's constants are
    (consumers never write into their inputs), so every later run sees the very same values."""
    held = sum(value.size for value in outputs if isinstance(value, np.ndarray))
    if cached.elements + held <= SHAPE_CACHE_ELEMENTS:
        for value in outputs:
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
        cached[index] = (outputs, units, size)
        cached.elements += held


def _meter(node: NodePlan, inputs: list) -> tuple[int, int]:
    """(units, elements of the largest output) of one node on these inputs: Python ints, computed before
    anything is allocated. Memoized per input shapes unless the output size depends on values."""
    shapes = tuple(None if x is None else x.shape for x in inputs)
    known = node.units.get(shapes)
    if known is not None:
        return known
    sized_by_values = hasattr(node.op, "output_size") and not getattr(node.op, "output_size_from_shapes", False)
    size = _output_size(node.op, inputs, shapes, node)
    work = int(op_cost(node.op)(list(shapes), node.attrs, node.consts))
    units = node.base + node.weight * (work + size)
    if not sized_by_values and len(node.units) < 16:
        node.units[shapes] = (units, size)
    return units, size


def _output_size(op, inputs, shapes, node) -> int:
    """Elements of the node's largest output (or working buffer), known before running it: the op's own
    `output_size` (sizes that come from values or geometry), else the broadcast of its inputs' shapes
    (0 when they do not broadcast: such ops never produce more than their inputs)."""
    if hasattr(op, "output_size"):
        return int(op.output_size(inputs, node.attrs, node.consts))
    present = [s for s in shapes if s is not None]
    try:
        shape = np.broadcast_shapes(*present) if present else ()
    except ValueError:
        return 0
    return math.prod(int(d) for d in shape)  # Python ints: cannot wrap


# -- range facts -----------------------------------------------------------------------------------------------


def _plan_ranges(plans: list[NodePlan], feeds: dict[str, int]) -> None:
    """Give each op that takes them (`takes_proven_ranges`) the widths its inputs are proven within: the fixed-point
    feeds (`feeds`: execute takes validated feeds, checked within 16 bits by verifier/feeds.py), and tensors made by
    an op whose `range_bits` rule (verifier/ops/_ranges.py) proves its first output within qmax(width), for widths
    of 1 to ACT_BITS. Facts follow the nodes in order, as the tensors they name are made (a name made again takes
    the new maker's fact); constants have none. The fast path then skips checking those operands' range (nothing
    out of range can reach them); the reference path checks the facts (ops/_operands.narrowed)."""
    proven: dict[str, int] = dict(feeds)
    for node in plans:
        widths = tuple(proven.get(name, 0) for name in node.inputs)
        if getattr(node.op, "takes_proven_ranges", False) and any(widths):
            node.hints = {"proven": widths}
        width = _range_bits(node, widths)
        for position, name in enumerate(node.outputs):
            if name and position == 0 and width:
                proven[name] = width
            elif name:
                proven.pop(name, None)


def _range_bits(node: NodePlan, widths: tuple) -> int:
    """The width the node's op proves its first output within, 0 for none (or for a rule the node's attributes
    break: a hostile program's)."""
    rule = getattr(node.op, "range_bits", None)
    if rule is None:
        return 0
    try:
        width = rule(node.attrs, widths)
    except (TypeError, ValueError, KeyError, AttributeError):
        return 0
    return width if type(width) is int and 0 < width <= ACT_BITS else 0


# -- Concat inputs computed in place -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where a Concat's inputs went in its output, in a run with given feed shapes: its output shape and, per
    input, the index of its slice."""

    shape: tuple
    slices: tuple

    @staticmethod
    def of(inputs: list, output: np.ndarray, axis: int) -> _Layout:
        axis %= output.ndim
        slices, start = [], 0
        for x in inputs:
            slices.append((slice(None),) * axis + (slice(start, start + x.shape[axis]),))
            start += x.shape[axis]
        return _Layout(output.shape, tuple(slices))


def _plan_placements(plans: list[NodePlan], kept: set) -> None:
    """Mark the Concat inputs that may be computed straight into the Concat's output: each the first output of a
    node whose op can write into a given array (`places_output`), read by this Concat alone, not a program output,
    and not shape-only (whose outputs are cached read-only); the Concat must only copy (`copies_only`), each input
    once."""
    made: dict[str, tuple[int, int]] = {}
    readers: dict[str, int] = {}
    for index, node in enumerate(plans):
        for name in node.inputs:
            readers[name] = readers.get(name, 0) + 1
        for position, name in enumerate(node.outputs):
            if name:
                made[name] = (index, position) if name not in made else (-1, -1)  # (made twice: never placed)
    for index, node in enumerate(plans):
        op = node.op
        if (not getattr(op, "joins_in_place", False) or not op.copies_only(node.attrs) or len(node.outputs) != 1
                or "" in node.inputs or len(set(node.inputs)) != len(node.inputs)):
            continue
        for position, name in enumerate(node.inputs):
            producer, output = made.get(name, (-1, -1))
            if producer < 0 or output != 0 or readers[name] != 1 or name in kept:
                continue
            source = plans[producer]
            if producer < index and getattr(source.op, "places_output", False) and not source.shape_only:
                source.into = (index, position)
                node.gathers = True


def _slot(into: tuple, layouts: dict, pending: dict) -> np.ndarray | None:
    """The slice of a Concat's output that the node marked `into` it computes its output into, when a run with
    these feed shapes has laid that Concat out (the output is made by the first of its inputs' nodes to run)."""
    concat, position = into
    layout = layouts.get(concat)
    if layout is None:
        return None
    if concat not in pending:
        pending[concat] = (np.empty(layout.shape, dtype=np.int64), {})
    output, given = pending[concat]
    given[position] = output[layout.slices[position]]
    return given[position]


def _gather(node: NodePlan, index: int, inputs: list, layouts: dict, pending: dict) -> list:
    """A Concat some of whose inputs may already be in its output (_slot): the others are copied into their slices.
    Inputs of other shapes than the layout's (shapes that follow from values) take the plain Concat, which then
    lays it out again."""
    output, given = pending.pop(index, (None, {}))
    layout = layouts.get(index)
    if output is not None and all(type(x) is np.ndarray and x.dtype == np.int64 and x.shape == output[part].shape
                                  for x, part in zip(inputs, layout.slices)):
        for position, (x, part) in enumerate(zip(inputs, layout.slices)):
            if x is not given.get(position):  # (not computed in place: its node could not, or ran without a slot)
                output[part] = x
        return [output]
    outputs = _run(node, inputs)
    if all(type(x) is np.ndarray for x in inputs):
        layouts[index] = _Layout.of(inputs, outputs[0], int(node.attrs["axis"]))
    return outputs
