"""The kernels give the same bits at any BLAS thread count: exactness, not luck. Checked in fresh
processes with OMP/OpenBLAS/MKL thread counts 1 and 2, and in-process with threadpoolctl."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from verifier.kernels import conv, gemm, single_threaded

PROBE = r"""
import dataclasses, hashlib, sys
import numpy as np
import pytest
from threadpoolctl import threadpool_info
from verifier.kernels import conv, direct, gemm, prepare
from verifier.kernels.epilogue import Requantize
rng = np.random.default_rng(2024)
direct_limit, direct.GEMM_MAX_WORK = direct.GEMM_MAX_WORK, 1 << 22  # (the general float paths' GEMMs first)
def edge(shape):
    values = np.where(rng.random(shape) < 0.5, 32767, rng.integers(-32767, 32768, shape))
    return values * rng.choice([-1, 1], shape)
a, b = edge((300, 1200)), edge((1200, 160))
x, w = edge((2, 32, 20, 20)), edge((48, 32, 3, 3))
x_wide, w_wide = edge((1, 64, 16, 16)), edge((64, 64, 3, 3))  # the Winograd path
w_depthwise = edge((32, 1, 3, 3))
digest = hashlib.sha256()
digest.update(gemm(a, b, path=sys.argv[1]).tobytes())
digest.update(conv(x, w, strides=(2, 1), pads=(1, 1, 1, 1), path=sys.argv[1]).tobytes())
digest.update(conv(x_wide, w_wide, pads=(1, 1, 1, 1), path=sys.argv[1]).tobytes())
digest.update(conv(x, w_depthwise, pads=(1, 1, 1, 1), group=32, path=sys.argv[1]).tobytes())
for relu in (False, True):  # the epilogue fused into the float product (unfused on the reference path)
    digest.update(conv(x, w, pads=(1, 1, 1, 1), path=sys.argv[1],
                       requantize=Requantize(21, 16, relu, rng.integers(-2**40, 2**40, 48))).tobytes())
    digest.update(conv(x_wide, w_wide, pads=(1, 1, 1, 1), path=sys.argv[1],
                       requantize=Requantize(22, 16, relu, rng.integers(-2**40, 2**40, 64))).tobytes())
    digest.update(gemm(a, prepare(b), path=sys.argv[1],
                       requantize=Requantize(25, 16, relu, rng.integers(-2**40, 2**40, 160))).tobytes())
    digest.update(conv(x, prepare(w), pads=(1, 1, 1, 1), strides=(1, 2), path=sys.argv[1],
                       requantize=Requantize(21, 16, relu, rng.integers(-2**40, 2**40, 48))).tobytes())
    # 8-bit operands (matmul_bits=8): float32 products, K-chunked past 1040, summed onto the bias in float64
    x8, w8, a8, b8 = (v % 255 - 127 for v in (x, w, a, b))
    digest.update(conv(x8, prepare(w8), pads=(1, 1, 1, 1), x_bound=127, path=sys.argv[1],
                       requantize=Requantize(9, 16, relu, rng.integers(-2**40, 2**40, 48))).tobytes())
    digest.update(gemm(a8, prepare(b8), a_bound=127, path=sys.argv[1],
                       requantize=Requantize(12, 16, relu, rng.integers(-2**40, 2**40, 160))).tobytes())
    # the compiled direct products (kernels/direct.py, below their limits: 3.1M, 57.6M in row blocks and 0.9M
    # multiply-adds), and a chain of two: scipy's BLAS, through numba
    direct.GEMM_MAX_WORK = direct_limit
    digest.update(gemm(a[:16], prepare(b), path=sys.argv[1],
                       requantize=Requantize(25, 16, relu, rng.integers(-2**40, 2**40, 160))).tobytes())
    digest.update(gemm(a, prepare(b), path=sys.argv[1],
                       requantize=Requantize(25, 16, relu, rng.integers(-2**40, 2**40, 160))).tobytes())
    digest.update(conv(x[:1, :, :8, :8], prepare(w), pads=(1, 1, 1, 1), path=sys.argv[1],
                       requantize=Requantize(21, 16, relu, rng.integers(-2**40, 2**40, 48))).tobytes())
    specs, b2 = (Requantize(25, 16, relu), Requantize(20, 16)), b[:160, :64]
    if sys.argv[1] == "fast":  # the two GEMMs as one chain (replays' _chained: kernels/direct.chain_kernel)
        links = [direct.gemm_kernel(a.shape, prepare(b), specs[0], 1200 * 32767 ** 2).link,
                 direct.gemm_kernel((300, 160), prepare(b2), specs[1], 160 * 32767 ** 2).link]
        chained = direct.chain_kernel([links[0], dataclasses.replace(links[1], narrowing=(0, 0))])(a)
    else:
        chained = gemm(gemm(a, b, path="reference", requantize=specs[0]), b2, path="reference", requantize=specs[1])
    digest.update(chained.tobytes())
    direct.GEMM_MAX_WORK = 1 << 22
threads = max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")
print(threads, digest.hexdigest())
"""


def run_probe(threads: int, path: str = "fast", keep_freed_memory: bool = False,
              limb_products: str = "off") -> tuple[int, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), VINFER_LIMB_PRODUCTS=limb_products)
    probe = ("from verifier.kernels import keep_freed_memory\nassert keep_freed_memory()\n" + PROBE
             if keep_freed_memory else PROBE)
    result = subprocess.run([sys.executable, "-c", probe, path], env=env, capture_output=True, text=True,
                            timeout=120, check=True)
    blas_threads, digest = result.stdout.split()
    return int(blas_threads), digest


def test_fresh_processes_with_one_and_two_blas_threads_agree_with_the_reference():
    one_thread, two_threads = run_probe(1), run_probe(2)
    assert one_thread[0] == 1
    if (os.cpu_count() or 1) >= 2:
        assert two_threads[0] == 2  # the second process really ran a 2-thread BLAS
    assert one_thread[1] == two_threads[1]
    assert run_probe(1, "reference")[1] == one_thread[1]


def test_in_process_thread_limits_do_not_change_the_bits():
    rng = np.random.default_rng(5)
    a = rng.integers(-32767, 32768, (257, 999))
    b = rng.integers(-32767, 32768, (999, 129))
    x = rng.integers(-32767, 32768, (1, 16, 24, 24))
    w = rng.integers(-32767, 32768, (32, 16, 3, 3))
    digests = []
    for limit in (1, 2):
        with threadpool_limits(limits=limit):
            out = np.concatenate([gemm(a, b).ravel(), conv(x, w, strides=(2, 2)).ravel()])
            digests.append(hashlib.sha256(out.tobytes()).hexdigest())
    assert digests[0] == digests[1]


def test_single_threaded_limits_blas_inside_the_block_only():
    before = [info["num_threads"] for info in threadpool_info()]
    with single_threaded():
        assert all(info["num_threads"] == 1 for info in threadpool_info())
    assert [info["num_threads"] for info in threadpool_info()] == before


SCIPY_BLAS_PROBE = r"""
import numpy as np
from threadpoolctl import threadpool_info
from verifier.kernels import gemm, prepare, single_threaded
from verifier.kernels.epilogue import Requantize
with single_threaded():  # numba and scipy's BLAS load inside the block, on the first direct product
    gemm(np.ones((4, 64), dtype=np.int64), prepare(np.ones((64, 64), dtype=np.int64)), requantize=Requantize(3))
    print(sorted({info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}))
"""


def test_single_threaded_covers_the_blas_the_direct_products_load():
    env = {name: value for name, value in os.environ.items()
           if name not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", SCIPY_BLAS_PROBE], env=env, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.split("\n")[-2] == "[1]"


def test_limb_products_give_the_bits_of_the_float_paths_at_any_thread_count():
    """The 8-bit integer products (kernels/limbs.py), forced on whatever this CPU is, in fresh processes."""
    pytest.importorskip("onnxruntime")
    expected = run_probe(1)[1]
    assert run_probe(1, limb_products="always")[1] == expected
    assert run_probe(2, limb_products="always")[1] == expected


def test_keeping_freed_memory_for_reuse_does_not_change_the_bits():
    """Worker job processes raise glibc's malloc thresholds (verifier.kernels.keep_freed_memory): memory
    reuse only, so the probe's digest is the same as in a default process."""
    assert run_probe(1, keep_freed_memory=True) == run_probe(1)
