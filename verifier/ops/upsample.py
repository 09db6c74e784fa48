from verifier.ops.resize import Resize


class Upsample(Resize):
    """Upsample (opsets 7-9; Resize-10 under its old name): nearest or linear by the constant scales (an
    attribute at opset 7, an input at 9), asymmetric coordinates, nearest rounding down; the integer
    semantics of Resize."""
