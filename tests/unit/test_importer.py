"""Catalogue import from real MARC 21, MARCXML and CSV files: idempotent, with reasons for rejects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pymarc import Field, Record, Subfield, XMLWriter
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Bib, Item, Series
from app.services import catalog
from app.services.importer import ImportFileError, import_records, read_file

ROOT = Path(__file__).resolve().parents[2]


def marc(
    control: str | None,
    title: str,
    *,
    reading: str = "",
    author: str = "",
    year: str = "2024",
    isbn: str = "",
    items: list[tuple[str, str, str]] = (),
    series: tuple[str, str] | None = None,
    leader_kind: str = "am",
) -> Record:
    record = Record(force_utf8=True)
    record.leader = record.leader[:6] + leader_kind + record.leader[8:]
    if control:
        record.add_field(Field(tag="001", data=control))
    record.add_field(Field(tag="008", data="240101s" + year + "    ja            000 0 jpn d"))
    if isbn:
        record.add_field(Field(tag="020", indicators=[" ", " "], subfields=[Subfield("a", isbn)]))
    if author:
        record.add_field(Field(tag="100", indicators=["1", " "], subfields=[Subfield("a", author)]))
    record.add_field(Field(tag="245", indicators=["0", "0"], subfields=[Subfield("a", title + " /")]))
    if reading:
        record.add_field(Field(tag="246", indicators=["3", " "], subfields=[Subfield("a", reading)]))
    record.add_field(
        Field(
            tag="264",
            indicators=[" ", "1"],
            subfields=[Subfield("b", "テスト出版,"), Subfield("c", year + ".")],
        )
    )
    if series:
        record.add_field(
            Field(
                tag="490",
                indicators=["0", " "],
                subfields=[Subfield("a", series[0]), Subfield("v", series[1])],
            )
        )
    for branch, barcode, not_for_loan in items:
        record.add_field(
            Field(
                tag="852",
                indicators=[" ", " "],
                subfields=[
                    Subfield("b", branch),
                    Subfield("p", barcode),
                    Subfield("h", "913.6"),
                    Subfield("7", not_for_loan),
                ],
            )
        )
    return record


def write_mrc(path: Path, records: list[Record]) -> Path:
    path.write_bytes(b"".join(r.as_marc() for r in records))
    return path


async def _count(db: AsyncSession, model) -> int:  # type: ignore[no-untyped-def]
    return await db.scalar(select(func.count()).select_from(model)) or 0


async def test_marc_import_is_idempotent_and_searchable(db: AsyncSession, tmp_path: Path) -> None:
    records = [
        marc(
            "imp-1",
            "はじめての図書館学",
            reading="はじめてのとしょかんがく",
            author="山田 一郎",
            isbn="978-4-00-000001-1",
            items=[("central", "900000001", "0"), ("east", "900000002", "0")],
            series=("図書館学講座", "1"),
        ),
        marc("imp-2", "Library Science Today", author="Ann Reader", items=[("west", "900000003", "1")]),
    ]
    path = write_mrc(tmp_path / "new.mrc", records)
    bibs_before, items_before = await _count(db, Bib), await _count(db, Item)
    summary = await import_records(db, read_file(path))
    assert (summary.imported, summary.updated, summary.rejected) == (2, 0, [])
    assert await _count(db, Bib) == bibs_before + 2 and await _count(db, Item) == items_before + 3
    first = await db.scalar(select(Bib).where(Bib.control_number == "imp-1"))
    assert first is not None and first.isbn == "9784000000011" and first.pub_year == 2024 and first.loanable
    assert (await db.scalar(select(Series.title).where(Series.id == first.series_id))) == "図書館学講座"
    second = await db.scalar(select(Bib).where(Bib.control_number == "imp-2"))
    assert second is not None and not second.loanable  # its only copy is not for loan
    page = await catalog.search(db, catalog.parse_params({"q": "図書館学"}, [1, 2, 3]))
    assert "はじめての図書館学" in [h.title for h in page.hits]
    page = await catalog.search(db, catalog.parse_params({"q": "としょかんがく"}, [1, 2, 3]))
    assert "はじめての図書館学" in [h.title for h in page.hits]
    # Seen again with a changed title: updated, not duplicated.
    records[0] = marc("imp-1", "はじめての図書館学 改訂版", items=[("central", "900000001", "0")])
    again = await import_records(db, read_file(write_mrc(tmp_path / "again.mrc", records)))
    assert (again.imported, again.updated) == (0, 2)
    assert await _count(db, Bib) == bibs_before + 2 and await _count(db, Item) == items_before + 3
    page = await catalog.search(db, catalog.parse_params({"q": "改訂版"}, [1, 2, 3]))
    assert [h.title for h in page.hits] == ["はじめての図書館学 改訂版"]


async def test_marcxml_import(db: AsyncSession, tmp_path: Path) -> None:
    path = tmp_path / "records.xml"
    writer = XMLWriter(path.open("wb"))
    writer.write(marc("xml-1", "吾輩は犬である", author="犬山 太郎", items=[("central", "910000001", "0")]))
    writer.close()
    summary = await import_records(db, read_file(path))
    assert summary.imported == 1
    assert await db.scalar(select(Bib.title).where(Bib.control_number == "xml-1")) == "吾輩は犬である"


async def test_rejected_records_say_why_and_write_nothing(db: AsyncSession, tmp_path: Path) -> None:
    existing_barcode = await db.scalar(select(Item.barcode).limit(1))
    records = [
        marc(None, "番号のない書誌"),
        marc("bad-branch", "館コード違い", items=[("atlantis", "920000001", "0")]),
        marc("stolen-barcode", "バーコード重複", items=[("central", str(existing_barcode), "0")]),
        marc("twice", "同じバーコード", items=[("central", "920000002", "0"), ("east", "920000002", "0")]),
        marc("ok-1", "<script>alert(1)</script>", items=[("central", "920000003", "0")]),
    ]
    bibs_before = await _count(db, Bib)
    summary = await import_records(db, read_file(write_mrc(tmp_path / "mixed.mrc", records)))
    reasons = sorted(r.reason for r in summary.rejected)
    assert summary.imported == 1 and len(reasons) == 4
    assert any("no control number" in r for r in reasons) and any("unknown branch code" in r for r in reasons)
    assert any("already used by another title" in r for r in reasons) and any("twice" in r for r in reasons)
    assert all("mixed.mrc record" in r.source for r in summary.rejected)
    assert await _count(db, Bib) == bibs_before + 1
    stored = await db.scalar(select(Bib.title).where(Bib.control_number == "ok-1"))
    assert stored == "<script>alert(1)</script>"  # stored as text; templates escape it


async def test_csv_import_groups_items_by_control_number(db: AsyncSession, tmp_path: Path) -> None:
    path = tmp_path / "books.csv"
    path.write_text(
        "\ufeffcontrol_number,title,title_reading,authors,publisher,pub_year,isbn,material_type,barcode,branch,loanable\n"
        "csv-1,星を継ぐもの,ほしをつぐもの,J. P. ホーガン,東京創元社,1980,,book,930000001,central,1\n"
        "csv-1,星を継ぐもの,ほしをつぐもの,J. P. ホーガン,東京創元社,1980,,book,930000002,west,1\n"
        'csv-2,=HYPERLINK("http://x"),,,,2020,12,book,930000003,central,1\n'
        "csv-3,,,,,,,book,,,\n",
        encoding="utf-8",
    )
    summary = await import_records(db, read_file(path))
    assert summary.imported == 1 and sorted(r.reason for r in summary.rejected) == [
        "malformed ISBN '12'",
        "no title",
    ]
    bib_id = await db.scalar(select(Bib.id).where(Bib.control_number == "csv-1"))
    assert await db.scalar(select(func.count()).where(Item.bib_id == bib_id)) == 2


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="no such file"):
        list(read_file(tmp_path / "missing.mrc"))
    odd = tmp_path / "notes.txt"
    odd.write_text("hello")
    with pytest.raises(ImportFileError, match="not MARC 21"):
        list(read_file(odd))
    bad_csv = tmp_path / "x.csv"
    bad_csv.write_text("name,year\nx,1\n")
    with pytest.raises(ImportFileError, match="missing CSV column"):
        list(read_file(bad_csv))


def test_import_command_prints_a_summary(database_url: str, tmp_path: Path) -> None:
    path = write_mrc(
        tmp_path / "cli.mrc",
        [marc("cli-1", "コマンドの本", items=[("central", "940000001", "0")]), marc(None, "だめな本")],
    )
    env = {**os.environ, "DATABASE_URL": database_url, "VAR_DIR": str(tmp_path), "APP_ENV": "test"}
    done = subprocess.run(
        [sys.executable, "-m", "app", "import-catalogue", str(path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Imported 1 new, updated 0, rejected 1." in done.stdout
    assert "no control number (001)" in done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "app", "import-catalogue", str(tmp_path / "none.mrc")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr
