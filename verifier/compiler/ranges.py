"""Pass 4: value ranges for scale selection. The folded float graph runs on the calibration data with
every intermediate exposed; each tensor's range is its max |value| times HEADROOM. Without calibration,
inputs are assumed to lie in [-DEFAULT_INPUT_RANGE, DEFAULT_INPUT_RANGE] and the ranges come from
SYNTHETIC_SAMPLES uniform draws over that box (with a wider headroom), so a scale exists for every tensor."""

from __future__ import annotations

import numpy as np

from verifier.compiler.fold import to_model
from verifier.compiler.load import Graph
from verifier.errors import CompileError

HEADROOM = 1.5
UNCALIBRATED_HEADROOM = 2.0
DEFAULT_INPUT_RANGE = 8.0
SYNTHETIC_SAMPLES = 8


def value_ranges(graph: Graph, calibration: dict | None) -> tuple[dict, dict]:
    """(ranges, input_ranges): name -> max |value| with headroom, for every float tensor the graph computes."""
    feeds, headroom = _calibration_feeds(graph, calibration)
    input_ranges = {}
    for name, _, dtype in graph.inputs:
        if np.dtype(dtype).kind == "f":
            observed = float(np.max(np.abs(feeds[name]))) if feeds[name].size else 0.0
            input_ranges[name] = DEFAULT_INPUT_RANGE if calibration is None else observed * HEADROOM
    results = _run_float(graph, feeds)
    ranges = {}
    for name, value in results.items():
        value = np.asarray(value)
        if value.dtype.kind == "f":
            finite = value[np.isfinite(value)]
            ranges[name] = float(np.max(np.abs(finite))) * headroom if finite.size else 0.0
    return ranges, input_ranges


def _calibration_feeds(graph: Graph, calibration: dict | None):
    if calibration is not None:
        feeds = {}
        for name, shape, dtype in graph.inputs:
            if name not in calibration:
                raise CompileError(f"calibration data has no input {name!r} (has {sorted(calibration)})")
            value = np.asarray(calibration[name])
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                raise CompileError(f"calibration input {name!r} contains NaN or inf")
            feeds[name] = value.astype(dtype)
        return feeds, HEADROOM
    rng = np.random.default_rng(0)
    feeds = {}
    for name, shape, dtype in graph.inputs:
        if shape is None:
            raise CompileError(f"input {name!r} has no known shape: pass calibration data")
        concrete = tuple(SYNTHETIC_SAMPLES if d is None and i == 0 else (d or 1) for i, d in enumerate(shape))
        if np.dtype(dtype).kind == "f":
            feeds[name] = rng.uniform(-DEFAULT_INPUT_RANGE, DEFAULT_INPUT_RANGE, concrete).astype(dtype)
        else:
            feeds[name] = np.zeros(concrete, dtype=dtype)
    return feeds, UNCALIBRATED_HEADROOM


def _run_float(graph: Graph, feeds: dict) -> dict:
    model = to_model(graph, expose_all=True)
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    try:
        if ort is not None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            return dict(zip(names, session.run(None, feeds)))
        from onnx.reference import ReferenceEvaluator

        evaluator = ReferenceEvaluator(model)
        names = list(evaluator.output_names)
        return dict(zip(names, evaluator.run(None, feeds)))
    except Exception as exc:
        raise CompileError(f"calibration run failed: {str(exc).splitlines()[0]}") from exc
