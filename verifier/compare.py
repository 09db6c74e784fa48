"""How far a compiled program is from its float model: the program's (dequantized) outputs against
onnxruntime float32 on the same inputs. `vinfer compile` reports it on the calibration inputs, so the
cost of a scale choice (e.g. --matmul-bits 8) is seen at compile time, not in production."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_SAMPLES = 256  # a report, not a validation run: the first samples of the batch are enough


@dataclass
class OutputError:
    name: str
    max_error: float  # max |fixed - float|
    relative: float  # max_error / max |float| (0 when the float output is all zero)
    top1_agreement: float | None  # argmax agreement over the classes of a (batch, classes[, 1, 1]) output


def against_float(model, program, feeds: dict, max_samples: int = MAX_SAMPLES) -> list[OutputError]:
    """The error of each program output against onnxruntime on `feeds` (name -> array, batch on axis 0),
    both on the first `max_samples` samples. `model`: the ONNX path or ModelProto the program came from."""
    import onnxruntime as ort

    from verifier.session import InferenceSession

    feeds = {name: np.asarray(value)[:max_samples] for name, value in feeds.items()}
    feeds = {name: value.astype(np.float32) if value.dtype.kind == "f" else value for name, value in feeds.items()}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = model if isinstance(model, (bytes, str)) else (str(model) if hasattr(model, "suffix") else
                                                            model.SerializeToString())
    reference = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    names = [output.name for output in program.outputs]
    session = InferenceSession(program)
    expected: dict = {}
    fixed: dict = {}
    for chunk in _batches(feeds, reference.get_inputs()):
        for results, outputs in ((expected, zip([o.name for o in reference.get_outputs()], reference.run(None, chunk))),
                                 (fixed, zip(names, session.run(None, chunk)))):
            for name, value in outputs:
                results.setdefault(name, []).append(np.asarray(value))
    expected = {name: np.concatenate(parts) if parts[0].ndim else parts[0] for name, parts in expected.items()}
    fixed = {name: np.concatenate(parts) if parts[0].ndim else parts[0] for name, parts in fixed.items()}
    errors = []
    for name in names:
        got, want = np.asarray(fixed[name], dtype=np.float64), np.asarray(expected[name], dtype=np.float64)
        max_error = float(np.max(np.abs(got - want))) if want.size else 0.0
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        agreement = None
        if want.ndim >= 2 and got.shape == want.shape and int(np.prod(want.shape[2:])) == 1 and want.shape[1] > 1:
            got, want = got.reshape(len(got), -1), want.reshape(len(want), -1)  # (batch, classes[, 1, 1])
            agreement = float(np.mean(got.argmax(axis=1) == want.argmax(axis=1)))
        errors.append(OutputError(name, max_error, max_error / scale if scale else 0.0, agreement))
    return errors


def _batches(feeds: dict, inputs) -> list[dict]:
    """The feeds in chunks the model accepts: whole, or split along axis 0 by a fixed batch size."""
    fixed = {i.name: i.shape[0] for i in inputs if i.shape and isinstance(i.shape[0], int) and i.shape[0] > 0}
    sizes = {len(feeds[name]) for name in fixed if name in feeds and np.ndim(feeds[name])}
    step = min(fixed.values()) if fixed else None
    if step is None or not sizes or max(sizes) <= step:
        return [feeds]
    total = max(sizes)
    return [{name: value[start:start + step] if name in fixed else value for name, value in feeds.items()}
            for start in range(0, total - total % step, step)]
