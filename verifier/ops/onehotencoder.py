import numpy as np

from verifier.fixedpoint import quantize
from verifier.ops import CompileContext, Lowering


class OneHotEncoder:
    """ai.onnx.ml one-hot encoding of integer categories (skl2onnx's OneHotEncoder): y[..., k] = 1 where x
    equals cats_int64s[k], else 0, as 1 << fy at the output's frac (exact). A plain integer x is compared as is;
    a fixed-point x at frac fx matches category c where q = c * 2**fx (the reference compares the value itself,
    so only an integer value matches). With zeros = 0 a value in no category is an error, as in the reference,
    raised when the node runs (the job's deterministic error outcome). String categories are refused."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        categories = ctx.attr("cats_int64s")
        if not categories:
            ctx.unsupported("string categories (cats_strings): strings are not tensors here")
        x_frac = ctx.inputs[0].frac
        keys = np.asarray(categories, dtype=np.int64)
        if x_frac is not None:  # (a category no fixed-point value can equal is never matched)
            keys = quantize(keys.astype(np.float64), x_frac, 63) if x_frac >= 0 else keys >> -x_frac
            exact = keys * 2.0 ** -x_frac == np.asarray(categories, dtype=np.float64)
            keys = np.where(exact, keys, np.iinfo(np.int64).min)
        out_frac = ctx.out_frac()
        return Lowering(out_fracs=[out_frac], attrs={"out_frac": out_frac, "zeros": int(ctx.attr("zeros", 1))},
                        consts={"keys": keys})

    @staticmethod
    def run(inputs, attrs, consts):
        matches = inputs[0][..., None] == consts["keys"]
        if not attrs["zeros"] and not matches.any(axis=-1).all():
            raise ValueError("OneHotEncoder: a value is in no category (zeros=0; export with "
                             "handle_unknown='ignore' to encode it as all zeros)")
        return [matches.astype(np.int64) << attrs["out_frac"]]

    @staticmethod
    def output_size(inputs, attrs, consts):
        return int(inputs[0].size) * int(consts["keys"].size)
