"""Synthetic catalogues for the search benchmark, made on the fly so no bulk data lives in the repo.

Titles are built from word lists whose frequencies fall into three tiers (common, mid, rare), so
the benchmark can ask for a substring that matches a large share of the catalogue and one that
matches a few hundred titles, at any size. Each Japanese word carries its hiragana reading and
title_reading is assembled from the same words, so a kana query finds the titles as it would in
real data. Rows go in with plain sqlite3 and executemany (SQLAlchemy would dominate the run time at
a million rows); the search index is then built by the app's own reindex_all_sync, so the index
under test is exactly the one the app builds.

    python -m bench.generate /tmp/x.sqlite3 100000   # the file must already be migrated
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

BATCH = 50_000

# (word, hiragana reading). Common words make up most draws, rare ones about 0.1 % each, so a
# rare substring matches roughly n_bibs / 300 titles whatever the catalogue size.
COMMON_WORDS: tuple[tuple[str, str], ...] = (
    ("日本", "にほん"),
    ("歴史", "れきし"),
    ("世界", "せかい"),
    ("文化", "ぶんか"),
    ("科学", "かがく"),
    ("入門", "にゅうもん"),
    ("物語", "ものがたり"),
    ("社会", "しゃかい"),
    ("経済", "けいざい"),
    ("生活", "せいかつ"),
    ("時代", "じだい"),
    ("研究", "けんきゅう"),
    ("自然", "しぜん"),
    ("文学", "ぶんがく"),
    ("東京", "とうきょう"),
    ("子供", "こども"),
    ("料理", "りょうり"),
    ("旅行", "りょこう"),
    ("教育", "きょういく"),
    ("音楽", "おんがく"),
)
MID_WORDS: tuple[tuple[str, str], ...] = (
    ("美術", "びじゅつ"),
    ("技術", "ぎじゅつ"),
    ("地域", "ちいき"),
    ("環境", "かんきょう"),
    ("健康", "けんこう"),
    ("季節", "きせつ"),
    ("写真", "しゃしん"),
    ("宇宙", "うちゅう"),
    ("動物", "どうぶつ"),
    ("植物", "しょくぶつ"),
    ("数学", "すうがく"),
    ("哲学", "てつがく"),
    ("心理", "しんり"),
    ("家族", "かぞく"),
    ("未来", "みらい"),
    ("思想", "しそう"),
    ("戦争", "せんそう"),
    ("平和", "へいわ"),
    ("海洋", "かいよう"),
    ("鉄道", "てつどう"),
    ("建築", "けんちく"),
    ("庭園", "ていえん"),
    ("図書館", "としょかん"),
    ("はじめて", "はじめて"),
    ("やさしい", "やさしい"),
    ("たのしい", "たのしい"),
    ("ガイド", "がいど"),
    ("ノート", "のーと"),
)
RARE_WORDS: tuple[tuple[str, str], ...] = (
    ("天文学", "てんもんがく"),
    ("鉱物", "こうぶつ"),
    ("昆虫", "こんちゅう"),
    ("民俗学", "みんぞくがく"),
    ("陶芸", "とうげい"),
    ("俳句", "はいく"),
    ("和歌", "わか"),
    ("茶道", "さどう"),
    ("城郭", "じょうかく"),
    ("古墳", "こふん"),
    ("漁業", "ぎょぎょう"),
    ("気象", "きしょう"),
    ("火山", "かざん"),
    ("地震", "じしん"),
    ("方言", "ほうげん"),
    ("神話", "しんわ"),
    ("祭礼", "さいれい"),
    ("薬草", "やくそう"),
    ("灯台", "とうだい"),
    ("織物", "おりもの"),
    ("盆栽", "ぼんさい"),
    ("落語", "らくご"),
    ("将棋", "しょうぎ"),
    ("囲碁", "いご"),
    ("渡り鳥", "わたりどり"),
    ("星座", "せいざ"),
    ("琵琶湖", "びわこ"),
    ("蒸気機関", "じょうききかん"),
    ("養蜂", "ようほう"),
    ("刺繍", "ししゅう"),
)
# Tier shares of all word draws: 75 % common, 22 % mid, 3 % rare.
_TIER_SHARES = ((COMMON_WORDS, 0.75), (MID_WORDS, 0.22), (RARE_WORDS, 0.03))
JOINERS: tuple[tuple[str, str], ...] = (("の", "の"), ("と", "と"), ("", ""), ("", ""))
SUFFIXES: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("", ""),
    ("", ""),
    ("事典", "じてん"),
    ("読本", "とくほん"),
    ("講座", "こうざ"),
    ("百話", "ひゃくわ"),
)

ENGLISH_WORDS: tuple[str, ...] = (
    "history", "world", "science", "introduction", "garden", "city", "music", "life", "art", "modern",
    "guide", "japan", "nature", "story", "children", "language", "economy", "design", "ocean", "mountain",
    "river", "light", "future", "travel", "food", "culture", "war", "peace", "house", "machine",
    "theory", "practice", "poetry", "letters", "island", "winter", "summer", "night", "stars", "birds",
)  # fmt: skip

SURNAMES: tuple[tuple[str, str], ...] = (
    ("山田", "やまだ"), ("佐藤", "さとう"), ("鈴木", "すずき"), ("高橋", "たかはし"), ("田中", "たなか"),
    ("伊藤", "いとう"), ("渡辺", "わたなべ"), ("中村", "なかむら"), ("小林", "こばやし"), ("加藤", "かとう"),
    ("吉田", "よしだ"), ("山本", "やまもと"), ("松本", "まつもと"), ("井上", "いのうえ"), ("木村", "きむら"),
    ("清水", "しみず"), ("森", "もり"), ("池田", "いけだ"), ("橋本", "はしもと"), ("石川", "いしかわ"),
)  # fmt: skip
GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("太郎", "たろう"), ("花子", "はなこ"), ("健一", "けんいち"), ("陽子", "ようこ"), ("誠", "まこと"),
    ("美咲", "みさき"), ("大輔", "だいすけ"), ("恵", "めぐみ"), ("翔", "しょう"), ("由美", "ゆみ"),
    ("浩", "ひろし"), ("直子", "なおこ"), ("拓也", "たくや"), ("彩", "あや"), ("修", "おさむ"),
)  # fmt: skip
ENGLISH_AUTHORS: tuple[str, ...] = (
    "John Smith", "Mary Johnson", "David Brown", "Sarah Wilson", "James Taylor", "Emma Clark",
    "Robert Lewis", "Anna Walker", "Peter Hall", "Laura Young",
)  # fmt: skip
PUBLISHERS_JA: tuple[str, ...] = (
    "東都出版", "青空書房", "みなと社", "北斗書店", "若葉出版", "港町文庫", "山河書院", "白樺社",
)  # fmt: skip
PUBLISHERS_EN: tuple[str, ...] = ("Harbor Press", "Northfield Books", "Lantern House", "Greenway Publishing")
BRANCHES: tuple[tuple[str, str, str], ...] = (
    ("central", "中央図書館", "Central Library"),
    ("east", "東分館", "East Branch"),
    ("west", "西分館", "West Branch"),
)


@dataclass(frozen=True)
class GenerateStats:
    """What generate() did and how long each half took (the benchmark reports both)."""

    bibs: int
    items: int
    insert_seconds: float
    index_seconds: float


def _word_table() -> tuple[list[tuple[str, str]], list[float]]:
    words: list[tuple[str, str]] = []
    weights: list[float] = []
    for tier, share in _TIER_SHARES:
        words.extend(tier)
        weights.extend([share / len(tier)] * len(tier))
    return words, weights


class _Catalogue:
    """Random bib fields from one seeded generator, so a size and seed always give the same data."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        words, weights = _word_table()
        self.words = words
        self.cum_weights = [sum(weights[: i + 1]) for i in range(len(weights))]

    def _words(self, k: int) -> list[tuple[str, str]]:
        return self.rng.choices(self.words, cum_weights=self.cum_weights, k=k)

    def japanese_title(self) -> tuple[str, str]:
        """4–14 characters: two to four words with particles, sometimes a suffix like 事典."""
        rng = self.rng
        while True:
            parts = self._words(rng.randint(2, 4))
            title, reading = parts[0]
            for word, word_reading in parts[1:]:
                joiner, joiner_reading = rng.choice(JOINERS)
                title += joiner + word
                reading += joiner_reading + word_reading
            suffix, suffix_reading = rng.choice(SUFFIXES)
            title, reading = title + suffix, reading + suffix_reading
            if 4 <= len(title) <= 14:
                return title, reading

    def english_title(self) -> str:
        words = self.rng.sample(ENGLISH_WORDS, self.rng.randint(2, 5))
        if self.rng.random() < 0.5:
            words.insert(self.rng.randint(1, len(words) - 1), "of")
        return " ".join(w.capitalize() if w != "of" else w for w in words)

    def japanese_authors(self) -> tuple[str, str]:
        names = []
        for _ in range(1 if self.rng.random() < 0.8 else 2):
            (sur, sur_r), (given, given_r) = self.rng.choice(SURNAMES), self.rng.choice(GIVEN_NAMES)
            names.append((f"{sur} {given}", f"{sur_r} {given_r}"))
        return "; ".join(n for n, _ in names), "; ".join(r for _, r in names)

    def isbn(self) -> str:
        digits = "978" + "".join(str(self.rng.randrange(10)) for _ in range(9))
        check = (10 - sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits)) % 10) % 10
        return digits + str(check)

    def bib_row(self, bib_id: int) -> tuple[object, ...]:
        rng = self.rng
        if rng.random() < 0.2:
            title, reading = self.english_title(), ""
            authors, authors_reading = rng.choice(ENGLISH_AUTHORS), ""
            publisher, language = rng.choice(PUBLISHERS_EN), "eng"
            subjects = " -- ".join(w.capitalize() for w in rng.sample(ENGLISH_WORDS, rng.randint(1, 2)))
        else:
            title, reading = self.japanese_title()
            authors, authors_reading = self.japanese_authors()
            publisher, language = rng.choice(PUBLISHERS_JA), "jpn"
            subjects = " -- ".join(w for w, _ in self._words(rng.randint(1, 2)))
        return (
            bib_id,
            f"gen-{bib_id}",
            title,
            reading,
            authors,
            authors_reading,
            publisher,
            rng.randint(1950, 2026),
            self.isbn(),
            subjects,
            language,
            "magazine" if rng.random() < 0.05 else "book",
            0 if rng.random() < 0.02 else 1,
        )


_BIB_INSERT = (
    "INSERT INTO bibs (id, control_number, title, title_reading, authors, authors_reading, publisher, "
    "pub_year, isbn, subjects, language, material_type, loanable, series_id, series_volume, created_at, "
    "search_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, CURRENT_TIMESTAMP, NULL)"
)
_ITEM_INSERT = (
    "INSERT INTO items (id, barcode, bib_id, branch_id, location_branch_id, status, loanable, is_ill, "
    "available_since, shelfmark) VALUES (?, ?, ?, ?, NULL, ?, 1, 0, NULL, '')"
)


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _ensure_branches(db: sqlite3.Connection) -> list[int]:
    if db.execute("SELECT count(*) FROM branches").fetchone()[0] == 0:
        db.executemany(
            "INSERT INTO branches (code, name_ja, name_en, closed_weekdays, is_pickup_point) "
            "VALUES (?, ?, ?, '', 1)",
            BRANCHES,
        )
    return [row[0] for row in db.execute("SELECT id FROM branches ORDER BY id LIMIT 3")]


def _path(database_url_or_path: str) -> str:
    """Accept a plain path or an SQLAlchemy URL such as sqlite+aiosqlite:////tmp/x.sqlite3."""
    if "://" not in database_url_or_path:
        return database_url_or_path
    path = database_url_or_path.split("://", 1)[1]
    return path[1:] if path.startswith("/") else path


def insert_rows(path: str, n_bibs: int, seed: int = 0) -> int:
    """Insert n_bibs bibs and 1–2 items each after any rows already there; returns the item count."""
    catalogue = _Catalogue(seed)
    db = sqlite3.connect(path)
    try:
        # A throwaway file: durability does not matter, speed of the bulk load does.
        db.execute("PRAGMA synchronous=OFF")
        with db:
            branch_ids = _ensure_branches(db)
            first_bib = db.execute("SELECT coalesce(max(id), 0) + 1 FROM bibs").fetchone()[0]
            next_item = db.execute("SELECT coalesce(max(id), 0) + 1 FROM items").fetchone()[0]
        items = 0
        for batch in _batches(n_bibs, BATCH):
            bib_rows = [catalogue.bib_row(first_bib + i) for i in batch]
            item_rows: list[tuple[object, ...]] = []
            for row in bib_rows:
                for _ in range(1 if catalogue.rng.random() < 0.6 else 2):
                    status = "on_loan" if catalogue.rng.random() < 0.2 else "on_shelf"
                    branch = catalogue.rng.choice(branch_ids)
                    item_rows.append((next_item, f"G{next_item:010d}", row[0], branch, status))
                    next_item += 1
            with db:
                db.executemany(_BIB_INSERT, bib_rows)
                db.executemany(_ITEM_INSERT, item_rows)
            items += len(item_rows)
        return items
    finally:
        db.close()


def build_index(path: str) -> int:
    """The app's own full reindex, on a sync SQLAlchemy connection; returns the rows indexed."""
    from sqlalchemy import create_engine

    from app.services.catalog import reindex_all_sync

    engine = create_engine("sqlite:///" + path)
    try:
        with engine.begin() as conn:
            return reindex_all_sync(conn)
    finally:
        engine.dispose()


def generate(database_url_or_path: str, n_bibs: int, seed: int = 0) -> GenerateStats:
    """Fill an already-migrated SQLite file with n_bibs synthetic bibs and their items, then index them."""
    path = _path(database_url_or_path)
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: run `python -m app migrate` first")
    started = time.perf_counter()
    items = insert_rows(path, n_bibs, seed)
    inserted = time.perf_counter()
    build_index(path)
    return GenerateStats(n_bibs, items, inserted - started, time.perf_counter() - inserted)


# ---------------------------------------------------------------- queries the benchmark asks


def query_sets() -> dict[str, list[str]]:
    """About twenty queries per kind, all drawn from the word lists above so they match by design."""
    common = [w for w, _ in COMMON_WORDS]  # two-kanji words, each in roughly one title in eight
    rare = [w for w, _ in RARE_WORDS if all("\u4e00" <= ch <= "\u9fff" for ch in w)]
    rare = [w if len(w) <= 3 else w[:3] for w in rare][:20]
    # Whole readings of four to six kana: common words first, then mid-frequency ones.
    readings = [r for _, r in COMMON_WORDS + MID_WORDS if 4 <= len(r) <= 6 and "ー" not in r]
    return {
        "ja common 2-char": common,
        "ja rare 2–3 char": rare,
        "kana reading": readings[:20],
        "english word": list(ENGLISH_WORDS[:20]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("database", help="path (or sqlite URL) of a migrated SQLite file")
    parser.add_argument("n_bibs", type=int)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stats = generate(args.database, args.n_bibs, args.seed)
    print(
        f"{stats.bibs} bibs, {stats.items} items: insert {stats.insert_seconds:.1f} s, "
        f"index {stats.index_seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# ---------------------------------------------------------------- PostgreSQL


def psycopg_url(database_url: str) -> str:
    """postgresql+asyncpg://… → the plain libpq URL psycopg takes."""
    return "postgresql://" + database_url.split("://", 1)[1]


def insert_rows_postgres(database_url: str, n_bibs: int, seed: int = 0) -> int:
    """The same rows as insert_rows() (same seed, same generator), loaded with COPY."""
    import psycopg

    catalogue = _Catalogue(seed)
    with psycopg.connect(psycopg_url(database_url)) as db:
        if db.execute("SELECT count(*) FROM branches").fetchone()[0] == 0:  # type: ignore[index]
            with db.cursor() as cur:
                cur.executemany(
                    "INSERT INTO branches (code, name_ja, name_en, closed_weekdays, is_pickup_point) "
                    "VALUES (%s, %s, %s, '', true)",
                    BRANCHES,
                )
        branch_ids = [r[0] for r in db.execute("SELECT id FROM branches ORDER BY id LIMIT 3")]
        next_item, items = 1, 0
        for batch in _batches(n_bibs, BATCH):
            bib_rows = [catalogue.bib_row(1 + i) for i in batch]
            item_rows = []
            for row in bib_rows:
                for _ in range(1 if catalogue.rng.random() < 0.6 else 2):
                    status = "on_loan" if catalogue.rng.random() < 0.2 else "on_shelf"
                    branch = catalogue.rng.choice(branch_ids)
                    item_rows.append((next_item, f"G{next_item:010d}", row[0], branch, status))
                    next_item += 1
            with db.cursor() as cur:
                with cur.copy(
                    "COPY bibs (id, control_number, title, title_reading, authors, authors_reading, "
                    "publisher, pub_year, isbn, subjects, language, material_type, loanable) FROM STDIN"
                ) as copy:
                    for row in bib_rows:
                        copy.write_row((*row[:12], bool(row[12])))
                with cur.copy(
                    "COPY items (id, barcode, bib_id, branch_id, status, loanable, is_ill, shelfmark) "
                    "FROM STDIN"
                ) as copy:
                    for item in item_rows:
                        copy.write_row((*item, True, False, ""))
            db.commit()
            items += len(item_rows)
        db.execute("SELECT setval('bibs_id_seq', (SELECT max(id) FROM bibs))")
        db.execute("SELECT setval('items_id_seq', (SELECT max(id) FROM items))")
        db.commit()
    return items


def generate_postgres(database_url: str, n_bibs: int, seed: int = 0) -> GenerateStats:
    """Fill a migrated, empty PostgreSQL database, then build the app's search index (bib_search)."""
    from sqlalchemy import create_engine

    from app.services.catalog import reindex_all_sync

    started = time.perf_counter()
    items = insert_rows_postgres(database_url, n_bibs, seed)
    inserted = time.perf_counter()
    engine = create_engine(database_url.replace("+asyncpg", "+psycopg"))
    try:
        with engine.begin() as conn:
            reindex_all_sync(conn)
    finally:
        engine.dispose()
    return GenerateStats(n_bibs, items, inserted - started, time.perf_counter() - inserted)
