"""The shop's SQLite database: products, stock, stock reservations, payments, fulfillments.

Every side effect is keyed by the order id, so running an order again — a retried node, a
re-submitted order — finds the first result instead of doing the work twice.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["SCHEMA", "SEED", "Product", "Store"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id    TEXT PRIMARY KEY,
    name  TEXT NOT NULL,
    price INTEGER NOT NULL CHECK (price >= 0)  -- in cents
);
CREATE TABLE IF NOT EXISTS stock (
    product_id TEXT PRIMARY KEY REFERENCES products (id),
    quantity   INTEGER NOT NULL CHECK (quantity >= 0)
);
CREATE TABLE IF NOT EXISTS reservations (
    order_id   TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (id),
    quantity   INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    order_id   TEXT PRIMARY KEY,
    amount     INTEGER NOT NULL,  -- in cents
    payment_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fulfillments (
    order_id       TEXT PRIMARY KEY,
    fulfillment_id TEXT NOT NULL UNIQUE,
    product_id     TEXT NOT NULL REFERENCES products (id),
    quantity       INTEGER NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    order_id   TEXT PRIMARY KEY,
    refund_id  TEXT NOT NULL UNIQUE,
    payment_id TEXT NOT NULL,
    amount     INTEGER NOT NULL,  -- in cents
    created_at TEXT NOT NULL
);
"""

SEED: tuple[tuple[str, str, int, int], ...] = (
    # (id, name, price in cents, quantity in stock)
    ("prod-1", "Beluga plush", 1999, 10),
    ("prod-2", "Ice pick", 4500, 3),
    ("prod-3", "Narwhal mug", 1250, 0),  # out of stock
)


@dataclass(frozen=True, slots=True)
class Product:
    id: str
    name: str
    price: int
    """In cents."""


_COUNT = {
    table: f"SELECT count(*) FROM {table} WHERE order_id = ?"
    for table in ("reservations", "payments", "fulfillments", "refunds")
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """Access to the shop database.

    Each method opens its own short-lived connection: the graph runs blocking nodes in worker
    threads, and a sqlite3 connection belongs to the thread that opened it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | Path) -> Store:
        """Create the tables and the seed products (if missing) and return the store."""
        store = cls(path)
        with closing(sqlite3.connect(store.path)) as db:
            db.executescript(SCHEMA)
        with store.transaction() as db:
            db.executemany(
                "INSERT INTO products (id, name, price) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                [(pid, name, price) for pid, name, price, _ in SEED],
            )
            db.executemany(
                "INSERT INTO stock (product_id, quantity) VALUES (?, ?)"
                " ON CONFLICT (product_id) DO NOTHING",
                [(pid, quantity) for pid, _, _, quantity in SEED],
            )
        return store

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE``: committed on success, else rolled back.

        IMMEDIATE takes the write lock at once, so a read-then-write inside is atomic.
        """
        with closing(sqlite3.connect(self.path, timeout=10.0, isolation_level=None)) as db:
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def product(self, product_id: str) -> Product | None:
        """The product, or None if there is no such product."""
        with closing(sqlite3.connect(self.path, timeout=10.0)) as db:
            row = db.execute(
                "SELECT id, name, price FROM products WHERE id = ?", (product_id,)
            ).fetchone()
        return None if row is None else Product(*row)

    def reserve(self, order_id: str, product_id: str, quantity: int) -> bool:
        """Take ``quantity`` items out of stock for the order, once; False if not enough.

        A second call for the same order finds its reservation and takes nothing more.
        """
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM reservations WHERE order_id = ?", (order_id,)).fetchone():
                return True
            taken = db.execute(
                "UPDATE stock SET quantity = quantity - ? WHERE product_id = ? AND quantity >= ?",
                (quantity, product_id, quantity),
            ).rowcount
            if not taken:
                return False
            db.execute(
                "INSERT INTO reservations (order_id, product_id, quantity, created_at)"
                " VALUES (?, ?, ?, ?)",
                (order_id, product_id, quantity, _now()),
            )
            return True

    def charge(self, order_id: str, amount: int) -> str:
        """Charge the order ``amount`` cents, once; return the payment id.

        The order id is the idempotency key: a second charge of the same order inserts nothing
        and returns the first payment's id. (With a real payment provider, send the order id as
        its idempotency key too.)
        """
        with self.transaction() as db:
            db.execute(
                "INSERT INTO payments (order_id, amount, payment_id, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
                (order_id, amount, f"pay-{uuid.uuid4().hex[:12]}", _now()),
            )
            (payment_id,) = db.execute(
                "SELECT payment_id FROM payments WHERE order_id = ?", (order_id,)
            ).fetchone()
        return str(payment_id)

    def charge_as(self, order_id: str, amount: int, payment_id: str) -> str:
        """Charge the order ``amount`` cents under a caller-chosen ``payment_id``, once.

        Like :meth:`charge`, the order id is the idempotency key: a second call for the same
        order inserts nothing and returns the first payment's id. The caller derives
        ``payment_id`` from the run (e.g. order id + workflow id), so a re-delivered call
        carries the same id.
        """
        with self.transaction() as db:
            db.execute(
                "INSERT INTO payments (order_id, amount, payment_id, created_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
                (order_id, amount, payment_id, _now()),
            )
            (stored,) = db.execute(
                "SELECT payment_id FROM payments WHERE order_id = ?", (order_id,)
            ).fetchone()
        return str(stored)

    def refund(self, order_id: str) -> str | None:
        """Refund the order's payment, once; return the refund id, or None if never charged.

        A second call finds the first refund and returns its id.
        """
        with self.transaction() as db:
            payment = db.execute(
                "SELECT payment_id, amount FROM payments WHERE order_id = ?", (order_id,)
            ).fetchone()
            if payment is None:
                return None
            payment_id, amount = payment
            db.execute(
                "INSERT INTO refunds (order_id, refund_id, payment_id, amount, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
                (order_id, f"ref-{payment_id}", payment_id, amount, _now()),
            )
            (refund_id,) = db.execute(
                "SELECT refund_id FROM refunds WHERE order_id = ?", (order_id,)
            ).fetchone()
        return str(refund_id)

    def release(self, order_id: str) -> bool:
        """Put the order's reserved items back in stock, once; False if nothing is reserved.

        The reservation row goes away, so a second call finds nothing and returns False.
        """
        with self.transaction() as db:
            row = db.execute(
                "SELECT product_id, quantity FROM reservations WHERE order_id = ?", (order_id,)
            ).fetchone()
            if row is None:
                return False
            product_id, quantity = row
            db.execute(
                "UPDATE stock SET quantity = quantity + ? WHERE product_id = ?",
                (quantity, product_id),
            )
            db.execute("DELETE FROM reservations WHERE order_id = ?", (order_id,))
            return True

    def fulfill(self, order_id: str, product_id: str, quantity: int) -> str:
        """Create the order's shipment, once; return the fulfillment id."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO fulfillments"
                " (order_id, fulfillment_id, product_id, quantity, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
                (order_id, f"ful-{uuid.uuid4().hex[:12]}", product_id, quantity, _now()),
            )
            (fulfillment_id,) = db.execute(
                "SELECT fulfillment_id FROM fulfillments WHERE order_id = ?", (order_id,)
            ).fetchone()
        return str(fulfillment_id)

    def count(self, table: str, order_id: str) -> int:
        """How many rows of ``table`` (reservations, payments, fulfillments, refunds) the order
        has."""
        query = _COUNT.get(table)
        if query is None:
            raise ValueError(f"no per-order table {table!r}; expected one of {sorted(_COUNT)}")
        with closing(sqlite3.connect(self.path, timeout=10.0)) as db:
            (n,) = db.execute(query, (order_id,)).fetchone()
        return int(n)

    def in_stock(self, product_id: str) -> int:
        """Items of the product left in stock."""
        with closing(sqlite3.connect(self.path, timeout=10.0)) as db:
            row = db.execute(
                "SELECT quantity FROM stock WHERE product_id = ?", (product_id,)
            ).fetchone()
        return 0 if row is None else int(row[0])
