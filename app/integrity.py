"""Checks that must hold whatever patrons and staff do: run after fuzzing and load, or by an operator.

Each check is a query returning the rows that break it; none should return any.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

CHECKS = {
    "loans without an item": (
        "SELECT l.id FROM loans l LEFT JOIN items i ON i.id = l.item_id WHERE i.id IS NULL"
    ),
    "items on two open loans": (
        "SELECT item_id FROM loans WHERE returned_on IS NULL GROUP BY item_id HAVING count(*) > 1"
    ),
    "items held for two patrons": (
        "SELECT item_id FROM holds WHERE item_id IS NOT NULL AND status IN ('in_transit', 'ready') "
        "GROUP BY item_id HAVING count(*) > 1"
    ),
    "patrons over the hold limit": (
        "SELECT patron_id FROM holds WHERE status IN ('waiting', 'in_transit', 'ready') "
        "GROUP BY patron_id HAVING count(*) > :hold_limit"
    ),
}


def broken(connection: Connection, hold_limit: int) -> dict[str, int]:
    """How many rows break each check (all zero when the data is consistent)."""
    out = {}
    for name, sql in CHECKS.items():
        params = {"hold_limit": hold_limit} if ":hold_limit" in sql else {}
        out[name] = len(connection.execute(text(sql), params).all())
    return out
