import math
import re

import numpy as np

from verifier import cost
from verifier.errors import OutOfRangeError
from verifier.fixedpoint import requantize
from verifier.ops import CompileContext, Lowering

_TERM = re.compile(r"^[A-Za-z]*(\.\.\.)?[A-Za-z]*$")


class Einsum:
    """y = requantize(numpy einsum of the int64 operands, sum of their fracs, fy) at the output's calibrated
    frac fy: every product of the q's and every sum is exact in int64, so the order of the sums cannot change
    a bit. Before it runs, the bound prod(max |q_i|) * (terms summed per output) < 2**63 is checked (a
    clear error otherwise; two 16-bit operands allow 2**33 terms). The equation is made explicit at compile
    time (implicit output: the letters used once, in alphabetical order, after any broadcast dims).
    Plain integer operands (all of them) multiply and sum exactly, without fracs."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        equation = str(ctx.attr("equation", "")).replace(" ", "")
        terms, output = _parse(ctx, equation, len(ctx.inputs))
        fracs = [x.frac for x in ctx.inputs]
        attrs = {"equation": ",".join(terms) + "->" + output}
        if all(f is None for f in fracs):
            return Lowering(out_fracs=[None], attrs=attrs)
        if any(f is None for f in fracs):
            ctx.unsupported("mixes fixed-point and plain integer operands")
        out_frac = ctx.out_frac()
        attrs.update({"acc_frac": sum(fracs), "out_frac": out_frac})
        return Lowering(out_fracs=[out_frac], attrs=attrs)

    output_size_from_shapes = True

    @staticmethod
    def run(inputs, attrs, consts):
        loop, output = _volumes(attrs["equation"], [x.shape for x in inputs])
        bound = (loop // max(output, 1)) * math.prod(max(int(x.max(initial=0)), -int(x.min(initial=0))) for x in inputs)
        if bound >= 1 << 63:
            raise OutOfRangeError(f"Einsum {attrs['equation']} could exceed int64: bound {bound} >= 2**63")
        acc = np.einsum(attrs["equation"], *inputs, dtype=np.int64)
        acc = np.asarray(acc, dtype=np.int64)
        if "out_frac" not in attrs:
            return [acc]
        return [requantize(acc, attrs["acc_frac"], attrs["out_frac"])]

    @staticmethod
    def cost(shapes, attrs, consts):
        """Units: one int64 multiply-add per operand per point of the loop (every letter's range), plus one
        pass over the operands and the output."""
        (loop, output), operands = _volumes(attrs["equation"], shapes), len(shapes)
        elements = sum(math.prod(int(d) for d in s) for s in shapes) + output
        return loop * operands * cost.INT64_MAC + elements * cost.ARITH

    @staticmethod
    def output_size(inputs, attrs, consts):
        return _volumes(attrs["equation"], [x.shape for x in inputs])[1]


def _parse(ctx: CompileContext, equation: str, count: int) -> tuple[list[str], str]:
    """The input terms and the explicit output term; refuses what numpy's einsum would."""
    left, arrow, output = equation.partition("->")
    terms = left.split(",")
    if len(terms) != count or not all(_TERM.match(t) for t in terms + [output]):
        ctx.unsupported(f"equation {equation!r} does not fit {count} operands")
    letters = "".join(t.replace("...", "") for t in terms)
    if not arrow:
        output = ("..." if any("..." in t for t in terms) else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1))
    if len(set(output.replace("...", ""))) != len(output.replace("...", "")) or not set(output) - {"."} <= set(letters):
        ctx.unsupported(f"equation {equation!r}: output letters must appear in the inputs, once each")
    for term, x in zip(terms, ctx.inputs):
        named = len(term.replace("...", ""))
        if x.shape is not None and (len(x.shape) < named or ("..." not in term and len(x.shape) != named)):
            ctx.unsupported(f"term {term!r} does not match an input of rank {len(x.shape)}")
    return terms, output


def _volumes(equation: str, shapes) -> tuple[int, int]:
    """(points of the loop over every letter and broadcast dim, elements of the output): Python ints."""
    left, output = equation.split("->")
    sizes: dict[str, int] = {}
    broadcast: list[tuple[int, ...]] = []
    for term, shape in zip(left.split(","), shapes):
        shape = tuple(int(d) for d in shape)
        head, _, tail = term.partition("...")
        if len(head) + len(tail) > len(shape) or ("..." not in term and len(term) != len(shape)):
            raise ValueError(f"Einsum term {term!r} does not match an input of shape {shape}")
        middle = shape[len(head):len(shape) - len(tail)]
        broadcast.append(middle)
        for letter, size in zip(head + tail, shape[:len(head)] + shape[len(shape) - len(tail):]):
            if sizes.setdefault(letter, size) != size and 1 not in (size, sizes[letter]):
                raise ValueError(f"Einsum letter {letter!r} has sizes {sizes[letter]} and {size}")
            sizes[letter] = max(sizes[letter], size)
    dims = math.prod(np.broadcast_shapes(*broadcast)) if broadcast else 1
    loop = math.prod(sizes.values()) * dims
    out = math.prod(sizes[c] for c in output.replace("...", "")) * (dims if "..." in output else 1)
    return loop, out
