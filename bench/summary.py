"""The one table `python -m bench` ends with: every part's figures side by side, each against its target."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    area: str  # "pages", "search", "circulation"
    what: str
    database: str
    size: str = ""  # titles in the catalogue, or what the figure counts
    rate: str = ""  # req/s, mails/s, seconds for a batch
    p50_ms: float | None = None
    tail: str = ""  # "p99 12.3" (pages) or "p95 4.5" (search, returns)
    ratio: str = ""  # a page's share of the bare template route's req/s
    target: str = ""
    met: bool | None = None


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def print_summary(rows: list[Row], note: str = "") -> None:
    print("\n## python -m bench: every figure in one table\n")
    if note:
        print(note + "\n")
    print("| area | what | database | size | rate | p50 ms | tail ms | ratio | target | met |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        met = "" if r.met is None else "yes" if r.met else "**no**"
        print(
            f"| {r.area} | {r.what} | {r.database} | {r.size} | {r.rate} | {_ms(r.p50_ms)} | {r.tail} "
            f"| {r.ratio} | {r.target} | {met} |"
        )
    judged = [r for r in rows if r.met is not None]
    missed = [r for r in judged if not r.met]
    print(f"\n{len(judged) - len(missed)} of {len(judged)} targets met.")
