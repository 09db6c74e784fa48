from verifier.ops import CompileContext, Lowering


class DepthToSpace:
    """(N, C, H, W) -> (N, C / b**2, H * b, W * b), moving values only (ONNX's DCR or CRD order: torch's
    PixelShuffle is CRD); frac unchanged."""

    @staticmethod
    def compile(ctx: CompileContext) -> Lowering:
        mode = ctx.attr("mode", "DCR")
        if mode not in ("DCR", "CRD"):
            ctx.unsupported(f"mode {mode!r}")
        attrs = {"block": int(ctx.attr("blocksize")), "crd": int(mode == "CRD")}
        return Lowering(out_fracs=[ctx.inputs[0].frac], attrs=attrs)

    @staticmethod
    def run(inputs, attrs, consts):
        x, b = inputs[0], attrs["block"]
        n, c, h, w = _checked(x, b * b, "DepthToSpace")
        if attrs["crd"]:
            y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        else:
            y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        return [y.reshape(n, c // (b * b), h * b, w * b)]


def _checked(x, divisor: int, op: str) -> tuple[int, int, int, int]:
    if x.ndim != 4 or x.shape[1] % divisor:
        raise ValueError(f"{op}: input of shape {x.shape} (needs 4 dims, channels divisible by {divisor})")
    return x.shape
