"""Catalogue import: MARC 21 (binary or MARCXML, through pymarc) and CSV, in batches, idempotent.

A record is matched to an existing bib by its control number (MARC 001, CSV `control_number`):
seen again, it updates that bib and its items (matched by barcode); otherwise it is added. A
record that cannot be used is rejected with the reason, and nothing of it is written. The field
mapping is documented in README.md ("Importing a catalogue").
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pymarc import MARCReader, Record
from pymarc.marcxml import parse_xml_to_array
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import clock
from app.models import MATERIAL_TYPES, Bib, Branch, Item, Series
from app.services.catalog import normalize_isbn, reindex_bibs

BATCH = 500
LIMITS = {
    "title": 500,
    "title_reading": 500,
    "authors": 500,
    "authors_reading": 500,
    "publisher": 200,
    "subjects": 4000,
    "series_title": 300,
    "shelfmark": 50,
    "barcode": 30,
    "control_number": 50,
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass
class ItemRecord:
    barcode: str
    branch_code: str
    loanable: bool = True
    shelfmark: str = ""


@dataclass
class BibRecord:
    control_number: str
    title: str
    title_reading: str = ""
    authors: str = ""
    authors_reading: str = ""
    publisher: str = ""
    pub_year: int | None = None
    isbn: str | None = None
    subjects: str = ""
    language: str = "jpn"
    material_type: str = "book"
    series_title: str = ""
    series_volume: int | None = None
    items: list[ItemRecord] = field(default_factory=list)

    @property
    def loanable(self) -> bool:
        return any(i.loanable for i in self.items) if self.items else True


@dataclass
class Rejected:
    source: str  # file and position, so the librarian can find the record
    reason: str


@dataclass
class Summary:
    imported: int = 0
    updated: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def add(self, other: Summary) -> None:
        self.imported += other.imported
        self.updated += other.updated
        self.rejected.extend(other.rejected)


class ImportFileError(ValueError):
    """The file cannot be read at all (missing, unknown format)."""


def clean(value: object, limit: int) -> str:
    """NFC, no control characters, single spaces, at most `limit` characters."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", str(value or "")))
    return " ".join(text.split())[:limit]


def _year(value: str) -> int | None:
    match = re.search(r"(1[0-9]{3}|20[0-9]{2})", unicodedata.normalize("NFKC", value or ""))
    return int(match.group(1)) if match else None


def _int(value: str) -> int | None:
    match = re.search(r"\d{1,6}", unicodedata.normalize("NFKC", value or ""))
    return int(match.group(0)) if match else None


def _bool(value: str, default: bool = True) -> bool:
    text = (value or "").strip().lower()
    if not text:
        return default
    return text in ("1", "true", "yes", "y", "はい", "可")


# ---------------------------------------------------------------- MARC


def _sub(record: Record, tag: str, code: str) -> str:
    fields = record.get_fields(tag)
    if not fields:
        return ""
    values = fields[0].get_subfields(code)
    return values[0] if values else ""


def _control_field(record: Record, tag: str) -> str:
    found = record.get(tag)
    return (found.data or "") if found is not None else ""


def _strip_isbd(text: str) -> str:
    return text.strip().rstrip(" /:;,.=").strip()


def _material(record: Record) -> str:
    leader = str(record.leader)
    kind, level = leader[6:7], leader[7:8]
    if kind in ("g", "i", "j", "k", "o", "r"):
        return "audiovisual"
    if level == "s":
        return "magazine" if kind == "a" else "serial"
    return "book" if kind in ("a", "t", "") else "other"


def _marc_items(record: Record) -> list[ItemRecord]:
    """Holdings: 852 ($b branch, $p barcode, $h call number), 949 ($a, $i, $c) or Koha's 952 ($a, $p, $o);
    $7 other than 0 or empty means not for loan."""
    items = []
    for tag, branch, barcode, shelf in (
        ("852", "b", "p", "h"),
        ("949", "a", "i", "c"),
        ("952", "a", "p", "o"),
    ):
        for f in record.get_fields(tag):
            code = (f.get_subfields(barcode) or [""])[0]
            if not code:
                continue
            not_for_loan = (f.get_subfields("7") or [""])[0].strip()
            items.append(
                ItemRecord(
                    barcode=clean(code, LIMITS["barcode"]),
                    branch_code=clean((f.get_subfields(branch) or [""])[0], 20),
                    loanable=not_for_loan in ("", "0"),
                    shelfmark=clean((f.get_subfields(shelf) or [""])[0], 50),
                )
            )
    return items


def from_marc(record: Record) -> BibRecord | str:
    """A BibRecord, or the reason the record cannot be used."""
    control = clean(_control_field(record, "001"), LIMITS["control_number"])
    if not control:
        return "no control number (001)"
    title = clean(
        _strip_isbd(" ".join(filter(None, (_sub(record, "245", "a"), _sub(record, "245", "b"))))), 500
    )
    if not title:
        return "no title (245 $a)"
    fixed = _control_field(record, "008")  # 008: fixed-length data elements
    authors = [_strip_isbd(_sub(record, t, "a")) for t in ("100", "110", "111")]
    authors += [
        _strip_isbd(f.get_subfields("a")[0]) for f in record.get_fields("700", "710") if f.get_subfields("a")
    ]
    publisher = _strip_isbd(_sub(record, "264", "b") or _sub(record, "260", "b"))
    year = _year(_sub(record, "264", "c") or _sub(record, "260", "c") or fixed[7:11])
    isbn = None
    for f in record.get_fields("020"):
        for value in f.get_subfields("a"):
            isbn = isbn or normalize_isbn(value.split(" ")[0])
    subjects = " ".join(
        _strip_isbd(v) for f in record.get_fields("650", "651", "600") for v in f.get_subfields("a")
    )
    language = fixed[35:38].strip() or "jpn"
    reading = next((f.get_subfields("a")[0] for f in record.get_fields("246") if f.get_subfields("a")), "")
    return BibRecord(
        control_number=control,
        title=title,
        title_reading=clean(reading, 500) or title.lower(),
        authors=clean("; ".join(a for a in authors if a), 500),
        publisher=clean(publisher, 200),
        pub_year=year,
        isbn=isbn,
        subjects=clean(subjects, 4000),
        language=clean(language, 3),
        material_type=_material(record),
        series_title=clean(_strip_isbd(_sub(record, "490", "a") or _sub(record, "830", "a")), 300),
        series_volume=_int(_sub(record, "490", "v") or _sub(record, "830", "v")),
        items=_marc_items(record),
    )


# ---------------------------------------------------------------- CSV

CSV_COLUMNS = (
    "control_number",
    "title",
    "title_reading",
    "authors",
    "authors_reading",
    "publisher",
    "pub_year",
    "isbn",
    "subjects",
    "language",
    "material_type",
    "series_title",
    "series_volume",
    "barcode",
    "branch",
    "shelfmark",
    "loanable",
)


def from_csv_rows(rows: list[dict[str, str]]) -> BibRecord | str:
    """One bib from the CSV rows sharing a control number (one row per item)."""
    first = rows[0]
    control = clean(first.get("control_number"), LIMITS["control_number"])
    if not control:
        return "no control_number"
    title = clean(first.get("title"), 500)
    if not title:
        return "no title"
    material = clean(first.get("material_type"), 20) or "book"
    if material not in MATERIAL_TYPES:
        return f"unknown material_type {material!r}"
    isbn_raw = clean(first.get("isbn"), 20)
    isbn = normalize_isbn(isbn_raw) if isbn_raw else None
    if isbn_raw and isbn is None:
        return f"malformed ISBN {isbn_raw!r}"
    items = [
        ItemRecord(
            clean(r.get("barcode"), 30),
            clean(r.get("branch"), 20),
            _bool(r.get("loanable", "")),
            clean(r.get("shelfmark"), 50),
        )
        for r in rows
        if clean(r.get("barcode"), 30)
    ]
    return BibRecord(
        control_number=control,
        title=title,
        title_reading=clean(first.get("title_reading"), 500) or title.lower(),
        authors=clean(first.get("authors"), 500),
        authors_reading=clean(first.get("authors_reading"), 500),
        publisher=clean(first.get("publisher"), 200),
        pub_year=_year(first.get("pub_year", "")),
        isbn=isbn,
        subjects=clean(first.get("subjects"), 4000),
        language=clean(first.get("language"), 3) or "jpn",
        material_type=material,
        series_title=clean(first.get("series_title"), 300),
        series_volume=_int(first.get("series_volume", "")),
        items=items,
    )


# ---------------------------------------------------------------- reading files


def read_file(path: Path) -> Iterator[tuple[str, BibRecord | str]]:
    """(where, record or reason) for each record in the file, streaming."""
    if not path.is_file():
        raise ImportFileError(f"{path}: no such file")
    head = path.open("rb").read(64).lstrip()
    name = path.name
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
    elif head.startswith(b"<"):
        for n, record in enumerate(parse_xml_to_array(str(path)), 1):
            yield (
                f"{name} record {n}",
                from_marc(record) if record is not None else "unreadable MARCXML record",
            )
    elif path.suffix.lower() in (".mrc", ".marc", ".dat", "") or head[:5].isdigit():
        with path.open("rb") as fh:
            reader = MARCReader(fh, to_unicode=True, force_utf8=True, utf8_handling="replace")
            for n, record in enumerate(reader, 1):
                if record is None:
                    yield f"{name} record {n}", f"unreadable MARC record ({reader.current_exception})"
                else:
                    yield f"{name} record {n}", from_marc(record)
    else:
        raise ImportFileError(f"{path}: not MARC 21, MARCXML or CSV (use .mrc, .xml or .csv)")


def _read_csv(path: Path) -> Iterator[tuple[str, BibRecord | str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"control_number", "title"} - set(reader.fieldnames or [])
        if missing:
            raise ImportFileError(f"{path}: missing CSV column(s) {', '.join(sorted(missing))}")
        group: list[dict[str, str]] = []
        start = 2
        for line, row in enumerate(reader, 2):
            if group and row.get("control_number") != group[0].get("control_number"):
                yield f"{path.name} line {start}", from_csv_rows(group)
                group, start = [], line
            group.append(row)
        if group:
            yield f"{path.name} line {start}", from_csv_rows(group)


# ---------------------------------------------------------------- writing


async def import_records(
    session: AsyncSession,
    records: Iterable[tuple[str, BibRecord | str]],
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Write the records in batches of BATCH, one transaction each; returns what happened."""
    summary = Summary()
    branches = {b.code: b.id for b in (await session.scalars(select(Branch))).all()}
    batch: list[tuple[str, BibRecord | str]] = []
    for entry in records:
        batch.append(entry)
        if len(batch) >= BATCH:
            summary.add(await _write_batch(session, batch, branches))
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        summary.add(await _write_batch(session, batch, branches))
        if progress:
            progress(len(batch))
    return summary


async def _write_batch(
    session: AsyncSession, batch: list[tuple[str, BibRecord | str]], branches: dict[str, int]
) -> Summary:
    summary = Summary()
    good: dict[str, tuple[str, BibRecord]] = {}
    for where, record in batch:
        if isinstance(record, str):
            summary.rejected.append(Rejected(where, record))
        else:
            unknown = sorted({i.branch_code for i in record.items if i.branch_code not in branches})
            if unknown:
                summary.rejected.append(Rejected(where, f"unknown branch code(s): {', '.join(unknown)}"))
            else:
                good[record.control_number] = (where, record)  # the last occurrence in a batch wins
    if not good:
        return summary
    existing = {
        b.control_number: b
        for b in (await session.scalars(select(Bib).where(Bib.control_number.in_(list(good))))).all()
    }
    barcodes = [i.barcode for _, r in good.values() for i in r.items]
    items = {
        i.barcode: i for i in (await session.scalars(select(Item).where(Item.barcode.in_(barcodes)))).all()
    }
    series_cache: dict[str, int] = {}
    touched: list[Bib] = []
    for control, (where, record) in good.items():
        bib = existing.get(control)
        foreign = [
            i.barcode
            for i in record.items
            if i.barcode in items and (bib is None or items[i.barcode].bib_id != bib.id)
        ]
        if foreign:
            summary.rejected.append(
                Rejected(where, f"barcode(s) already used by another title: {', '.join(foreign)}")
            )
            continue
        if len({i.barcode for i in record.items}) != len(record.items):
            summary.rejected.append(Rejected(where, "the same barcode twice in one record"))
            continue
        if bib is None:
            bib = Bib(control_number=control)
            session.add(bib)
            summary.imported += 1
        else:
            summary.updated += 1
        bib.title, bib.title_reading = record.title, record.title_reading
        bib.authors, bib.authors_reading = record.authors, record.authors_reading
        bib.publisher, bib.pub_year, bib.isbn = record.publisher, record.pub_year, record.isbn
        bib.subjects, bib.language, bib.material_type = (
            record.subjects,
            record.language[:3],
            record.material_type,
        )
        bib.loanable = record.loanable
        bib.series_id = (
            await _series(session, record.series_title, series_cache) if record.series_title else None
        )
        bib.series_volume = record.series_volume if record.series_title else None
        await session.flush()
        for item in record.items:
            row = items.get(item.barcode)
            if row is None:
                # A new copy is available from the day it is imported (the new-arrival digest's date).
                row = Item(
                    barcode=item.barcode, bib_id=bib.id, status="on_shelf", available_since=clock.today()
                )
                session.add(row)
                items[item.barcode] = row
            row.branch_id, row.loanable, row.shelfmark = (
                branches[item.branch_code],
                item.loanable,
                item.shelfmark,
            )
        touched.append(bib)
    await session.flush()
    await reindex_bibs(session, [b.id for b in touched])
    await session.commit()
    return summary


async def _series(session: AsyncSession, title: str, cache: dict[str, int]) -> int:
    if title in cache:
        return cache[title]
    series_id = await session.scalar(select(Series.id).where(Series.title == title))
    if series_id is None:
        series = Series(title=title, title_reading=title.lower())
        session.add(series)
        await session.flush()
        series_id = series.id
    cache[title] = series_id
    return series_id
