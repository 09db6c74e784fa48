"""The worker's durable memory: one SQLite file that survives crashes and restarts.

What must never be lost is written here *before* the transaction that depends on it is sent:
the salt and result of a job are sealed before `commit`, so a worker killed between commit and
reveal can still reveal after a restart (a lost salt means a silent worker, and a slash).

Tables
    meta          key/value: last processed block, worker address
    assignments   one row per (job, round) this worker was assigned, with its phase:
                    assigned -> sealed -> committed -> revealed -> done   (or missed / refused)
    watched       jobs this worker may need to assign or finalize (from JobSubmitted / Escalated)
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    job_id        INTEGER NOT NULL,
    round         INTEGER NOT NULL,
    phase         TEXT    NOT NULL,
    result_hash   TEXT,
    salt          BLOB,
    output        BLOB,
    outcome_ok    INTEGER,
    error         TEXT,
    commit_tx     TEXT,
    reveal_tx     TEXT,
    uploaded      INTEGER NOT NULL DEFAULT 0,
    updated_at    REAL    NOT NULL,
    PRIMARY KEY (job_id, round)
);
CREATE TABLE IF NOT EXISTS watched (job_id INTEGER PRIMARY KEY, added_at REAL NOT NULL);
"""

OPEN_PHASES = ("assigned", "sealed", "committed", "revealed")


@dataclass(frozen=True)
class Assignment:
    job_id: int
    round: int
    phase: str
    result_hash: str | None = None
    salt: bytes | None = None
    output: bytes | None = None
    outcome_ok: bool | None = None
    error: str | None = None
    commit_tx: str | None = None
    reveal_tx: str | None = None
    uploaded: bool = False


class WorkerState:
    """Thread-safe access to the state file; every method is one committed transaction."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a sealed salt must be on disk before the commit tx
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(sql, params).fetchall()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return rows

    # --- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self._execute("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def set_meta(self, key: str, value: str) -> None:
        self._execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    @property
    def last_block(self) -> int:
        """The last block whose events were fully processed (-1 before the first poll)."""
        return int(self.get_meta("last_block", "-1"))

    @last_block.setter
    def last_block(self, block: int) -> None:
        self.set_meta("last_block", str(block))

    def bind_address(self, address: str) -> None:
        """Refuse to mix two workers' salts in one file: the file belongs to the first address it saw."""
        stored = self.get_meta("address")
        if stored is None:
            self.set_meta("address", address.lower())
        elif stored != address.lower():
            raise ValueError(f"state file {self.path} belongs to worker {stored}, not {address.lower()}")

    # --- assignments ----------------------------------------------------------------------------

    def add_assignment(self, job_id: int, round_: int) -> bool:
        """Record a new assignment; False when it was already known (events are replayed after a restart)."""
        rows = self._execute(
            "INSERT INTO assignments(job_id, round, phase, updated_at) VALUES(?, ?, 'assigned', ?) "
            "ON CONFLICT(job_id, round) DO NOTHING RETURNING job_id",
            (job_id, round_, time.time()),
        )
        return bool(rows)

    def seal(self, job_id: int, round_: int, result_hash: str, salt: bytes, output: bytes, ok: bool, error: str | None) -> None:
        """Persist what the commit will bind to. Must return before the commit is sent."""
        self._execute(
            "UPDATE assignments SET phase='sealed', result_hash=?, salt=?, output=?, outcome_ok=?, error=?, updated_at=? "
            "WHERE job_id=? AND round=? AND phase='assigned'",
            (result_hash, salt, output, int(ok), error, time.time(), job_id, round_),
        )

    def mark(self, job_id: int, round_: int, phase: str, **fields: object) -> None:
        """Move an assignment to `phase`, optionally setting commit_tx / reveal_tx / uploaded / error."""
        allowed = {"commit_tx", "reveal_tx", "uploaded", "error"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown assignment fields {sorted(unknown)}")
        sets = ", ".join(f"{name}=?" for name in fields)
        sql = f"UPDATE assignments SET phase=?, updated_at=?{', ' + sets if sets else ''} WHERE job_id=? AND round=?"
        self._execute(sql, (phase, time.time(), *fields.values(), job_id, round_))

    def set_uploaded(self, job_id: int, round_: int) -> None:
        self._execute("UPDATE assignments SET uploaded=1 WHERE job_id=? AND round=?", (job_id, round_))

    def get(self, job_id: int, round_: int) -> Assignment | None:
        rows = self._execute(f"SELECT {_COLUMNS} FROM assignments WHERE job_id=? AND round=?", (job_id, round_))
        return _assignment(rows[0]) if rows else None

    def open_assignments(self) -> list[Assignment]:
        marks = ",".join("?" * len(OPEN_PHASES))
        rows = self._execute(f"SELECT {_COLUMNS} FROM assignments WHERE phase IN ({marks}) ORDER BY job_id, round", OPEN_PHASES)
        return [_assignment(row) for row in rows]

    def has_job(self, job_id: int) -> bool:
        """Whether this worker was assigned to any round of the job."""
        return bool(self._execute("SELECT 1 FROM assignments WHERE job_id=? LIMIT 1", (job_id,)))

    def all_assignments(self) -> list[Assignment]:
        rows = self._execute(f"SELECT {_COLUMNS} FROM assignments ORDER BY job_id, round")
        return [_assignment(row) for row in rows]

    # --- jobs to assign / finalize --------------------------------------------------------------

    def watch(self, job_id: int) -> None:
        self._execute("INSERT INTO watched(job_id, added_at) VALUES(?, ?) ON CONFLICT DO NOTHING", (job_id, time.time()))

    def unwatch(self, job_id: int) -> None:
        self._execute("DELETE FROM watched WHERE job_id=?", (job_id,))

    def watched(self) -> list[int]:
        return [row[0] for row in self._execute("SELECT job_id FROM watched ORDER BY job_id")]


_COLUMNS = "job_id, round, phase, result_hash, salt, output, outcome_ok, error, commit_tx, reveal_tx, uploaded"


def _assignment(row: tuple) -> Assignment:
    job_id, round_, phase, result_hash, salt, output, ok, error, commit_tx, reveal_tx, uploaded = row
    return Assignment(
        job_id=job_id,
        round=round_,
        phase=phase,
        result_hash=result_hash,
        salt=salt,
        output=output,
        outcome_ok=None if ok is None else bool(ok),
        error=error,
        commit_tx=commit_tx,
        reveal_tx=reveal_tx,
        uploaded=bool(uploaded),
    )
