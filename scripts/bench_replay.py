"""Replayed runs against metered ones (verifier/interpreter.py): the fixed-point execution of each model alone
(integer feeds in, integer outputs out; no quantization, encoding or hashing), single-threaded, in one process,
best of N in alternating blocks, and their ratio. Both give the same outputs; the script checks that too.

    .venv/bin/python scripts/bench_replay.py [--models digits_mlp,digits_cnn,transformer] [--repeat 300]
                                             [--chain 4000]

Models: any name scripts/bench_verifier.py takes (its batches are separate rows). --chain N also times, for a
program of N Relus on a (1, 4) tensor, its first (metered) run, the run that makes its replay's code, and a replay:
what making the code costs a node (replays.REPLAY_MAX_NODES).
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
    parser.add_argument("--chain", type=int, default=0, help="also time making the replay of N Relus")
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
    if args.chain:
        _chain(args.chain)


def _chain(length: int) -> None:
    """A fresh chain's first run (metered), second (its replay's code made, then run) and third (a replay), per node."""
    from verifier import replays
    from verifier.interpreter import execute
    from verifier.program import Program, ProgramNode, TensorInfo

    replays.REPLAY_MAX_NODES = max(replays.REPLAY_MAX_NODES, length)  # (a longer chain still replays, to be timed)
    nodes = [ProgramNode(op="Relu", name=f"relu{i}", inputs=[f"t{i}"], outputs=[f"t{i + 1}"], attrs={}, consts={},
                         out_fracs=[8]) for i in range(length)]
    program = Program(inputs=[TensorInfo("t0", [1, 4], "float32", 8)],
                      outputs=[TensorInfo(f"t{length}", [1, 4], "float32", 8)], nodes=nodes, constants={}, meta={})
    feeds = {"t0": np.zeros((1, 4), dtype=np.int64)}
    times = []
    for _ in range(3):
        started = time.perf_counter()
        execute(program, feeds)
        times.append((time.perf_counter() - started) / length * 1e6)
    print(f"\n{length} Relus, us a node: metered {times[0]:.1f}, code made and run {times[1]:.1f}, replayed {times[2]:.1f}")


def _best(run, repeat: int) -> float:
    times = []
    for _ in range(max(repeat, 1)):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


if __name__ == "__main__":
    main()
