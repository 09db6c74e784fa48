from verifier.ops.depthtospace import DepthToSpace


class SpaceToDepth:
    """(N, C, H, W) -> (N, C * b**2, H / b, W / b), moving values only (ONNX's DCR order, or CRD; torch's
    PixelUnshuffle is CRD); frac unchanged."""

    compile = staticmethod(DepthToSpace.compile)  # (the same block size and DCR / CRD order)

    @staticmethod
    def run(inputs, attrs, consts):
        x, b = inputs[0], attrs["block"]
        if x.ndim != 4 or x.shape[2] % b or x.shape[3] % b:
            raise ValueError(f"SpaceToDepth: input of shape {x.shape} (needs 4 dims, H and W divisible by {b})")
        n, c, h, w = x.shape
        order = (0, 1, 3, 5, 2, 4) if attrs.get("crd") else (0, 3, 5, 1, 2, 4)
        y = x.reshape(n, c, h // b, b, w // b, b).transpose(order)
        return [y.reshape(n, c * b * b, h // b, w // b)]
