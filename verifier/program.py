"""The compiled program: its parts, and its frozen bytes (docs/fixed-point.md, "Program bytes").

    magic    b"VFP" + version byte: 1, or 2 for a program with 8-bit products (NARROWING_ATTRS), 3 for one
             with per-feature input scales (TensorInfo.feature_shifts), or 4 for one that commits an output at
             fewer than 64 bits (TensorInfo.bits)
    header   u32 length + UTF-8 JSON, keys sorted, no whitespace, integers and strings only
    tensors  canonical tensor bytes (verifier.encoding) of every integer array the program carries:
             "c/<name>" for constant tensors, "n<index>/<key>" for node constants (weights, tables)

Program.hash is keccak256 of these bytes. Arrays are stored in the narrowest canonical integer dtype that
holds them (a deterministic choice from their values) and widened to int64 when loaded.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from verifier.encoding import decode_tensors, encode_tensors, keccak_hex
from verifier.errors import ProgramFormatError, VerifierError
from verifier.fixedpoint import MATMUL_BITS

MAGIC = b"VFP"
VERSION = 4  # the newest format this verifier reads and writes; it writes the oldest a program fits
NARROWING_ATTRS = ("operand_bits", "out_bits")  # 8-bit products (format 2): a format-1 reader would ignore them
MAX_HEADER = 64 << 20
MAX_FEATURE_SHIFT = 32
COMMITTED_BITS = (8, 16, 32)  # output widths below int64 (format 4): the canonical dtypes int8, int16, int32

_ONNX_TYPES = {"float32": "tensor(float)", "float64": "tensor(double)", "float16": "tensor(float16)",
               "int64": "tensor(int64)", "int32": "tensor(int32)", "int8": "tensor(int8)", "uint8": "tensor(uint8)",
               "bool": "tensor(bool)"}


@dataclass(frozen=True)
class TensorInfo:
    """A program input or output. `dtype` is the model's own dtype (what `run` takes and returns);
    `frac` is the fixed-point fraction bits of its integer form (None for plain integer tensors).
    `feature_shifts` (inputs only, format 3): feature f of the last axis is quantized at frac + shift[f]
    (compiler/feature_scales.py); None when every feature shares `frac`.
    `bits` (outputs only, format 4): the width the output's integers are committed at - returned, encoded and
    hashed as int8, int16 or int32, the narrowest that holds the range the compiler proved for them
    (compiler/committed.py); None: int64, as in the older formats."""

    name: str
    shape: tuple
    dtype: str
    frac: int | None
    feature_shifts: tuple | None = None
    bits: int | None = None

    @property
    def scale(self) -> float | None:
        return None if self.frac is None else 2.0 ** -self.frac

    def steps(self) -> np.ndarray | None:
        """The quantization step of each value (broadcasts against the tensor): 2**-frac, per feature of the
        last axis when the input has feature shifts; None for plain integer tensors."""
        if self.frac is None:
            return None
        return 2.0 ** -(self.frac + np.asarray(self.feature_shifts or 0, dtype=np.float64))

    @property
    def type(self) -> str:  # onnxruntime's NodeArg.type
        return _ONNX_TYPES.get(self.dtype, f"tensor({self.dtype})")

    def to_json(self) -> dict:
        data = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "frac": self.frac}
        if self.feature_shifts is not None:  # (absent otherwise: older programs keep their bytes)
            data["feature_shifts"] = list(self.feature_shifts)
        if self.bits is not None:  # (as feature_shifts)
            data["bits"] = self.bits
        return data

    @classmethod
    def from_json(cls, data: dict) -> TensorInfo:
        shifts = data.get("feature_shifts")
        if shifts is not None:
            features = data["shape"][-1] if data["shape"] else None
            if (data["frac"] is None or not isinstance(shifts, list) or features not in (None, len(shifts))
                    or not all(type(s) is int and 0 <= s <= MAX_FEATURE_SHIFT for s in shifts)):
                raise ProgramFormatError(f"input {data['name']!r}: malformed feature_shifts")
            shifts = tuple(shifts)
        bits = data.get("bits")
        if bits is not None and (type(bits) is not int or bits not in COMMITTED_BITS):
            raise ProgramFormatError(f"output {data['name']!r}: committed bits {bits!r}, not one of {COMMITTED_BITS}")
        return cls(data["name"], tuple(data["shape"]), data["dtype"], data["frac"], shifts, bits)


@dataclass
class ProgramNode:
    op: str
    name: str
    inputs: list  # tensor names; "" for an absent optional input or an absorbed constant
    outputs: list
    attrs: dict = field(default_factory=dict)
    consts: dict = field(default_factory=dict)
    out_fracs: list = field(default_factory=list)


@dataclass
class Program:
    inputs: list
    outputs: list
    nodes: list
    constants: dict = field(default_factory=dict)  # name -> int64 array fed like a tensor
    fracs: dict = field(default_factory=dict)  # tensor name -> frac (None: plain integer)
    meta: dict = field(default_factory=dict)  # opset, producer, compile notes: informative, still hashed
    _bytes: bytes | None = field(default=None, repr=False, compare=False)

    # -- bytes ---------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        if self._bytes is None:
            self._bytes = self._serialize()
        return self._bytes

    @property
    def hash(self) -> str:
        return keccak_hex(self.to_bytes())

    def save(self, path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path) -> Program:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ProgramFormatError(f"cannot read program {path}: {exc.strerror}") from exc
        return cls.from_bytes(data)

    @staticmethod
    def is_program(data: bytes) -> bool:
        return len(data) >= 8 and data[:3] == MAGIC

    def _serialize(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        for name, value in self.constants.items():
            arrays[f"c/{name}"] = _narrow(value)
        nodes = []
        for index, node in enumerate(self.nodes):
            for key, value in node.consts.items():
                arrays[f"n{index}/{key}"] = _narrow(value)
            nodes.append({"op": node.op, "name": node.name, "inputs": list(node.inputs),
                          "outputs": list(node.outputs), "attrs": node.attrs, "consts": sorted(node.consts),
                          "out_fracs": list(node.out_fracs)})
        header = {"inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
                  "nodes": nodes, "constants": list(self.constants), "fracs": self.fracs, "meta": self.meta}
        _check_integer_only(header)
        header_bytes = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        version = _format_version(self)
        return MAGIC + bytes([version]) + struct.pack("<I", len(header_bytes)) + header_bytes + encode_tensors(arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Program:
        data = bytes(data)
        if not cls.is_program(data):
            raise ProgramFormatError("not a vinfer program (bad magic)")
        if not 1 <= data[3] <= VERSION:
            raise ProgramFormatError(f"program format version {data[3]}, this verifier reads 1 to {VERSION}")
        (length,) = struct.unpack("<I", data[4:8])
        if length > MAX_HEADER or 8 + length > len(data):
            raise ProgramFormatError("program header is truncated")
        try:
            header = json.loads(data[8 : 8 + length].decode("utf-8"))
            arrays = decode_tensors(data[8 + length :])
            program = cls._from_parts(header, arrays)
        except ProgramFormatError:
            raise
        except (VerifierError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProgramFormatError(f"malformed program: {exc}") from exc
        if data[3] != _format_version(program):  # e.g. 8-bit products labelled format 1, which a
            # format-1 verifier would run without narrowing: a different result, so refused everywhere
            raise ProgramFormatError(f"program format version {data[3]} does not match its contents "
                                     f"(format {_format_version(program)})")
        program._bytes = data
        return program

    @classmethod
    def _from_parts(cls, header: dict, arrays: dict) -> Program:
        nodes = []
        for index, raw in enumerate(header["nodes"]):
            consts = {key: arrays.pop(f"n{index}/{key}").astype(np.int64) for key in raw["consts"]}
            if not isinstance(raw["op"], str) or not all(isinstance(n, str) for n in raw["inputs"] + raw["outputs"]):
                raise ProgramFormatError(f"node {index}: malformed")
            nodes.append(ProgramNode(raw["op"], str(raw["name"]), list(raw["inputs"]), list(raw["outputs"]),
                                     dict(raw["attrs"]), consts, list(raw["out_fracs"])))
        constants = {name: arrays.pop(f"c/{name}").astype(np.int64) for name in header["constants"]}
        if arrays:
            raise ProgramFormatError(f"unreferenced arrays in program: {sorted(arrays)[:3]}")
        inputs = [TensorInfo.from_json(t) for t in header["inputs"]]
        if any(info.bits is not None for info in inputs):
            raise ProgramFormatError("committed bits are for outputs; an input has them")
        return cls(inputs=inputs, outputs=[TensorInfo.from_json(t) for t in header["outputs"]],
                   nodes=nodes, constants=constants, fracs=dict(header["fracs"]), meta=dict(header["meta"]))

    def validate(self) -> None:
        """Cheap structural checks before running (the gateway's and execute_job's): every op is in this
        verifier's op table, and every tensor a node reads is an input, a constant or an earlier output."""
        from verifier.errors import UnsupportedOpError
        from verifier.ops import lookup

        known = {info.name for info in self.inputs} | set(self.constants)
        for node in self.nodes:
            if lookup(node.op) is None:
                raise UnsupportedOpError(node.op, node.name, self.meta.get("opset"), "not in this verifier's op table")
            missing = [name for name in node.inputs if name and name not in known]
            if missing:
                raise ProgramFormatError(f"node {node.name!r} reads {missing[0]!r} before anything computes it")
            widths = [node.attrs[key] for key in NARROWING_ATTRS if key in node.attrs]
            if any(width not in MATMUL_BITS or isinstance(width, bool) for width in widths):
                raise ProgramFormatError(f"node {node.name!r}: operand width {widths} is not one of {MATMUL_BITS}")
            known.update(name for name in node.outputs if name)
        absent = [info.name for info in self.outputs if info.name not in known]
        if absent:
            raise ProgramFormatError(f"program output {absent[0]!r} is never computed")

    # -- summary ---------------------------------------------------------------------------------------
    def parameter_count(self) -> int:
        total = sum(int(v.size) for v in self.constants.values())
        return total + sum(int(v.size) for node in self.nodes for v in node.consts.values())

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return dict(sorted(counts.items()))


def _narrow(value: np.ndarray) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype.kind not in "iub":
        raise ProgramFormatError(f"program arrays must be integers, got {value.dtype}")
    value = value.astype(np.int64)
    if value.size == 0:
        return value
    low, high = int(value.min()), int(value.max())
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return value.astype(dtype)
    return value


def _check_integer_only(value, where: str = "header") -> None:
    if isinstance(value, float):
        raise ProgramFormatError(f"float in program {where}: the run is integer-only")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_integer_only(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_integer_only(item, where)
    elif isinstance(value, (np.integer, np.floating, np.ndarray)):
        raise ProgramFormatError(f"numpy value in program {where}: convert to int/list")


def _format_version(program: Program) -> int:
    """The oldest program format that holds the program: 4 when an output is committed at fewer than 64 bits, 3
    when an input has per-feature scales, 2 when a node narrows its products to 8 bits, else 1 (so every program
    keeps the bytes, and the hash, it had before the newer formats; an older verifier refuses a program whose
    meaning it would miss)."""
    if any(info.bits is not None for info in program.outputs):
        return 4
    if any(info.feature_shifts is not None for info in program.inputs):
        return 3
    return 2 if any(key in node.attrs for node in program.nodes for key in NARROWING_ATTRS) else 1
