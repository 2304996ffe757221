"""`python -m bench security`: run the security checks and print what they covered.

The checks are the test modules tests/unit/test_security_*.py (they also run in the README's test
command); this runs them on SQLite, or on PostgreSQL with TEST_DATABASE=postgresql, and prints the
figures they record: how many routes the ownership matrix called with another patron's ids, how
many POST routes refused a missing CSRF token, and so on.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELSEWHERE = (
    "200-patron load against 2 web processes, invariants after",
    "`python -m bench load` (2 minutes; not in the test command)",
)


def main(argv: list[str] | None = None) -> int:
    import pytest

    sys.path.insert(0, str(ROOT))
    files = sorted(str(p) for p in (ROOT / "tests" / "unit").glob("test_security_*.py"))
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-o", "log_cli=false", *files, *(argv or [])])
    from tests.unit.test_security_matrix import SECURITY_FIGURES

    print("\n| check | count | result |")
    print("|---|---:|---|")
    verdict = "all passed" if code == 0 else "FAILED (see above)"
    for name, count in SECURITY_FIGURES.items():
        print(f"| {name} | {count:,} | {verdict} |")
    print(f"| {ELSEWHERE[0]} | – | {ELSEWHERE[1]} |")
    from tests.unit.test_security_enumeration import ENUMERATION_TIMES

    if ENUMERATION_TIMES:
        print(
            "\n| form (unknown card vs known card, wrong details) | unknown ms | known ms | gap allowed ms |"
        )
        print("|---|---:|---:|---:|")
        for name, (unknown, known, allowed) in ENUMERATION_TIMES.items():
            print(f"| {name} | {unknown:.1f} | {known:.1f} | {allowed:.1f} |")
    return int(code)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
