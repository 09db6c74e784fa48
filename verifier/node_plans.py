"""The plans of a Program's nodes, made once per program and reused by every run (verifier/interpreter.py): each
node's op, its metering constants, which tensors die after it, which nodes read only shapes, the range facts of
its operands, and which Concat inputs are computed in place."""

from __future__ import annotations

from dataclasses import dataclass, field

from verifier import cost
from verifier.cost import MAX_NODES
from verifier.errors import CostLimitError, ProgramFormatError
from verifier.fixedpoint import ACT_BITS
from verifier.ops import lookup
from verifier.program import Program


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
    sized_by_values: bool = False  # its output size follows from input values, not shapes (metered on replays too)
    width: int = 0  # the width (1 to ACT_BITS) its first output is proven within (_plan_ranges), 0 for none


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
                              cost.base(node.op), cost.weight(node.op), relu, sum(1 for o in node.outputs if o),
                              sized_by_values=_sized_by_values(op)))
    fixed = set(program.constants)  # tensors the program and the feed shapes alone decide
    for node in plans:
        if getattr(node.op, "reads_only_shapes", False) or all(name in fixed for name in node.inputs if name):
            node.shape_only = True
            fixed.update(name for name in node.outputs if name)
    keep = {info.name for info in program.outputs}
    _plan_placements(plans, keep | set(program.constants))
    program._proven_widths = _plan_ranges(plans, _feed_widths(program))
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
    program._replayable = _names_made_once(program, plans)
    program._shape_values = {}  # (node indices of these plans: interpreter._shape_values)
    return plans


def proven_widths(program: Program) -> dict[str, int]:
    """Tensor name -> the width (1 to ACT_BITS) its values are proven within, |v| <= qmax(width), for the tensors
    _plan_ranges proves: the fixed-point feeds and the first outputs of ops with a range rule, each name as its
    last maker leaves it (what a program output holds)."""
    plan(program)
    return dict(program._proven_widths)


def _feed_widths(program: Program) -> dict[str, int]:
    """The fixed-point feeds' width: execute takes validated feeds, checked within 16 bits by verifier/feeds.py."""
    return {info.name: ACT_BITS for info in program.inputs if info.frac is not None}


def _names_made_once(program: Program, plans: list[NodePlan]) -> bool:
    """Whether every tensor name is made by one node and is no feed or constant: a replay preloads the cached
    shape-only outputs before the nodes run, which needs each name to hold one value for the whole run."""
    made = set(program.constants) | {info.name for info in program.inputs}
    for node in plans:
        for name in node.outputs:
            if name in made:
                return False
            if name:
                made.add(name)
    return True


def _sized_by_values(op) -> bool:
    """Whether an op's output size may follow from its inputs' values (its own output_size, not declared a function
    of shapes alone)."""
    return hasattr(op, "output_size") and not getattr(op, "output_size_from_shapes", False)


# -- range facts -----------------------------------------------------------------------------------------------


def _plan_ranges(plans: list[NodePlan], feeds: dict[str, int]) -> dict[str, int]:
    """Give each op that takes them (`takes_proven_ranges`) the widths its inputs are proven within: the fixed-point
    feeds (`feeds`, _feed_widths), and tensors made by an op whose `range_bits` rule (verifier/ops/_ranges.py)
    proves its first output within qmax(width), for widths of 1 to ACT_BITS. Facts follow the nodes in order, as
    the tensors they name are made (a name made again takes the new maker's fact); constants have none. The fast
    path then skips checking those operands' range (nothing out of range can reach them); the reference path
    checks the facts (ops/_operands.narrowed). Returns the facts as the last node leaves them."""
    proven: dict[str, int] = dict(feeds)
    for node in plans:
        widths = tuple(proven.get(name, 0) for name in node.inputs)
        if getattr(node.op, "takes_proven_ranges", False) and any(widths):
            node.hints = {"proven": widths}
        width = node.width = _range_bits(node, widths)
        for position, name in enumerate(node.outputs):
            if name and position == 0 and width:
                proven[name] = width
            elif name:
                proven.pop(name, None)
    return proven


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
