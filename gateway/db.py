"""The gateway's small database: login nonces and per-address storage use. SQLite by default; any
SQLAlchemy URL works. Every state change that must happen at most once is a single conditional
UPDATE, so the database (not a Python lock) decides races between requests and between processes."""

import time

from sqlalchemy import BigInteger, Float, String, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class LoginNonce(Base):
    __tablename__ = "login_nonces"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class StorageUse(Base):
    __tablename__ = "storage_use"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    bytes_used: Mapped[int] = mapped_column(BigInteger, default=0)


def open_database(url: str) -> Engine:
    """Engine with the schema created. SQLite gets WAL and a busy timeout so concurrent requests queue."""
    is_sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False} if is_sqlite else {})
    if is_sqlite:

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

    Base.metadata.create_all(engine)
    return engine


class Nonces:
    """Single-use login nonces with an expiry."""

    def __init__(self, engine: Engine, ttl_seconds: int, max_pending: int):
        self.engine, self.ttl_seconds, self.max_pending = engine, ttl_seconds, max_pending

    def issue(self, nonce: str) -> float | None:
        """Record a new nonce and return its expiry; None when max_pending unused nonces are outstanding
        (anyone may ask for nonces, so their number must be bounded). Expired rows are dropped: an
        expired nonce is refused whether or not it is still on record."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(delete(LoginNonce).where(LoginNonce.expires_at <= now))
            pending = conn.execute(
                select(func.count()).select_from(LoginNonce).where(LoginNonce.used_at.is_(None))).scalar()
            if pending >= self.max_pending:
                return None
            conn.execute(insert(LoginNonce).values(nonce=nonce, expires_at=now + self.ttl_seconds, used_at=None))
        return now + self.ttl_seconds

    def is_usable(self, nonce: str) -> bool:
        """Issued here, not used, not expired. Read-only: checking never burns a nonce."""
        with self.engine.connect() as conn:
            row = conn.execute(select(LoginNonce).where(LoginNonce.nonce == nonce)).first()
        return row is not None and row.used_at is None and row.expires_at > time.time()

    def consume(self, nonce: str) -> bool:
        """Mark the nonce used if it still is usable; True for exactly one caller per nonce."""
        now = time.time()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(LoginNonce)
                .where(LoginNonce.nonce == nonce, LoginNonce.used_at.is_(None), LoginNonce.expires_at > now)
                .values(used_at=now)
            )
        return result.rowcount == 1


class Quotas:
    """Bytes each address has stored, bounded by a quota."""

    def __init__(self, engine: Engine, quota_bytes: int):
        self.engine, self.quota_bytes = engine, quota_bytes

    def used(self, address: str) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(StorageUse.bytes_used).where(StorageUse.address == address)).scalar()
        return int(value or 0)

    def reserve(self, address: str, size: int) -> bool:
        """Add `size` to the address's use if it stays within the quota; False (and nothing changed) otherwise."""
        self._ensure_row(address)
        with self.engine.begin() as conn:
            result = conn.execute(
                update(StorageUse)
                .where(StorageUse.address == address, StorageUse.bytes_used + size <= self.quota_bytes)
                .values(bytes_used=StorageUse.bytes_used + size)
            )
        return result.rowcount == 1

    def _ensure_row(self, address: str) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(StorageUse).values(address=address, bytes_used=0))
        except IntegrityError:
            pass  # another request created it first

    def release(self, address: str, size: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(StorageUse).where(StorageUse.address == address).values(bytes_used=StorageUse.bytes_used - size)
            )
