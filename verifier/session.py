"""InferenceSession: onnxruntime's surface over a fixed-point Program."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from verifier.encoding import decode_tensors, encode_tensors, keccak_hex
from verifier.errors import FeedError
from verifier.feeds import integer_feeds
from verifier.fixedpoint import dequantize
from verifier.interpreter import execute, forced_path
from verifier.program import Program


@dataclass
class FixedResult:
    outputs: dict  # name -> integer array, at the output's committed width (TensorInfo.bits; else int64)
    output_bytes: bytes  # canonical bytes of the outputs, in program order
    commitment: str  # keccak256 of output_bytes, "0x…"


class InferenceSession:
    """`InferenceSession(path_or_program, calibration=None)`: a .vfp program, program bytes, a Program, or
    an ONNX model (path / ModelProto), compiled on the fly with `calibration` and `matmul_bits`.
    `path` forces the GEMM/conv execution path ("fast" | "reference"; None: an enclosing
    interpreter.forced_path's, else each node's compiled choice); `threads=1` limits BLAS/OpenMP
    pools to one thread during each run (costs ~0.4 ms a run). Results are identical either way."""

    def __init__(self, path_or_program, calibration: dict | None = None, *, path: str | None = None,
                 threads: int | None = None, matmul_bits: int = 16, sess_options=None, providers=None,
                 provider_options=None):
        # sess_options / providers / provider_options: accepted so onnxruntime call sites work unchanged;
        # the fixed-point interpreter has one provider, the CPU
        self.program = _as_program(path_or_program, calibration, matmul_bits)
        self.path = path
        self.threads = threads

    def get_inputs(self):
        return list(self.program.inputs)

    def get_outputs(self):
        return list(self.program.outputs)

    def encode_inputs(self, feeds: dict) -> bytes:
        return encode_tensors(integer_feeds(self.program, feeds))

    def run_fixed(self, feeds: dict) -> FixedResult:
        outputs = self._execute(integer_feeds(self.program, feeds))
        data = encode_tensors(outputs)
        return FixedResult(outputs, data, keccak_hex(data))

    def run(self, output_names, feeds: dict, run_options=None) -> list[np.ndarray]:
        outputs = self._execute(integer_feeds(self.program, feeds))
        return self._to_float(outputs, output_names)

    def run_trace(self, feeds: dict) -> list[tuple[str, list[tuple[str, str]]]]:
        """Per node, the keccak of each output's canonical bytes (for comparing runs and paths)."""
        trace: list = []
        self._execute(integer_feeds(self.program, feeds), trace)
        return trace

    def decode_outputs(self, output_bytes: bytes) -> list[np.ndarray]:
        tensors = decode_tensors(output_bytes)
        if list(tensors) != [o.name for o in self.program.outputs]:
            raise FeedError(f"output bytes hold {list(tensors)}, the program gives {[o.name for o in self.program.outputs]}")
        return self._to_float(tensors, None)

    def _execute(self, feeds: dict, trace: list | None = None) -> dict:
        if self.path is None and self.threads is None:  # (no context to enter: a small model's run is microseconds)
            return execute(self.program, feeds, trace=trace)
        with forced_path(self.path), _thread_limit(self.threads):
            return execute(self.program, feeds, trace=trace)

    def _to_float(self, outputs: dict, output_names) -> list[np.ndarray]:
        infos = {o.name: o for o in self.program.outputs}
        names = list(infos) if output_names is None else list(output_names)
        unknown = [n for n in names if n not in infos]
        if unknown:
            raise FeedError(f"unknown output(s) {unknown}; the program gives {list(infos)}")
        result = []
        for name in names:
            info = infos[name]
            if info.frac is None:
                result.append(np.asarray(outputs[name]).astype(info.dtype if info.dtype != "float32" else np.int64))
            else:
                values = dequantize(outputs[name], info.frac)
                result.append(values.astype(info.dtype) if np.dtype(info.dtype).kind == "f" else values)
        return result


def _thread_limit(threads: int | None):
    if threads is None:
        import contextlib

        return contextlib.nullcontext()
    from verifier.kernels import thread_limit

    return thread_limit(threads)


def _as_program(source, calibration, matmul_bits: int = 16) -> Program:
    if isinstance(source, Program):
        return source
    if isinstance(source, (bytes, bytearray)) and Program.is_program(bytes(source)):
        return Program.from_bytes(bytes(source))
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_file():
            with path.open("rb") as handle:
                if Program.is_program(handle.read(8)):
                    return Program.load(path)
    from verifier.compiler import compile_model

    return compile_model(source, calibration=calibration, matmul_bits=matmul_bits)
