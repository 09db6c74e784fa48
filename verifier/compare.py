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
    samples: int  # inputs compared (the first max_samples, less a last partial fixed-size batch)


def against_float(model, program, feeds: dict, max_samples: int = MAX_SAMPLES) -> list[OutputError]:
    """The error of each program output against onnxruntime on `feeds` (name -> array, batch on axis 0),
    both on the first `max_samples` samples, in batches of the model's fixed batch size when it has one.
    `model`: the ONNX path, bytes or ModelProto the program came from."""
    from verifier.compiler.load import load_model, to_graph
    from verifier.compiler.ranges import batches, run_onnxruntime
    from verifier.session import InferenceSession

    proto = load_model(model)
    feeds = {name: np.asarray(value)[:max_samples] for name, value in feeds.items()}
    feeds = {name: value.astype(np.float32) if value.dtype.kind == "f" else value for name, value in feeds.items()}
    session = InferenceSession(program)
    names = [output.name for output in program.outputs]
    expected, fixed, samples = [], [], 0
    for batch in batches(to_graph(proto), feeds, drop_remainder=True):
        expected.append(run_onnxruntime(proto, batch))
        fixed.append(dict(zip(names, session.run(None, batch))))
        samples += len(next(iter(batch.values()))) if batch else 0
    if not fixed:
        raise ValueError("fewer inputs than the model's fixed batch size")
    errors = []
    for name in names:
        got, want = (_joined([part[name] for part in parts]) for parts in (fixed, expected))
        max_error = float(np.max(np.abs(got - want))) if want.size else 0.0
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        agreement = None
        if want.ndim >= 2 and got.shape == want.shape and int(np.prod(want.shape[2:])) == 1 and want.shape[1] > 1:
            got, want = got.reshape(len(got), -1), want.reshape(len(want), -1)  # (batch, classes[, 1, 1])
            agreement = float(np.mean(got.argmax(axis=1) == want.argmax(axis=1)))
        errors.append(OutputError(name, max_error, max_error / scale if scale else 0.0, agreement, samples))
    return errors


def _joined(parts: list) -> np.ndarray:
    """One output over all batches, as float64 (a 0-d output is the same in each)."""
    parts = [np.asarray(part, dtype=np.float64) for part in parts]
    return np.concatenate(parts) if parts[0].ndim else parts[0]
