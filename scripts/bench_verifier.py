"""Fixed-point interpreter vs onnxruntime float32: latency (both single-threaded, same process, same input,
best of N, in alternating blocks), their ratio, and the peak memory of each (peak RSS of a fresh child process that loads the
model and runs it once, so the numbers do not include each other).

    .venv/bin/python scripts/bench_verifier.py [--models digits_cnn,light_resnet50] [--repeat 10] [--no-memory]
                                               [--path fast|reference] [--drop-final-softmax] [--matmul-bits 16,8]
                                               [--batches 16,1024,4096]

Models (MODELS below; add an entry to extend): the bundled digits CNN and a digits MLP trained here
(batch 1 and 256), light_squeezenet, light_shufflenet, light_resnet50 from the onnx wheel (random uniform
[0, 1) input, calibrated on 4 such), and a small transformer encoder classifier exported from torch
(random weights, batch 1 and 64); --batches sets other batch sizes for these and `embedding` (the digits data
repeated where a batch passes its 1797 rows). Any other light_* name of the wheel (light_inception_v1,
light_densenet121, ...), `embedding` (Embedding + LayerNorm + Dense on int64 token ids), or the path of an
.onnx file (random input of its declared shape, symbolic dims 1) may be passed to --models; `--models all`
runs every model issue 3 names (ALL_MODELS: the heavy light_* models take a few minutes more).

Each model is compiled at every --matmul-bits width (default 16 and 8: compile_model's operand width of
Conv/Gemm/MatMul products; rows of 8-bit programs are labelled "8-bit"). The last column is the largest
output error relative to onnxruntime's largest output magnitude.

The fixed-point runs keep freed memory for reuse, as worker job processes do (verifier.kernels.keep_freed_memory).
For timings only, run it with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset if the environment sets them (they
can pin OpenBLAS to a slower kernel); the header prints the BLAS kernel threadpoolctl reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LIGHT = ("light_squeezenet", "light_shufflenet", "light_resnet50")
DEFAULT_MODELS = ("digits_cnn", "digits_mlp") + LIGHT + ("transformer",)

CHILD = r"""
import resource, sys, numpy as np
engine, model, feeds_path = sys.argv[1:4]
with np.load(feeds_path) as data:
    feeds = {k: data[k] for k in data.files}
if engine == "fixed":
    from verifier import InferenceSession, Program
    from verifier.kernels import keep_freed_memory
    keep_freed_memory()
    session = InferenceSession(Program.load(model))
    session.run_fixed(feeds)
else:
    import onnxruntime as ort
    options = ort.SessionOptions(); options.intra_op_num_threads = 1; options.inter_op_num_threads = 1
    ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]).run(None, feeds)
print(next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--path", default=None, choices=["fast", "reference"])
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--drop-final-softmax", action="store_true",
                        help="bench light_* models without their last Softmax node")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    parser.add_argument("--matmul-bits", default="16,8", help="operand widths of the products to compile at")
    parser.add_argument("--batches", default=None,
                        help="batch sizes of the digits, transformer and embedding models, e.g. 16,1024,4096 (default: "
                             "1 and 256; the transformer 1 and 64)")
    args = parser.parse_args()
    if args.batches:
        BATCHES[:] = [int(batch) for batch in args.batches.split(",")]
    widths = [int(bits) for bits in args.matmul_bits.split(",")]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="vinfer-bench-"))
    from verifier.kernels import keep_freed_memory

    allocator = "freed memory kept, as in worker slots" if keep_freed_memory() else "default allocator"
    print(f"CPU: {_cpu_model()}; numpy {np.__version__}; BLAS: {_blas_kernel()}; single-threaded; "
          f"best of {args.repeat}; {allocator}")
    rows = []
    for name in (ALL_MODELS if args.models == "all" else args.models.split(",")):
        for case in _cases(name, work, args.drop_final_softmax):
            for bits in widths:
                rows.append(_bench(case, work, args, bits))
                _print_row(rows[-1], header=len(rows) == 1)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _cases(name: str, work: Path, drop_softmax: bool):
    """(label, onnx path, feeds, calibration) for one model name."""
    if name in MODELS:
        yield from MODELS[name](name, work)
    elif name.startswith("light_"):  # any light_* architecture of the onnx wheel
        yield from _light_case(name, work, drop_softmax)
    elif name.endswith(".onnx"):
        yield from _onnx_file_case(Path(name))
    else:
        raise SystemExit(f"unknown model {name!r}; known: {', '.join(MODELS)}, light_*, or a .onnx path")


def _digits_cnn_cases(name: str, work: Path):
    path = ROOT / "verifier" / "examples" / "digits_cnn.onnx"
    with np.load(ROOT / "verifier" / "examples" / "digits_calibration.npz") as data:
        calibration = {"input": data["input"]}
    yield from _digits_batches(name, path, calibration)


def _digits_mlp_cases(name: str, work: Path):
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_example_model as example

    x_train, _, y_train, _ = example.load_digits_split()
    path = example.export(example.train_mlp(x_train, y_train), work / "digits_mlp.onnx")
    yield from _digits_batches(name, path, {"input": x_train[:256]})


def _light_case(name: str, work: Path, drop_softmax: bool):
    import onnx

    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / f"{name}.onnx"
    model = onnx.load(str(path))
    if drop_softmax and model.graph.node[-1].op_type == "Softmax":
        last = model.graph.node[-1]
        model.graph.output[0].name = last.input[0]
        model.graph.node.remove(last)
        name += " (no softmax)"
        path = work / f"{name.split()[0]}_trunk.onnx"
        onnx.save(model, str(path))
    initializers = {t.name for t in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in initializers)
    shape = [d.dim_value or 1 for d in graph_input.type.tensor_type.shape.dim]
    rng = np.random.default_rng(0)
    calibration = {graph_input.name: rng.uniform(0, 1, [4 * shape[0]] + shape[1:]).astype(np.float32)}
    feeds = {graph_input.name: rng.uniform(0, 1, shape).astype(np.float32)}
    yield name, path, feeds, calibration


def _transformer_cases(name: str, work: Path):
    """A 2-layer transformer encoder classifier (d_model 64, 4 heads, sequence 16) exported by torch at
    opset 17, random weights; batch 1 and 64."""
    import torch
    from torch import nn

    torch.manual_seed(0)

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(64, 10)

        def forward(self, x):
            return self.head(self.encoder(x).mean(dim=1))

    model = Classifier().eval()
    path = work / "transformer.onnx"
    example = torch.randn(2, 16, 64)
    torch.onnx.export(model, (example,), str(path), input_names=["x"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    rng = np.random.default_rng(0)
    calibration = {"x": rng.standard_normal((64, 16, 64)).astype(np.float32)}
    for batch in _batches((1, 64)):
        yield f"{name} b={batch}", path, {"x": rng.standard_normal((batch, 16, 64)).astype(np.float32)}, calibration


def _embedding_cases(name: str, work: Path):
    """Embedding + LayerNorm + Dense on int64 token ids (each digits image's 64 pixel intensities 0..16 as
    tokens, vocabulary 17, width 8), exported by torch at opset 17, random weights; batch 1 and 256."""
    import torch
    from sklearn.datasets import load_digits
    from torch import nn

    torch.manual_seed(0)

    class TokenClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(17, 8)
            self.positions = nn.Parameter(torch.randn(64, 8) * 0.1)
            self.norm = nn.LayerNorm(8)
            self.head = nn.Linear(64 * 8, 10)

        def forward(self, ids):
            return self.head(self.norm(self.embedding(ids) + self.positions).flatten(1))

    path = work / "embedding.onnx"
    torch.onnx.export(TokenClassifier().eval(), (torch.zeros(2, 64, dtype=torch.int64),), str(path),
                      input_names=["ids"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"ids": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    tokens = load_digits().data.astype(np.int64)  # (1797, 64) intensities 0..16
    calibration = {"ids": tokens[:256]}
    for batch in _batches((1, 256)):
        yield f"{name} b={batch}", path, {"ids": _last_rows(tokens, batch)}, calibration


def _onnx_file_case(path: Path):
    import onnx

    model = onnx.load(str(path))
    initializers = {t.name for t in model.graph.initializer}
    rng = np.random.default_rng(0)
    feeds, calibration = {}, {}
    for graph_input in model.graph.input:
        if graph_input.name in initializers:
            continue
        shape = [d.dim_value or 1 for d in graph_input.type.tensor_type.shape.dim]
        feeds[graph_input.name] = rng.uniform(0, 1, shape).astype(np.float32)
        calibration[graph_input.name] = rng.uniform(0, 1, [4 * shape[0]] + shape[1:]).astype(np.float32)
    yield path.stem, path, feeds, calibration


# name -> cases(name, work dir) yielding (label, onnx path, feeds, calibration): add a model here
MODELS = {"digits_cnn": _digits_cnn_cases, "digits_mlp": _digits_mlp_cases, "transformer": _transformer_cases,
          "embedding": _embedding_cases}
# --models all: every model issue 3 names (the default set, the embedding model, every light_* architecture)
ALL_MODELS = DEFAULT_MODELS + ("embedding", "light_inception_v1", "light_inception_v2", "light_densenet121",
                               "light_bvlc_alexnet", "light_zfnet512", "light_vgg19")


BATCHES: list[int] = []  # --batches (empty: each model's own)


def _batches(default: tuple) -> list[int]:
    return BATCHES or list(default)


def _last_rows(data: np.ndarray, batch: int) -> np.ndarray:
    """The last `batch` rows of data, repeated from the start where it holds fewer."""
    return data[-batch:] if batch <= len(data) else np.resize(data, (batch,) + data.shape[1:])


def _digits_batches(name, path, calibration):
    from sklearn.datasets import load_digits

    images = (load_digits().images / 16.0).astype(np.float32)[:, None]
    for batch in _batches((1, 256)):
        yield f"{name} b={batch}", path, {"input": _last_rows(images, batch)}, calibration


def _bench(case, work: Path, args, matmul_bits: int = 16) -> dict:
    import onnxruntime as ort

    from verifier import InferenceSession, compile_model

    label, path, feeds, calibration = case
    row = {"model": label + (f" {matmul_bits}-bit" if matmul_bits != 16 else ""), "matmul_bits": matmul_bits}
    try:
        started = time.perf_counter()
        program = compile_model(path, calibration=calibration, matmul_bits=matmul_bits)
        row["compile_s"] = time.perf_counter() - started
        session = InferenceSession(program, path=args.path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        reference = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        row["fixed_ms"], row["ort_ms"] = _best_of_both(lambda: session.run_fixed(feeds),
                                                       lambda: reference.run(None, feeds), args.repeat)
        row["ratio"] = row["fixed_ms"] / row["ort_ms"]
        fixed_out = session.run(None, feeds)[0]
        ort_out = reference.run(None, feeds)[0]
        row["max_rel_err"] = float(np.max(np.abs(fixed_out - ort_out)) / max(float(np.max(np.abs(ort_out))), 1e-30))
        if not args.no_memory:
            program_path, feeds_path = work / "bench.vfp", work / "feeds.npz"
            program.save(program_path)
            np.savez(feeds_path, **feeds)
            row["fixed_peak_mib"] = _peak_rss_mib("fixed", program_path, feeds_path)
            row["ort_peak_mib"] = _peak_rss_mib("ort", path, feeds_path)
    except Exception as exc:  # one model's failure is a row of the table, not the end of the run
        row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return row


def _best_of_both(fixed, reference, repeat: int, rounds: int = 4) -> tuple[float, float]:
    """Best-of-`repeat` milliseconds of each, taken in `rounds` alternating blocks (fixed x repeat/rounds, then
    reference x repeat/rounds, ...): a noisy stretch of the machine slows both sides of the ratio rather than
    one, and within a block each side runs warm, as when timed alone (BLAS single-threaded; the onnxruntime
    session has its own one thread)."""
    from verifier.kernels import single_threaded

    rounds = max(1, min(rounds, repeat))
    block = -(-repeat // rounds)
    best = [float("inf"), float("inf")]
    with single_threaded():
        for _ in range(rounds):
            for side, run in enumerate((fixed, reference)):
                run()  # warm-up: caches, lazily converted weights, the other side's data out of the cache
                for _ in range(block):
                    started = time.perf_counter()
                    run()
                    best[side] = min(best[side], time.perf_counter() - started)
    return best[0] * 1e3, best[1] * 1e3


def _peak_rss_mib(engine: str, model: Path, feeds: Path) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, engine, str(model), str(feeds)], capture_output=True,
                         text=True, env=env, cwd=ROOT, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def _print_row(row: dict, header: bool) -> None:
    if header:
        print(f"{'model':32} {'fixed ms':>10} {'ort ms':>10} {'ratio':>7} {'fixed MiB':>10} {'ort MiB':>9} {'rel err':>9}")
    if "error" in row:
        print(f"{row['model']:32} error: {row['error']}")
        return
    memory = (f"{row['fixed_peak_mib']:10.0f} {row['ort_peak_mib']:9.0f}" if "fixed_peak_mib" in row
              else f"{'-':>10} {'-':>9}")
    print(f"{row['model']:32} {row['fixed_ms']:10.2f} {row['ort_ms']:10.2f} {row['ratio']:7.2f} {memory} "
          f"{row['max_rel_err']:9.1e}", flush=True)


def _blas_kernel() -> str:
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in blas) or "?"
    except Exception:  # noqa: BLE001 - informative only
        return "?"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
