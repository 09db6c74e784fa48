"""Replayed runs against metered ones (verifier/interpreter.py): the fixed-point execution of each model alone
(integer feeds in, integer outputs out; no quantization, encoding or hashing), single-threaded, in one process,
best of N in alternating blocks, and their ratio. Both give the same outputs; the script checks that too.

    .venv/bin/python scripts/bench_replay.py [--models digits_mlp,digits_cnn,transformer] [--repeat 300]

Models: any name scripts/bench_verifier.py takes (its batches are separate rows).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = "digits_mlp,digits_cnn,transformer,embedding,light_squeezenet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--repeat", type=int, default=300, help="runs per block (a tenth for light_* models)")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_verifier

    from verifier import compile_model
    from verifier.feeds import integer_feeds
    from verifier.interpreter import execute
    from verifier.kernels import keep_freed_memory

    keep_freed_memory()
    work = Path(tempfile.mkdtemp(prefix="vinfer-replay-"))
    print(f"{'model':28s} {'metered us':>11s} {'replayed us':>12s} {'ratio':>6s}")
    for name in args.models.split(","):
        for label, path, feeds, calibration in bench_verifier._cases(name, work, False):
            program = compile_model(path, calibration=calibration)
            integers = integer_feeds(program, feeds)
            metered = execute(program, integers, replay=False)
            replayed = execute(program, integers)
            assert all(np.array_equal(metered[key], replayed[key]) for key in metered), label
            runs = args.repeat // 10 if name.startswith("light_") else args.repeat
            best = {"metered": float("inf"), "replayed": float("inf")}
            for _ in range(3):  # alternating blocks: both see the same quiet and busy stretches
                best["metered"] = min(best["metered"], _best(lambda: execute(program, integers, replay=False), runs))
                best["replayed"] = min(best["replayed"], _best(lambda: execute(program, integers), runs))
            print(f"{label:28s} {best['metered'] * 1e6:11.1f} {best['replayed'] * 1e6:12.1f} "
                  f"{best['replayed'] / best['metered']:6.2f}")


def _best(run, repeat: int) -> float:
    times = []
    for _ in range(max(repeat, 1)):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


if __name__ == "__main__":
    main()
