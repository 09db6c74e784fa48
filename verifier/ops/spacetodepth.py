from verifier.ops import CompileContext, Lowering


class SpaceToDepth:
    """(N, C, H, W) -> (N, C * b**2, H / b, W / b), moving values only (ONNX's DCR order, or CRD; torch's
    PixelUnshuffle is CRD); frac unchanged."""

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
        if x.ndim != 4 or x.shape[2] % b or x.shape[3] % b:
            raise ValueError(f"SpaceToDepth: input of shape {x.shape} (needs 4 dims, H and W divisible by {b})")
        n, c, h, w = x.shape
        order = (0, 1, 3, 5, 2, 4) if attrs.get("crd") else (0, 3, 5, 1, 2, 4)
        y = x.reshape(n, c, h // b, b, w // b, b).transpose(order)
        return [y.reshape(n, c * b * b, h // b, w // b)]
