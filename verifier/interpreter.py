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

A completed run leaves a replay (`_Replay`) for the runs with the same feed shapes: which nodes ran, on which input
shapes, and what it charged. Cost and element limits are functions of each node's input shapes (ops sized by values
are metered again), so a later run whose nodes see the same shapes, within a `max_cost` at least the total, would
pass every check the same way: it runs the nodes without metering them, checking only that each node's input
shapes are the recorded ones (else it starts again on the metered loop, which then stays in charge for those feed
shapes), and stops with the same error at the same node when an op refuses its values. Ops with a `bind` give the
replay a function prepared once for their input shapes (`bind(shapes, attrs, consts, ...)`: the fast path's
kernel choice, buffers and operand forms decided once; the same bits as `run`), so a small model's run is mostly
its kernels. replays.py makes each replay's code.

A GEMM/conv checks that its run-time operand lies in the 16-bit activation range (ops/_common.checked_range: a
hostile program's values may not), unless the program proves it: range facts, planned once per program
(node_plans.py), follow each tensor from the validated feeds and the op that made it (a saturating epilogue proves
its output width, a Relu or MaxPool passes its input's on: ops/_ranges.py). Constants are never trusted; the
reference path checks every fact it is given."""

from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass

import numpy as np

from verifier import replays
from verifier.cost import MAX_COST, MAX_ELEMENTS, MAX_LIVE_ELEMENTS, MAX_NODES  # noqa: F401 (re-exported)
from verifier.encoding import encode_tensors, keccak_hex
from verifier.errors import CostLimitError, ProgramFormatError, ProgramRunError
from verifier.fixedpoint import qmax
from verifier.kernels import limbs, loops
from verifier.node_plans import NodePlan, plan, proven_widths
from verifier.ops import op_cost
from verifier.ops._common import kernel_path
from verifier.program import Program
from verifier.replays import RUN_ERRORS, Replay, replay_function, run_error

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


def execute(program: Program, feeds: dict, *, max_cost: int = MAX_COST, trace: list | None = None,
            stats: dict | None = None, replay: bool = True) -> dict:
    """Run on integer feeds (name -> int64 array, validated by verifier/feeds.py: integer_feeds or check_encoded,
    so fixed-point feeds lie in the 16-bit activation range); returns output name -> integer array, int64 or the
    output's committed width (TensorInfo.bits: `committed`).
    With `trace` (a list), appends (node name, [(output name, keccak of its canonical bytes)]) per node.
    With `stats` (a dict), sets "units" (the cost charged), "nodes" and "peak_live_elements".
    replay=False runs the metered loop even where a replay is recorded (the same results: benchmarks compare them)."""
    plans = plan(program)
    cached = _shape_values(program, feeds)
    recorded = cached.replay if replay else None
    if (recorded and trace is None and recorded.units <= max_cost and recorded.peak <= MAX_LIVE_ELEMENTS
            and recorded.largest <= MAX_ELEMENTS):
        outputs = _replayed(program, plans, recorded, cached)(feeds)
        if outputs is not None:
            if stats is not None:
                stats.update(units=recorded.units, nodes=len(program.nodes), peak_live_elements=recorded.peak)
            return committed(program, outputs)
        cached.replay = False  # (shapes that follow from values changed: the metered loop keeps these feed shapes)
    return committed(program, _metered(program, plans, cached, feeds, max_cost, trace, stats))


def committed(program: Program, outputs: dict) -> dict:
    """The outputs at their committed widths (program format 4: int8, int16 or int32 where the compiler proved the
    range; int64 otherwise). Where this verifier's range rules prove an output within its width (node_plans: the
    facts the fast path already relies on for its operands) the fast path narrows it as it is; elsewhere, and on
    the reference path, every value is checked: a program claiming a width its values break fails the run
    (ProgramRunError, on every machine alike) rather than wrapping them."""
    checked = kernel_path() == "reference"
    for name, dtype, bits, proven in _committed_widths(program):
        if proven and not checked:
            outputs[name] = outputs[name].astype(dtype)
        else:
            outputs[name] = _narrowed_output(name, outputs[name], bits)
    return outputs


def _committed_widths(program: Program) -> tuple:
    """(name, dtype, bits, proven within bits) per output with committed bits, worked out once per program."""
    widths = getattr(program, "_committed_widths", None)
    if widths is None:
        proven = proven_widths(program)
        widths = program._committed_widths = tuple(
            (info.name, np.dtype(f"int{info.bits}"), info.bits, 0 < proven.get(info.name, 0) <= info.bits)
            for info in program.outputs if info.bits is not None)
    return widths


def _narrowed_output(name: str, values: np.ndarray, bits: int) -> np.ndarray:
    """values at int{bits}, after checking they lie within +-qmax(bits): the range the compiler proved (symmetric,
    as every activation's)."""
    limit = qmax(bits)
    narrow = np.empty(values.shape, dtype=f"int{bits}")
    low, high = loops.narrow(np.ascontiguousarray(values, dtype=np.int64).reshape(-1), 0, limit, narrow.reshape(-1))
    if values.size and (low < -limit or high > limit):
        raise ProgramRunError(f"output {name!r}: value {low if low < -limit else high} is outside +-{limit}, the "
                              f"int{bits} range the program commits it at")
    return narrow


def _metered(program: Program, plans: list[NodePlan], cached: "_ShapeValues", feeds: dict, max_cost: int,
             trace: list | None, stats: dict | None) -> dict:
    """execute's loop: each node metered and checked before it runs; leaves a _Replay on `cached` when it completes
    (and none was refused for these feed shapes)."""
    env: dict[str, np.ndarray] = dict(program.constants)
    env.update(feeds)
    live = {name: int(np.size(value)) for name, value in feeds.items()}
    live_total = sum(live.values())
    spent = peak = largest = 0
    replayable = cached.replay is None and program._replayable and len(plans) <= replays.REPLAY_MAX_NODES
    steps: list | None = [] if replayable else None  # for the replay
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
            shapes = tuple([None if x is None else x.shape for x in inputs])
            known = node.units.get(shapes)
            units, size = known if known is not None else _meter(node, inputs)
            if steps is not None:
                steps.append((index, shapes, (units, size) if node.sized_by_values else None))
        if size > MAX_ELEMENTS:
            raise CostLimitError(f"node {node.name!r} would make a tensor of {size} elements "
                                 f"(the maximum is {MAX_ELEMENTS})")
        if live_total + size > MAX_LIVE_ELEMENTS:
            raise CostLimitError(f"node {node.name!r} would hold {live_total + size} elements alive "
                                 f"(the maximum is {MAX_LIVE_ELEMENTS})")
        spent += units
        largest = max(largest, size)
        if live_total + size > peak:
            peak = live_total + size
        if spent > max_cost:
            raise CostLimitError(f"program cost passes the maximum {max_cost} at node {node.name!r}")
        if hit is None:
            outputs = _outputs(node, index, inputs, cached, pending)
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
    if steps is not None:
        start = dict(program.constants)
        for index, node in enumerate(plans):
            if index in cached:
                start.update((name, value) for name, value in zip(node.outputs, cached[index][0]) if name)
        cached.replay = Replay(spent, peak, largest, tuple(step for step in steps if step[0] not in cached), start)
    return {info.name: env[info.name] for info in program.outputs}


def _outputs(node: NodePlan, index: int, inputs: list, cached: "_ShapeValues", pending: dict,
             narrow: bool = False) -> list:
    """A node's outputs by its op's run, computed into its Concat's output where it is placed there (_slot,
    _gather); `narrow` (a replay's: replays.py) when that Concat's output is an int16 array."""
    if node.into is not None:
        return _run(node, inputs, _slot(node.into, cached.layouts, pending, narrow))
    if node.gathers:
        return _gather(node, index, inputs, cached.layouts, pending)
    return _run(node, inputs)


def _replayed(program: Program, plans: list[NodePlan], replay: Replay, cached: "_ShapeValues"):
    """The replay's function under the kernel path and limb setting in force (ops bind only the fast path, and the
    limb setting decides their kernels): feeds -> outputs, or None when a node's input shapes differ from the
    recorded ones (then the same run on the metered loop gives the same result: nothing the replay did is kept)."""
    return replay_function(replay, (kernel_path(), limbs.setting()), program, plans, cached, _meter, _outputs,
                           _slot)


def _run(node: NodePlan, inputs: list, out: np.ndarray | None = None) -> list:
    """The node's outputs on these inputs, its fused Relu applied; the named ones as int64 arrays, but for `out`: an
    array the op may compute its first output into (ops with `places_output`), int64 or a replay's int16."""
    if out is None:
        outputs = _call(node, node.op.run, inputs, node.attrs, node.consts, **node.hints)
    else:
        outputs = _call(node, node.op.run, inputs, node.attrs, node.consts, out=out, **node.hints)
    if node.relu:  # fusable ops that do not apply it themselves return a fresh array (fuse.py)
        np.maximum(outputs[0], 0, out=outputs[0])
    if len(outputs) < node.named_outputs:
        raise ProgramFormatError(f"node {node.name!r}: op {node.op.__name__} gave {len(outputs)} outputs")
    outputs = list(outputs)
    for position, name in enumerate(node.outputs[:len(outputs)]):
        value = outputs[position]
        if name and (type(value) is not np.ndarray or value.dtype != np.int64) and value is not out:
            outputs[position] = np.asarray(value, dtype=np.int64)
    return outputs


def _call(node: NodePlan, function, *arguments, **keywords) -> list:
    """function(*arguments, **keywords): a node's op computing its outputs, what it finds in its inputs reported."""
    try:
        return function(*arguments, **keywords)
    except RUN_ERRORS as exc:  # what an op finds in its inputs
        raise run_error(node, exc) from exc


SHAPE_CACHE_ELEMENTS = 1 << 16  # elements of shape-only outputs cached per set of feed shapes (masks past it
# are computed again: a hostile program cannot grow the cache past this)
SHAPE_CACHE_KEYS = 8  # sets of feed shapes cached per program


class _ShapeValues(dict):
    """A program's shape-only nodes for one set of feed shapes: node index -> (outputs, units, size: the node's
    metering, the same for these shapes), and the elements held; and the layouts of its Concats (`layouts`: node
    index -> _Layout) seen with these shapes."""

    elements = 0

    def __init__(self, feed_names: tuple = ()):
        super().__init__()
        self.feed_names = feed_names
        self.layouts: dict[int, _Layout] = {}
        self.replay: Replay | None | bool = None  # (False: refused, a replay's shapes changed with values)


def _shape_values(program: Program, feeds: dict) -> _ShapeValues:
    """The cached shape-only outputs of the program for these feed shapes (filled by the run as it goes)."""
    if len(feeds) == 1:  # (a run of a small model pays for this key)
        [(name, value)] = feeds.items()
        key = ((name, value.shape if type(value) is np.ndarray else np.shape(value)),)
    else:
        key = tuple(sorted((name, np.shape(value)) for name, value in feeds.items()))
    caches = program._shape_values  # (made with the node plans: a program whose nodes change starts afresh)
    cached = caches.get(key)
    if cached is None:
        if len(caches) >= SHAPE_CACHE_KEYS:
            caches.clear()
        cached = caches[key] = _ShapeValues(tuple(name for name, _ in key))
    return cached


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
    size = _output_size(node.op, inputs, shapes, node)
    work = int(op_cost(node.op)(list(shapes), node.attrs, node.consts))
    units = node.base + node.weight * (work + size)
    if not node.sized_by_values and len(node.units) < 16:
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


INTEGER_TYPES = (np.dtype(np.int64), np.dtype(np.int16))  # a tensor's array type: int16 for a replay's narrow ones


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


def _slot(into: tuple, layouts: dict, pending: dict, narrow: bool = False) -> np.ndarray | None:
    """The slice of a Concat's output that the node marked `into` it computes its output into, when a run with
    these feed shapes has laid that Concat out (the output is made by the first of its inputs' nodes to run: int16
    where `narrow`, a replay's narrow tensor, else int64)."""
    concat, position = into
    layout = layouts.get(concat)
    if layout is None:
        return None
    if concat not in pending:
        pending[concat] = (np.empty(layout.shape, dtype=np.int16 if narrow else np.int64), {})
    output, given = pending[concat]
    given[position] = output[layout.slices[position]]
    return given[position]


def _gather(node: NodePlan, index: int, inputs: list, layouts: dict, pending: dict) -> list:
    """A Concat some of whose inputs may already be in its output (_slot): the others are copied into their slices
    (an int16 output's inputs are proven within 16 bits: replays.py). Inputs of other shapes than the layout's
    (shapes that follow from values) take the plain Concat, which then lays it out again."""
    output, given = pending.pop(index, (None, {}))
    layout = layouts.get(index)
    if output is not None and all(type(x) is np.ndarray and x.dtype in INTEGER_TYPES and x.shape == output[part].shape
                                  for x, part in zip(inputs, layout.slices)):
        for position, (x, part) in enumerate(zip(inputs, layout.slices)):
            if x is not given.get(position):  # (not computed in place: its node could not, or ran without a slot)
                output[part] = x
        return [output]
    outputs = _run(node, inputs)
    if all(type(x) is np.ndarray for x in inputs):
        layouts[index] = _Layout.of(inputs, outputs[0], int(node.attrs["axis"]))
    return outputs
