"""The ONNX conformance run: the node test cases shipped in the `onnx` package
(onnx.backend.test.case.node.collect_testcases) and its pytorch-converted / pytorch-operator data, run
through compile + fixed-point execution for every case whose ops are all supported.

Each case is compiled with its own inputs as calibration and compared with the expected outputs at a
tolerance derived from the output scale: |fixed - expected| <= LSB_TOLERANCE * 2**-frac + RELATIVE_TOLERANCE
* max|expected| (the relative term covers the 16-bit quantization of inputs and weights).
Used by tests/verifier/test_conformance.py and scripts/conformance_report.py."""

from __future__ import annotations

import glob
import os
import warnings
from dataclasses import dataclass

import numpy as np

from verifier.compiler.ml import REWRITES

LSB_TOLERANCE = 4
RELATIVE_TOLERANCE = 2.0**-9


@dataclass
class Case:
    name: str
    source: str  # "node" | "pytorch-converted" | "pytorch-operator"
    model: object  # onnx.ModelProto
    data_sets: list  # [(inputs list, outputs list)]

    @property
    def ops(self) -> list[str]:
        return sorted({n.op_type for n in self.model.graph.node})


@dataclass
class Outcome:
    case: str
    ops: list
    status: str  # "pass" | "fail" | "unsupported" | "error"
    detail: str = ""


def all_cases() -> list[Case]:
    return node_cases() + data_cases("pytorch-converted") + data_cases("pytorch-operator")


def node_cases() -> list[Case]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    return [Case(c.name, "node", c.model, list(c.data_sets or [])) for c in cases if c.model is not None]


def data_cases(kind: str) -> list[Case]:
    import onnx
    from onnx import numpy_helper

    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", kind)
    cases = []
    for directory in sorted(glob.glob(os.path.join(root, "test_*"))):
        model = onnx.load(os.path.join(directory, "model.onnx"))
        data_sets = []
        for data_dir in sorted(glob.glob(os.path.join(directory, "test_data_set_*"))):
            def read(prefix):
                files = sorted(glob.glob(os.path.join(data_dir, f"{prefix}_*.pb")),
                               key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
                tensors = []
                for path in files:
                    tensor = onnx.TensorProto()
                    with open(path, "rb") as handle:
                        tensor.ParseFromString(handle.read())
                    tensors.append(numpy_helper.to_array(tensor))
                return tensors

            data_sets.append((read("input"), read("output")))
        cases.append(Case(os.path.basename(directory), kind, model, data_sets))
    return cases


# never reach the interpreter: a Constant becomes a constant tensor (compiler/fold.py), a CastLike a Cast
# (compiler/load.py), the ai.onnx.ml ops of compiler/ml.py standard ops; an If on a constant its branch, a Loop
# or Scan of known length its iterations and their sequences Concats (compiler/unroll.py) - the others are refused
FOLDED = {"Constant", "CastLike", "If", "Loop", "Scan", "SequenceEmpty", "SequenceInsert", "SequenceConstruct",
          "ConcatFromSequence"} | set(REWRITES)


def supported(case: Case) -> bool:
    """Every op of the case has a lowering, is folded or rewritten at load, or is an ONNX function op that
    compiler/functions.py expands into its body."""
    from verifier.ops import OPS

    opset = next((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return bool(case.model.graph.node) and all(op in OPS or op in FOLDED or _is_function(op, opset)
                                                for op in case.ops)


def _is_function(op: str, opset: int) -> bool:
    import onnx

    try:
        schema = onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return False
    return any(v <= opset for v in list(schema.function_opset_versions)
               + list(schema.context_dependent_function_opset_versions))


def run_case(case: Case) -> Outcome:
    """Run as given; if an op needs a constant where the case feeds a run-time input (weights, pads, axes,
    exponents: how real models carry them), run again with every input but the first made an initializer."""
    outcome = _run(case, case.model, case.data_sets)
    needs_constant = "run time" in outcome.detail or "constant" in outcome.detail
    if outcome.status == "unsupported" and needs_constant and len(case.data_sets) == 1:
        model, data_sets = _inputs_as_constants(case)
        if model is not None:
            second = _run(case, model, data_sets)
            if second.status != "unsupported":
                second.detail = ("with constant weights/params; " + second.detail).rstrip("; ")
                return second
    return outcome


def _inputs_as_constants(case: Case):
    import onnx
    from onnx import numpy_helper

    initializers = {t.name for t in case.model.graph.initializer}
    inputs = [i for i in case.model.graph.input if i.name not in initializers]
    values, expected = case.data_sets[0]
    values = [np.asarray(v) if isinstance(v, np.generic) else v for v in values]
    if len(inputs) < 2 or any(not isinstance(v, np.ndarray) for v in values):
        return None, None
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    model.graph.initializer.extend([numpy_helper.from_array(v, i.name) for i, v in zip(inputs[1:], values[1:])])
    return model, [([values[0]], expected)]


def _run(case: Case, model, data_sets) -> Outcome:
    from verifier import InferenceSession, compile_model
    from verifier.errors import UnsupportedOpError, VerifierError

    if not supported(case):
        return Outcome(case.name, case.ops, "unsupported", "op without a lowering")
    initializers = {t.name for t in model.graph.initializer}
    input_names = [i.name for i in model.graph.input if i.name not in initializers]
    output_names = [o.name for o in model.graph.output]
    try:
        for inputs, expected in data_sets:
            feeds = {k: (np.asarray(v) if isinstance(v, np.generic) else v) for k, v in zip(input_names, inputs)}
            if any(not isinstance(v, np.ndarray) or v.dtype.kind not in "fiub" for v in feeds.values()):
                return Outcome(case.name, case.ops, "unsupported", "non-tensor or non-numeric input")
            program = compile_model(model, calibration=feeds)
            session = InferenceSession(program)
            floats = {k: (v.astype(np.float32) if v.dtype.kind == "f" else v) for k, v in feeds.items()}
            results = session.run(None, floats)
            replayed = session.run(None, floats)  # (the same feed shapes: the interpreter's replay of the first run)
            if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(results, replayed)):
                return Outcome(case.name, case.ops, "fail", "a replay of the run gave other outputs")
            fracs = {o.name: o.frac for o in program.outputs}
            expected = [np.asarray(w) if isinstance(w, np.generic) else w for w in expected]
            if any(not isinstance(want, np.ndarray) for want in expected):
                return Outcome(case.name, case.ops, "unsupported", "non-tensor output")
            for name, got, want in zip(output_names, results, expected):
                problem = _compare(got, np.asarray(want), fracs[name])
                if problem:
                    return Outcome(case.name, case.ops, "fail", f"output {name!r}: {problem}")
    except UnsupportedOpError as exc:
        return Outcome(case.name, case.ops, "unsupported", str(exc))
    except VerifierError as exc:
        return Outcome(case.name, case.ops, "error", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a crash is a failure to report, not a reason to stop the run
        return Outcome(case.name, case.ops, "error", f"{type(exc).__name__}: {exc}")
    return Outcome(case.name, case.ops, "pass")


def _compare(got: np.ndarray, want: np.ndarray, frac) -> str:
    if got.shape != want.shape:
        return f"shape {got.shape} != expected {want.shape}"
    if want.dtype.kind != "f":
        return "" if np.array_equal(got, want) else "integer values differ"
    want = want.astype(np.float64)
    finite = np.isfinite(want)
    if not finite.all():
        return "expected output is not finite (fixed point saturates instead)"
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    tolerance = LSB_TOLERANCE * 2.0 ** -(frac if frac is not None else 0) + RELATIVE_TOLERANCE * scale
    error = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    return "" if error <= tolerance else f"max error {error:.3g} > tolerance {tolerance:.3g}"
