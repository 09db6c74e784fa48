import numpy as np

from verifier.fixedpoint import quantize
from verifier.ops import CompileContext, Lowering

DEFAULTS = {"int64": -1, "float": -0.0}


class LabelEncoder:
    """ai.onnx.ml LabelEncoder on numbers (skl2onnx's OrdinalEncoder and label maps): y = values[k] where x
    equals keys[k], else the default. Keys compare with x exactly: a plain integer x with int64 keys; a
    fixed-point x at frac fx with float keys quantized at fx (so x matches the key it quantizes like). Float
    values (and a float default) are quantized at the output's frac, int64 ones are plain integers. Strings
    are refused. A sorted key table and one binary search per element."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        keys, key_kind = _attribute(ctx, "keys")
        values, value_kind = _attribute(ctx, "values")
        if keys is None or values is None or len(keys) != len(values):
            ctx.unsupported("needs numeric keys and values of one length (string keys or values are not tensors)")
        default = ctx.attr(f"default_{value_kind}", DEFAULTS[value_kind])
        if ctx.attr("default_tensor") is not None:
            default = np.asarray(ctx.attr("default_tensor")).reshape(-1)[0]
        x_frac = ctx.inputs[0].frac
        if (key_kind == "float") != (x_frac is not None):
            ctx.unsupported(f"{key_kind} keys for a {'fixed-point' if x_frac is not None else 'plain integer'} input")
        keys = quantize(np.asarray(keys, np.float64), x_frac, 63) if x_frac is not None else np.asarray(keys, np.int64)
        order = np.argsort(keys, kind="stable")
        out_frac = ctx.out_frac() if value_kind == "float" else None
        if value_kind == "float":
            table = quantize(np.append(np.asarray(values, np.float64), float(default)), out_frac)
        else:
            table = np.array([int(v) for v in values] + [int(default)], dtype=np.int64)  # (exact past 2**53 too)
        return Lowering(out_fracs=[out_frac], consts={"keys": keys[order], "values": table[:-1][order],
                                                     "default": table[-1:]})

    @staticmethod
    def run(inputs, attrs, consts):
        x, keys = inputs[0], consts["keys"]
        at = np.minimum(np.searchsorted(keys, x), max(keys.size - 1, 0))
        found = keys[at] == x if keys.size else np.zeros(x.shape, dtype=bool)
        return [np.where(found, consts["values"][at] if keys.size else 0, consts["default"][0])]


def _attribute(ctx: CompileContext, name: str):
    """(numbers, "int64" | "float") of keys_* / values_* (or the opset-4 *_tensor form); (None, kind) for strings."""
    for kind, suffix in (("int64", "int64s"), ("float", "floats")):
        value = ctx.attr(f"{name}_{suffix}")
        if value is not None:
            return list(value), kind
    tensor = ctx.attr(f"{name}_tensor")
    if tensor is not None:
        array = np.asarray(tensor)
        if array.dtype.kind in "iu":
            return array.reshape(-1).tolist(), "int64"
        if array.dtype.kind == "f":
            return array.reshape(-1).tolist(), "float"
    return None, "int64"
