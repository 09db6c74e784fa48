"""The state file: what a worker must remember across crashes."""

import pytest

from worker.state import WorkerState

ADDRESS = "0x" + "ab" * 20


@pytest.fixture
def state(tmp_path):
    s = WorkerState(tmp_path / "worker.db")
    s.bind_address(ADDRESS)
    yield s
    s.close()


def test_fresh_state_has_processed_no_block(state):
    assert state.last_block == -1


def test_last_block_survives_reopening(tmp_path, state):
    state.last_block = 41
    state.close()
    assert WorkerState(tmp_path / "worker.db").last_block == 41


def test_replayed_assignment_event_is_recorded_once(state):
    assert state.add_assignment(7, 1) is True
    assert state.add_assignment(7, 1) is False
    assert [(a.job_id, a.round, a.phase) for a in state.all_assignments()] == [(7, 1, "assigned")]


def test_sealed_salt_and_result_survive_a_crash(tmp_path, state):
    state.add_assignment(3, 2)
    salt = bytes(range(32))
    state.seal(3, 2, "0x" + "11" * 32, salt, b"output-bytes", True, None)
    state.close()  # the process dies here, before or after sending the commit
    reopened = WorkerState(tmp_path / "worker.db").get(3, 2)
    assert (reopened.phase, reopened.salt, reopened.result_hash, reopened.output) == ("sealed", salt, "0x" + "11" * 32, b"output-bytes")


def test_sealing_twice_never_replaces_the_first_salt(state):
    state.add_assignment(3, 1)
    state.seal(3, 1, "0x" + "11" * 32, b"\x01" * 32, b"a", True, None)
    state.seal(3, 1, "0x" + "22" * 32, b"\x02" * 32, b"b", True, None)
    assert state.get(3, 1).salt == b"\x01" * 32


def test_finished_assignments_are_no_longer_open(state):
    for job in (1, 2, 3):
        state.add_assignment(job, 1)
    state.mark(1, 1, "done")
    state.mark(2, 1, "committed", commit_tx="0xabc")
    assert [(a.job_id, a.phase) for a in state.open_assignments()] == [(2, "committed"), (3, "assigned")]
    assert state.get(2, 1).commit_tx == "0xabc"


def test_error_outcome_is_remembered_with_its_reason(state):
    state.add_assignment(9, 1)
    state.seal(9, 1, "0x" + "33" * 32, b"\x03" * 32, b"err", False, "unsupported op 'Foo'")
    got = state.get(9, 1)
    assert got.outcome_ok is False and got.error == "unsupported op 'Foo'"


def test_state_file_of_another_worker_is_refused(state):
    with pytest.raises(ValueError, match="belongs to worker"):
        state.bind_address("0x" + "cd" * 20)


def test_watch_list_is_a_set(state):
    state.watch(5)
    state.watch(5)
    state.watch(2)
    state.unwatch(5)
    assert state.watched() == [2]


def test_unknown_field_is_rejected(state):
    state.add_assignment(1, 1)
    with pytest.raises(ValueError, match="unknown assignment fields"):
        state.mark(1, 1, "done", salt=b"x")
