"""Helpers the verifier tests import (conftest holds the fixtures)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "verifier" / "examples"


def ort_run(path_or_model, feeds):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    source = path_or_model if isinstance(path_or_model, (str, Path)) else path_or_model.SerializeToString()
    session = ort.InferenceSession(str(source) if isinstance(source, Path) else source, options,
                                   providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def with_output_bits(program, bits):
    """The same program with every output committed at `bits` (None: int64, as formats 1-3 commit them)."""
    from dataclasses import replace

    from verifier.program import Program

    return Program(program.inputs, [replace(info, bits=bits) for info in program.outputs], program.nodes,
                   program.constants, program.fracs, program.meta)
