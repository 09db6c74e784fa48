"""Pass 7, on the fused program: the width each output is committed at (TensorInfo.bits, program format 4).

Every run returns, encodes and hashes its outputs, and the gateway stores them; a worker's hash of them is its
commitment. An output proven to lie within 16 bits - every requantized activation is - is committed as int16
(int8 within 8 bits) rather than int64: a quarter (an eighth) of the bytes to hash, store and fetch, and the same
values. The widths are the interpreter's own range facts (node_plans.proven_widths), frozen into the program here,
so that a program's output bytes never depend on which verifier's rules proved them. The interpreter checks the
values against the width wherever its own rules do not prove it, and always on the reference path (a program that
claims too narrow a width fails the run: interpreter.committed).
"""

from __future__ import annotations

from dataclasses import replace

from verifier.node_plans import proven_widths
from verifier.program import COMMITTED_BITS, Program


def commit_output_widths(program: Program) -> Program:
    """The program with each output's `bits` set to the narrowest committed width that holds its proven range
    (None, int64, where no range is proven: plain integer outputs such as indices or labels, constants)."""
    widths = proven_widths(program)
    outputs = [replace(info, bits=committed_bits(widths.get(info.name, 0))) for info in program.outputs]
    return Program(inputs=program.inputs, outputs=outputs, nodes=program.nodes, constants=program.constants,
                   fracs=program.fracs, meta=program.meta)


def committed_bits(width: int) -> int | None:
    """The narrowest of COMMITTED_BITS holding |v| <= qmax(width), None for width 0 (nothing proven)."""
    return next((bits for bits in COMMITTED_BITS if 0 < width <= bits), None)
