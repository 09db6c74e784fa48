"""Errors the verifier raises. Every user mistake maps to one of these, with a message that names
what was wrong (the op, the node, the input); none of them is a bare traceback for the CLI.

    VerifierError
    ├── ModelLoadError        the ONNX file cannot be read or is malformed
    ├── UnsupportedOpError    an op (or attribute value) the compiler cannot lower
    ├── CompileError          any other failure while compiling (shapes, calibration)
    ├── ProgramFormatError    program bytes that do not decode
    ├── FeedError             missing/extra feed, wrong shape or dtype, NaN/inf
    ├── OutOfRangeError       a value that does not fit the program's declared range
    ├── CostLimitError        a program above the protocol's maximum cost
    └── ProgramRunError       a node that cannot run on these inputs (an index outside its axis, a value in
                              no category), named with the op's own message
"""


class VerifierError(Exception):
    """Base of every error the verifier raises on bad input."""


class ModelLoadError(VerifierError):
    pass


class UnsupportedOpError(VerifierError):
    def __init__(self, op_type: str, node_name: str, opset: int | None = None, reason: str = ""):
        self.op_type, self.node_name, self.opset = op_type, node_name, opset
        where = f"node {node_name!r}" + (f" (opset {opset})" if opset is not None else "")
        detail = f": {reason}" if reason else ""
        super().__init__(f"unsupported op {op_type!r} at {where}{detail}")


class CompileError(VerifierError):
    pass


class ProgramFormatError(VerifierError):
    pass


class FeedError(VerifierError):
    pass


class OutOfRangeError(VerifierError):
    pass


class CostLimitError(VerifierError):
    pass


class ProgramRunError(VerifierError):
    pass
