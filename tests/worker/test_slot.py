"""A job gives the same bytes in a spawned single-threaded slot process as in this process."""

import concurrent.futures as cf
import multiprocessing

import numpy as np

from e2e.e2e_helpers import tiny_model
from worker import slot


def test_slot_process_and_in_process_runs_agree_bit_for_bit():
    from verifier import InferenceSession, compile_model

    rng = np.random.default_rng(3)
    program = compile_model(tiny_model(), calibration={"x": rng.standard_normal((16, 8)).astype(np.float32)})
    inputs = InferenceSession(program).encode_inputs({"x": rng.standard_normal((2, 8)).astype(np.float32)})
    here = slot.execute(program.to_bytes(), inputs)
    with cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=slot.init_slot_process) as pool:
        there = [pool.submit(slot.execute, program.to_bytes(), inputs) for _ in range(2)]
        results = [future.result() for future in there]
    assert here[2] is True
    assert all(result == here for result in results)


def test_hostile_program_bytes_give_the_error_outcome_not_an_exception():
    output, result_hash, ok, error = slot.execute(b"VFP\x01garbage", b"")
    assert ok is False and error
    again = slot.execute(b"VFP\x01garbage", b"")
    assert again[1] == result_hash  # deterministic
