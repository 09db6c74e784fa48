"""Pass 4: value ranges for scale selection. The folded float graph runs on the calibration data with
every intermediate exposed; each tensor's range is its max |value| times HEADROOM. Without calibration,
inputs are assumed to lie in [-DEFAULT_INPUT_RANGE, DEFAULT_INPUT_RANGE] and the ranges come from
SYNTHETIC_SAMPLES uniform draws over that box (with a wider headroom), so a scale exists for every tensor."""

from __future__ import annotations

import numpy as np

from verifier.compiler.fold import to_model
from verifier.compiler.load import Graph
from verifier.errors import CompileError
from verifier.ops._infinity import is_infinite

HEADROOM = 1.5
UNCALIBRATED_HEADROOM = 2.0
DEFAULT_INPUT_RANGE = 8.0
SYNTHETIC_SAMPLES = 8


def value_ranges(graph: Graph, calibration: dict | None) -> tuple[dict, dict]:
    """(ranges, input_ranges): name -> max |value| with headroom, for every float tensor the graph computes.
    Infinite values (a -inf attention mask, or one at float32's lowest value: verifier/ops/_infinity.py)
    do not count toward a range; the names of the tensors that
    held any are in `infinite_tensors(ranges)`."""
    feeds, headroom = _calibration_feeds(graph, calibration)
    input_ranges = {}
    for name, _, dtype in graph.inputs:
        if np.dtype(dtype).kind == "f":
            observed = float(np.max(np.abs(feeds[name]))) if feeds[name].size else 0.0
            input_ranges[name] = DEFAULT_INPUT_RANGE if calibration is None else observed * HEADROOM
    observed: dict[str, float] = {}
    infinite: set[str] = set()
    softmax_inputs = _softmax_only_inputs(graph)
    for batch in batches(graph, feeds):
        for name, value in _run_float(graph, batch).items():
            value = np.asarray(value)
            if value.dtype.kind == "f":
                infinite_here = is_infinite(value)
                if name in softmax_inputs and value.ndim:  # a finite mask fill (-1e4) weighs exactly 0 too
                    with np.errstate(invalid="ignore"):
                        row_max = np.max(np.where(infinite_here, -np.inf, value), axis=softmax_inputs[name],
                                         keepdims=True)
                        infinite_here = infinite_here | (value < row_max - SOFTMAX_UNDERFLOW)
                finite = np.abs(value[np.isfinite(value) & ~infinite_here])
                observed[name] = max(observed.get(name, 0.0), float(finite.max()) if finite.size else 0.0)
                if infinite_here.any():
                    infinite.add(name)
    return Ranges({name: value * headroom for name, value in observed.items()}, infinite), input_ranges


SOFTMAX_UNDERFLOW = 104.0  # exp(-104) is below float32's smallest subnormal: the softmax weight is exactly 0


def _softmax_only_inputs(graph: Graph) -> dict[str, int]:
    """name -> axis of each tensor read by one Softmax (opset 13 and later) and nothing else, and no graph
    output. Its calibration values that lie SOFTMAX_UNDERFLOW or more below their row's maximum - a finite
    attention mask such as -1e4 - count as -inf: they neither set its scale nor get a softmax weight,
    exactly as in float32, where their weight underflows to 0."""
    readers: dict[str, list] = {}
    for node in graph.nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    found = {}
    for node in graph.nodes:
        name = node.input[0] if node.input else ""
        if (node.op_type == "Softmax" and graph.opset >= 13 and len(readers.get(name, [])) == 1
                and name not in graph.outputs):
            axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
            found[name] = axis
    return found


class Ranges(dict):
    """name -> range, plus `infinite`: the tensors whose calibration values held +-inf."""

    def __init__(self, ranges: dict, infinite: set):
        super().__init__(ranges)
        self.infinite = frozenset(infinite)


def infinite_tensors(ranges: dict) -> frozenset:
    return getattr(ranges, "infinite", frozenset())


def batches(graph: Graph, feeds: dict, drop_remainder: bool = False):
    """The feeds in batches the graph accepts: whole when every input fits its declared shape, else sliced
    along axis 0 in steps of the model's fixed batch size (a total that is no multiple of it is an error,
    or with drop_remainder its last partial batch is left out)."""
    oversized = {name: shape[0] for name, shape, _ in graph.inputs
                 if shape and shape[0] is not None and np.ndim(feeds[name]) and len(feeds[name]) != shape[0]}
    if not oversized:
        yield feeds
        return
    steps = set(oversized.values())
    totals = {len(feeds[name]) for name in oversized}
    step, total = steps.pop(), totals.pop()
    if steps or totals or (total % step and not drop_remainder):
        raise CompileError(f"calibration batch {total} does not split into the model's fixed batch size {step}")
    for start in range(0, total - total % step, step):
        yield {name: (value[start : start + step] if name in oversized else value) for name, value in feeds.items()}


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
    """Every intermediate of the float graph: onnxruntime when it is installed and implements the model's
    ops at its opset, else the onnx reference evaluator."""
    model = to_model(graph, expose_all=True)
    errors = []
    for runner in (run_onnxruntime, _run_reference):
        try:
            return runner(model, feeds)
        except ImportError:
            continue
        except Exception as exc:
            errors.append(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    raise CompileError(f"calibration run failed: {'; '.join(errors)}")


def run_onnxruntime(model, feeds: dict) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def _run_reference(model, feeds: dict) -> dict:
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    return dict(zip(list(evaluator.output_names), evaluator.run(None, feeds)))
