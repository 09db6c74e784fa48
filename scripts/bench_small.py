"""Where a small model's time goes, and the small-product choices made for it. Single-threaded, in this process,
best of N. Tables:

  run      per model and batch (scripts/bench_verifier.py's models): the parts of InferenceSession.run_fixed -
           quantizing the feeds, the replayed execution, encoding the outputs, their keccak - each timed alone and
           inside whole runs (the same code), the whole run, and onnxruntime's run of the same input;
  limbs    small GEMMs and convolutions with their epilogue on the limb path (VINFER_LIMB_PRODUCTS=always) against
           the float path (off), and their ratio: the evidence for limbs.LIMB_MIN_WORK;
  direct   small GEMMs and convolutions with their epilogue in one compiled loop (kernels/direct.py) against the
           general float kernels they replace (limits 0), bound once as replays bind them: the evidence for
           direct.GEMM_MAX_WORK, CONV_MAX_WORK and CONV_BATCH_MAX_WORK;
  layout   a float64 product of activations by a weight stored in rows (C order) against the same weight as a
           transposed view: why fused GEMMs keep their doubled weights in rows (exact_gemm._doubled_rows);
  blocks   a GEMM in one BLAS call against direct.row_block's row blocks, through np.matmul and through the direct
           loop: the evidence for direct.BLAS_SMALL_WORK and BLAS_SMALL_WIDTH.

    .venv/bin/python scripts/bench_small.py [--tables run,limbs,direct,layout,blocks] [--models digits_mlp,digits_cnn]
                                            [--repeat 2000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # (before numpy loads its BLAS)
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
from bench_replay import _best  # noqa: E402 (this directory is on the path of a script run from it)

ROOT = Path(__file__).resolve().parents[1]
LIMB_GEMMS = [(1, 256, 32), (1, 512, 10), (1, 512, 128), (1, 1024, 256), (4, 512, 128), (16, 512, 64),
              (16, 256, 256), (64, 256, 64), (256, 64, 64), (1024, 64, 64), (512, 64, 128), (512, 128, 64),
              (512, 256, 64), (4096, 64, 64)]  # (M, K, N)
LIMB_CONVS = [((1, 8, 8, 8), (16, 8, 3, 3)), ((1, 16, 8, 8), (32, 16, 3, 3)), ((1, 32, 13, 13), (64, 32, 1, 1)),
              ((1, 64, 13, 13), (64, 64, 3, 3)), ((4, 16, 8, 8), (32, 16, 3, 3))]  # (x, w), pads keep the size
DIRECT_GEMMS = [(1, 64, 64), (1, 256, 32), (4, 64, 64), (1, 512, 64), (16, 64, 64), (1, 512, 128), (32, 64, 64),
                (64, 64, 64), (256, 64, 64), (1, 2048, 256), (64, 256, 256), (1024, 64, 64), (256, 512, 256),
                (4096, 64, 32), (1024, 128, 128), (4096, 64, 64), (512, 512, 128), (16384, 64, 64)]  # (M, K, N)
DIRECT_CONVS = [((1, 1, 8, 8), (8, 1, 3, 3)), ((1, 8, 8, 8), (16, 8, 3, 3)), ((1, 3, 16, 16), (16, 3, 3, 3)),
                ((2, 8, 8, 8), (16, 8, 3, 3)), ((1, 16, 8, 8), (16, 16, 3, 3)), ((1, 16, 8, 8), (32, 16, 3, 3)),
                ((1, 32, 13, 13), (32, 32, 1, 1)), ((8, 8, 8, 8), (16, 8, 3, 3)), ((1, 64, 13, 13), (64, 64, 1, 1)),
                ((1, 32, 8, 8), (32, 32, 3, 3)), ((1, 16, 16, 16), (32, 16, 3, 3)), ((1, 32, 13, 13), (32, 32, 3, 3)),
                ((1, 32, 13, 13), (64, 32, 3, 3)), ((1, 64, 28, 28), (64, 64, 3, 3)),
                ((1, 3, 56, 56), (32, 3, 3, 3)), ((16, 8, 8, 8), (16, 8, 3, 3)), ((64, 8, 8, 8), (16, 8, 3, 3)),
                ((256, 8, 8, 8), (16, 8, 3, 3)), ((1, 16, 55, 55), (64, 16, 1, 1)), ((1, 64, 56, 56), (64, 64, 1, 1)),
                ((1, 16, 55, 55), (64, 16, 3, 3)), ((8, 16, 16, 16), (32, 16, 3, 3))]  # (x, w), pads keep the size
LAYOUTS = [(256, 65, 64), (256, 65, 32), (256, 33, 10), (16, 65, 192), (1024, 65, 192)]  # (M, K + 1, N)
BLOCKS = [(244, 64, 64), (245, 64, 64), (256, 64, 64), (1024, 64, 64), (4096, 64, 64), (513, 64, 32), (257, 128, 32),
          (1026, 16, 64), (129, 64, 128), (257, 64, 128), (65, 128, 128), (257, 128, 128), (65, 256, 64),
          (1024, 65, 64), (2048, 65, 32), (4096, 65, 64)]  # (M, K, N)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="run,limbs,direct,layout,blocks")
    parser.add_argument("--models", default="digits_mlp,digits_cnn,transformer,embedding")
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    from verifier.kernels import keep_freed_memory

    keep_freed_memory()
    tables = args.tables.split(",")
    if "run" in tables:
        _run_table(args.models.split(","), args.repeat)
    if "limbs" in tables:
        _limb_table(max(args.repeat // 10, 20))
    if "direct" in tables:
        _direct_table(max(args.repeat // 4, 20))
    if "layout" in tables:
        _layout_table(max(args.repeat // 4, 20))
    if "blocks" in tables:
        _blocks_table(max(args.repeat // 20, 10))


def _run_table(models, repeat: int) -> None:
    """Each part alone / inside runs, µs; large batches take a tenth of the repeats."""
    import bench_verifier
    import onnxruntime as ort

    from verifier import InferenceSession, compile_model
    from verifier.encoding import encode_tensors, keccak_hex
    from verifier.feeds import integer_feeds

    print(f"{'model (us; alone / in runs)':28s} {'feeds':>13s} {'execute':>13s} {'encode':>11s} {'keccak':>11s} "
          f"{'run':>7s} {'ort':>6s}")
    work = Path(tempfile.mkdtemp(prefix="vinfer-small-"))
    cases = [case for name in models for case in bench_verifier._cases(name, work, False)]
    for label, path, feeds, calibration in cases:
        runs = repeat if "b=1" in label else max(repeat // 10, 20)
        session = InferenceSession(compile_model(path, calibration=calibration))
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        reference = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        program = session.program
        integers = integer_feeds(program, feeds)
        outputs = session._execute(integers)
        data = encode_tensors(outputs)
        alone = [_best(lambda: integer_feeds(program, feeds), runs), _best(lambda: session._execute(integers), runs),
                 _best(lambda: encode_tensors(outputs), runs), _best(lambda: keccak_hex(data), runs)]
        inside = np.full(4, np.inf)
        for _ in range(runs):  # run_fixed's steps, each timed inside a whole run
            started = time.perf_counter()
            integers_now = integer_feeds(program, feeds)
            quantized = time.perf_counter()
            result = session._execute(integers_now)
            executed = time.perf_counter()
            encoded = encode_tensors(result)
            encoding = time.perf_counter()
            keccak_hex(encoded)
            hashed = time.perf_counter()
            inside = np.minimum(inside, [quantized - started, executed - quantized, encoding - executed,
                                         hashed - encoding])
        run = _best(lambda: session.run_fixed(feeds), runs)
        ort_run = _best(lambda: reference.run(None, feeds), runs)
        parts = [f"{a * 1e6:5.1f} / {b * 1e6:5.1f}" for a, b in zip(alone, inside)]
        print(f"{label:28s} {parts[0]:>13s} {parts[1]:>13s} {parts[2]:>11s} {parts[3]:>11s} {run * 1e6:7.1f} "
              f"{ort_run * 1e6:6.1f}")


def _limb_table(repeat: int) -> None:
    from verifier.kernels import conv, gemm, prepare
    from verifier.kernels.epilogue import Requantize

    rng = np.random.default_rng(0)
    print(f"\n{'limb path, always vs off':40s} {'MACs':>9s} {'limbs us':>9s} {'float us':>9s} {'ratio':>6s}")
    for bits in (16, 8):
        bound = (1 << (bits - 1)) - 1
        cases = []
        for m, k, n in LIMB_GEMMS:
            a, b = rng.integers(-bound, bound + 1, (m, k)), prepare(rng.integers(-bound, bound + 1, (k, n)))
            spec = Requantize(20, 16, False, rng.integers(-1000, 1000, n))
            cases.append((f"{bits}-bit gemm {m}x{k}x{n}", m * k * n,
                          lambda a=a, b=b, spec=spec: gemm(a, b, a_bound=bound, requantize=spec)))
        for x_shape, w_shape in LIMB_CONVS:
            x, w = rng.integers(-bound, bound + 1, x_shape), prepare(rng.integers(-bound, bound + 1, w_shape))
            spec = Requantize(20, 16, False, rng.integers(-1000, 1000, w_shape[0]))
            pads = (w_shape[2] // 2,) * 4
            cases.append((f"{bits}-bit conv {x_shape[1:]}->{w_shape[0]} {w_shape[2]}x{w_shape[3]} n={x_shape[0]}",
                          x_shape[0] * x_shape[2] * x_shape[3] * int(np.prod(w_shape)),
                          lambda x=x, w=w, spec=spec, pads=pads: conv(x, w, pads=pads, x_bound=bound, requantize=spec)))
        for label, macs, run in cases:
            best = {}
            for _ in range(3):  # alternating: both settings see the same stretch of the machine
                for setting in ("always", "off"):
                    os.environ["VINFER_LIMB_PRODUCTS"] = setting
                    run()
                    best[setting] = min(best.get(setting, np.inf), _best(run, repeat))
            print(f"{label:40s} {macs:9d} {best['always'] * 1e6:9.1f} {best['off'] * 1e6:9.1f} "
                  f"{best['always'] / best['off']:6.2f}")
    os.environ.pop("VINFER_LIMB_PRODUCTS", None)


def _direct_table(repeat: int) -> None:
    from verifier.kernels import direct, plan_conv, prepare
    from verifier.kernels.convolution import bind_conv
    from verifier.kernels.epilogue import Requantize
    from verifier.kernels.exact_gemm import bind_gemm

    rng = np.random.default_rng(2)
    bound = (1 << 15) - 1
    os.environ["VINFER_LIMB_PRODUCTS"] = "off"  # (the float kernels: what the direct loops replace)
    print(f"\n{'16-bit product, bound kernels':40s} {'MACs':>9s} {'direct us':>10s} {'general us':>11s} {'ratio':>6s}")
    cases = []
    for m, k, n in DIRECT_GEMMS:
        a, b = rng.integers(-bound, bound + 1, (m, k)), prepare(rng.integers(-bound, bound + 1, (k, n)))
        spec = Requantize(20, 16, False, rng.integers(-1000, 1000, n))
        cases.append((f"gemm {m}x{k}x{n}", m * k * n,  # (a fresh weight each time: kernels are kept on it)
                      lambda a=a, b=b, spec=spec: bind_gemm(a.shape, prepare(b.values), bound, spec), a))
    for x_shape, w_shape in DIRECT_CONVS:
        x, w = rng.integers(-bound, bound + 1, x_shape), prepare(rng.integers(-bound, bound + 1, w_shape))
        spec = Requantize(20, 16, False, rng.integers(-1000, 1000, w_shape[0]))
        pads = [w_shape[2] // 2] * 4
        plan = plan_conv(x_shape, w_shape, 1, bound, bound, strides=[1, 1], pads=pads, dilations=[1, 1]).algorithm
        cases.append((f"conv {x_shape[1:]}->{w_shape[0]} {w_shape[2]}x{w_shape[3]} n={x_shape[0]} {plan}",
                      x_shape[0] * x_shape[2] * x_shape[3] * int(np.prod(w_shape)),
                      lambda x=x, w=w, spec=spec, pads=pads: bind_conv(x.shape, w, [1, 1], pads, [1, 1], 1, bound,
                                                                       spec), x))
    limits = direct.GEMM_MAX_WORK, direct.CONV_MAX_WORK, direct.CONV_BATCH_MAX_WORK
    for label, macs, bind, operand in cases:
        direct.GEMM_MAX_WORK = direct.CONV_MAX_WORK = direct.CONV_BATCH_MAX_WORK = 1 << 40
        on_loop = bind()
        direct.GEMM_MAX_WORK = direct.CONV_MAX_WORK = direct.CONV_BATCH_MAX_WORK = 0
        general = bind()
        best = [np.inf, np.inf]
        for _ in range(3):  # alternating: both see the same stretch of the machine
            for side, kernel in enumerate((on_loop, general)):
                kernel(operand)
                best[side] = min(best[side], _best(lambda kernel=kernel: kernel(operand), repeat))
        print(f"{label:40s} {macs:9d} {best[0] * 1e6:10.1f} {best[1] * 1e6:11.1f} {best[0] / best[1]:6.2f}")
    direct.GEMM_MAX_WORK, direct.CONV_MAX_WORK, direct.CONV_BATCH_MAX_WORK = limits
    os.environ.pop("VINFER_LIMB_PRODUCTS", None)


def _layout_table(repeat: int) -> None:
    rng = np.random.default_rng(1)
    print(f"\n{'float64 product M x K x N':28s} {'rows us':>8s} {'transposed us':>14s} {'ratio':>6s}")
    for m, k, n in LAYOUTS:
        a, rows = rng.standard_normal((m, k)), rng.standard_normal((k, n))
        transposed, out = np.ascontiguousarray(rows.T).T, np.empty((m, n))
        in_rows = _best(lambda: np.matmul(a, rows, out=out), repeat)
        in_columns = _best(lambda: np.matmul(a, transposed, out=out), repeat)
        print(f"{f'{m} x {k} x {n}':28s} {in_rows * 1e6:8.1f} {in_columns * 1e6:14.1f} {in_columns / in_rows:6.2f}")


def _blocks_table(repeat: int) -> None:
    """A float GEMM in one BLAS call against direct.row_block's row blocks (the evidence for BLAS_SMALL_WORK and
    BLAS_SMALL_WIDTH): numpy's np.matmul (the general paths: exact_gemm.matmul_rows) and numba's np.dot in the
    direct loop (loops.gemm_chain with one link), float64 and float32, alternating."""
    from verifier.kernels import direct, loops
    from verifier.kernels.exact_gemm import matmul_rows

    rng = np.random.default_rng(3)
    print(f"\n{'GEMM M x K x N, one call vs row blocks':40s} {'rows':>5s} {'matmul':>7s} {'blocks':>7s} {'ratio':>6s}"
          f" {'loop':>7s} {'blocks':>7s} {'ratio':>6s}")
    for dtype in (np.float64, np.float32):
        bound = 32767 if dtype == np.float64 else 127
        for m, k, n in BLOCKS:
            a, b = rng.integers(-bound, bound + 1, (m, k)), rng.integers(-bound, bound + 1, (k, n))
            a_float, b_float, out = a.astype(dtype), b.astype(dtype), np.empty((m, n), dtype)
            block = direct.row_block(m, k, n)
            blocked = (lambda: matmul_rows(a_float, b_float, out))
            result, scratch = np.empty((m, n), np.int64), np.empty((2, 0), dtype)
            links = {rows: np.array([[k, n, 0, 0, 20, -32767, 32767, 1, 0, 0, rows]]) for rows in (m, block)}
            flat = b_float.reshape(-1)
            loop = {rows: (lambda table=table: loops.gemm_chain(a, flat, np.zeros(n, np.int64), table, scratch, result))
                    for rows, table in links.items()}
            best = {}
            for _ in range(3):  # alternating: each side sees the same stretch of the machine
                for name, run in (("one", lambda: np.matmul(a_float, b_float, out=out)), ("rows", blocked),
                                  ("loop one", loop[m]), ("loop rows", loop[block])):
                    run()
                    best[name] = min(best.get(name, np.inf), _best(run, repeat))
            label = f"{np.dtype(dtype).name} {m} x {k} x {n} ({m * k * n / 1e6:.2f}M)"
            print(f"{label:40s} {block:5d} {best['one'] * 1e6:7.1f} {best['rows'] * 1e6:7.1f} "
                  f"{best['rows'] / best['one']:6.2f} {best['loop one'] * 1e6:7.1f} {best['loop rows'] * 1e6:7.1f} "
                  f"{best['loop rows'] / best['loop one']:6.2f}")


if __name__ == "__main__":
    main()
