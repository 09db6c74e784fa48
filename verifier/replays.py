"""Replays: the runs whose feed shapes a completed run has seen (verifier/interpreter.py says why they need no
metering). A replay runs its nodes as one Python function made for it: straight-line code that reads each tensor
from a local variable, checks the input shapes the recorded run saw, calls each node's bound function (its op's
`bind` for those shapes) or its run, and frees each tensor after its last reader, as the metered loop does.
Consecutive bound Dense layers, each handing its one result to the next alone, run as one chain (_chained). A
small model's run is then its kernels and little else.

On the fast path a replay keeps some tensors as int16 arrays rather than int64 (_narrow_tensors): those proven within
16 bits (the interpreter's range facts: NodePlan.width) whose maker can write them so (a bound function's `narrowed`,
or a Concat whose inputs are computed into it) and whose every reader takes int16 as it takes int64 (ops marked
`reads_narrow`: Conv, MaxPool, GlobalAveragePool, Concat, whose kernels widen each value as they read it). The values
are the same, so are the bits; a CNN's activations then move a quarter of the bytes between its layers.

The function is generated as source text from indices alone - tensors are t0, t1, ...; constants, shapes, nodes and
bound functions are names in its namespace - so nothing a program holds (names, attributes) becomes code."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from verifier.errors import ProgramRunError
from verifier.fixedpoint import ACT_BITS
from verifier.kernels import direct


@dataclass
class Replay:
    """What a completed metered run with some feed shapes charged and ran: a later run with those feed shapes
    replays it (interpreter.execute). steps: (node index, its input shapes, its (units, size) when sized by values)
    per node that ran; start: the tensors a replay starts from, the constants and the cached shape-only nodes'
    outputs."""

    units: int
    peak: int  # elements alive at once, at most
    largest: int  # elements of the largest tensor
    steps: tuple
    start: dict
    # (kernel path, limb setting) -> (per step: (node, index, shapes, metering, bound function or None), the function)
    bound: dict = field(default_factory=dict)


# Programs of more nodes stay on the metered loop: making a replay's code costs about 45 us a node, once per program
# and feed shapes - 3.5 times a first, metered run of as many Relus on tiny tensors (scripts/bench_replay.py --chain
# 4000) - which a hostile program of MAX_NODES could otherwise multiply; real models have tens to a few thousand.
REPLAY_MAX_NODES = 4096

# what an op finds in its inputs (the metered loop's _call reports the same)
RUN_ERRORS = (ValueError, IndexError, ZeroDivisionError, OverflowError)


def run_error(node, exc: Exception) -> ProgramRunError:
    return ProgramRunError(f"node {node.name!r} ({node.op.__name__}) cannot run on these inputs: {exc}")


def replay_function(replay: Replay, key: tuple, program, plans: list, cached, meter: Callable,
                    outputs: Callable, slot: Callable) -> Callable:
    """The replay's function for key = (kernel path, limb setting), made on first use: feeds -> outputs, or None
    when a node's input shapes (or a value-sized op's metering) differ from the recorded run's. `cached`: the
    interpreter's entry for these feed shapes; meter(node, inputs) its metering and outputs(node, index, inputs,
    cached, pending, narrow) its run of a node that has no bound function (`narrow`: its Concat's output is int16),
    and slot(into, layouts, pending, narrow) the slice a bound node computed into a Concat's output takes."""
    made = replay.bound.get(key)
    if made is None:
        fast = key[0] == "fast"
        steps = [(plans[index], index, shapes, metered, _bind(plans[index], shapes, replay.start) if fast else None)
                 for index, shapes, metered in replay.steps]
        steps = _chained(steps)
        output_names = tuple(info.name for info in program.outputs)
        narrow = _narrow_tensors(steps, output_names) if fast else set()
        steps = [step[:4] + (step[4].narrowed,) if step[0].outputs[:1] and step[0].outputs[0] in narrow
                 and step[4] is not None else step for step in steps]
        narrow_slots = {index for node, index, *_ in steps if node.outputs[:1] and node.outputs[0] in narrow
                        and getattr(node, "gathers", False)}
        narrow_slots |= {index for node, index, *_ in steps if getattr(node, "into", None) is not None
                         and node.into[0] in narrow_slots}

        def unbound(node, index: int, inputs: list, pending: dict, narrow: bool = False) -> list:
            return outputs(node, index, inputs, cached, pending, narrow)

        def place(into: tuple, pending: dict, narrow: bool = False):
            return slot(into, cached.layouts, pending, narrow)

        made = replay.bound[key] = (steps, _generated(steps, replay.start, cached.feed_names, output_names, meter,
                                                      unbound, place, narrow_slots))
    return made[1]


def _bind(node, shapes: tuple, start: dict):
    """The node's op bound to these input shapes (op.bind), or None when it has no bind or declines. Inputs the
    replay starts from (constants, cached shape-only outputs: the same values on every replay) are given as `fixed`.
    A node computed into its Concat's output (`into`) is bound where its function `places` its result: the replay
    then calls it with its slice (interpreter._slot)."""
    bind = getattr(node.op, "bind", None)
    if bind is None or node.relu or node.gathers:
        return None
    fixed = {position: start[name] for position, name in enumerate(node.inputs) if name and name in start}
    try:
        bound = bind(shapes, node.attrs, node.consts, fixed, **node.hints)
    except Exception:  # (attributes a hostile program broke: the op's run, the authority, reports them)
        return None
    return bound if node.into is None or getattr(bound, "places", False) else None


@dataclass
class Chain:
    """Consecutive nodes run as one step (_chained): the first's inputs, the last's outputs, the tensors that die
    in any of them (none made inside); named and reported as its first node."""

    nodes: tuple
    dies: tuple

    @property
    def name(self) -> str:
        return self.nodes[0].name

    @property
    def op(self) -> type:
        return self.nodes[0].op

    @property
    def inputs(self) -> tuple:
        return self.nodes[0].inputs

    @property
    def outputs(self) -> tuple:
        return self.nodes[-1].outputs


def _chained(steps: list) -> list:
    """The steps with each run of bound direct GEMMs (direct.Link) where a node's one output is the next node's
    operand alone and dies there - a Dense stack's layers - made one step: direct.chain_kernel, the same integers
    without the int64 tensors between them."""
    runs: list[list] = []
    for step in steps:
        link = getattr(step[4], "link", None)
        before = runs[-1][-1] if runs else None
        if link is not None and before is not None and _passes_to(before, step):
            runs[-1].append(step)
        else:
            runs.append([step])
    return [run[0] if len(run) == 1 else _chain_step(run) for run in runs]


def _passes_to(before: tuple, step: tuple) -> bool:
    """Whether `before`'s node hands its one output to `step`'s node alone, as the operand of a link its link feeds."""
    previous, node = before[0], step[0]
    link = getattr(before[4], "link", None)
    named = [name for name in previous.outputs if name]
    return (link is not None and before[3] is None and step[3] is None and len(named) == 1
            and node.inputs[:1] == (named[0],) and named[0] not in node.inputs[1:] and named[0] in node.dies
            and link.feeds(step[4].link))


def _narrow_tensors(steps: list, output_names: tuple) -> set:
    """The tensors the replay keeps as int16 arrays (module docstring): each the first output of a node proven within
    16 bits whose step makes it so - a bound function carrying `narrowed`, or a Concat gathering inputs computed into
    it (interpreter._gather) - read by some node, by nodes whose op `reads_narrow` alone, and no program output."""
    readers: dict[str, list] = {}
    for node, *_ in steps:
        for name in node.inputs:
            if name:
                readers.setdefault(name, []).append(node)
    narrow = set()
    for node, _, _, _, step in steps:
        if isinstance(node, Chain) or not node.outputs or not 0 < node.width <= ACT_BITS or node.into is not None:
            continue  # (a node computed into a Concat's output: its storage is the Concat's)
        name = node.outputs[0]
        makes = hasattr(step, "narrowed") if step is not None else node.gathers
        if (makes and name and name not in output_names and name in readers
                and all(type(reader) is not Chain and getattr(reader.op, "reads_narrow", False)
                        for reader in readers[name])):
            narrow.add(name)
    return narrow


def _chain_step(run: list) -> tuple:
    kernel = direct.chain_kernel([step[4].link for step in run])
    nodes = tuple(step[0] for step in run)
    inside = {name for node in nodes[:-1] for name in node.outputs if name}
    dies = tuple(name for node in nodes for name in node.dies if name not in inside)
    chain = Chain(nodes, dies)
    first = run[0]
    return chain, first[1], first[2], None, lambda inputs: [kernel(inputs[0])]


def _generated(steps: list, start: dict, feed_names: tuple, output_names: tuple, meter: Callable,
               unbound: Callable, place: Callable, narrow_slots: set) -> Callable:
    """Source text for the steps, compiled: one statement group per node (`narrow_slots`: the indices of the nodes
    whose Concat output, made by them or their slot, is int16)."""
    namespace = {"meter": meter, "unbound": unbound, "place": place, "run_error": run_error,
                 "RUN_ERRORS": RUN_ERRORS}

    def constant(value) -> str:
        name = f"k{len(namespace)}"
        namespace[name] = value
        return name

    local: dict[str, str] = {}  # tensor name -> its variable, while it lives
    variables = (f"t{number}" for number in itertools.count())
    lines = ["def replay(feeds):", "    pending = {}"]
    for name in feed_names:
        local[name] = next(variables)
        lines.append(f"    {local[name]} = feeds[{constant(name)}]")
    for node, index, shapes, metered, step in steps:
        arguments, checks = [], []
        for name, shape in zip(node.inputs, shapes):
            if not name:
                arguments.append("None")
            elif name in local:
                arguments.append(local[name])
                checks.append(f"{local[name]}.shape != {constant(shape)}")
            else:  # (a constant or a cached shape-only output: the same array on every replay)
                arguments.append(constant(start[name]))
        inputs = "[" + ", ".join(arguments) + "]"
        if checks:
            lines.append(f"    if {' or '.join(checks)}:")
            lines.append("        return None")
        node_name = constant(node)
        if metered is not None:  # (its output size follows from values: metered again)
            lines.append(f"    if meter({node_name}, {inputs}) != {constant(metered)}:")
            lines.append("        return None")
        narrow = ", True" * (index in narrow_slots)
        if step is None:
            lines.append(f"    out = unbound({node_name}, {index}, {inputs}, pending{narrow})")
        else:
            into = "" if getattr(node, "into", None) is None else f", place({constant(node.into)}, pending{narrow})"
            lines += ["    try:", f"        out = {constant(step)}({inputs}{into})", "    except RUN_ERRORS as exc:",
                      f"        raise run_error({node_name}, exc) from exc"]
        for position, name in enumerate(node.outputs):
            if name:
                local[name] = next(variables)
                lines.append(f"    {local[name]} = out[{position}]")
        dead = [local.pop(name) for name in node.dies if name in local]
        if dead:
            lines.append(f"    del {', '.join(dead)}")
    results = [f"{constant(name)}: {local[name] if name in local else constant(start[name])}" for name in output_names]
    lines.append("    return {" + ", ".join(results) + "}")
    exec(compile("\n".join(lines), "<vinfer replay>", "exec"), namespace)  # noqa: S102 (indices only: see above)
    return namespace["replay"]
