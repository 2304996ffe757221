"""Text for the catalogue index and for queries: the same normalisation on both sides.

Japanese has no spaces, so a run of kana or kanji is indexed as overlapping character
bigrams (吾輩は猫 → 吾輩 輩は は猫): any substring of two or more characters becomes a phrase of
bigrams, found by the index in well under a millisecond (docs/performance-notes.md). Single
characters go to a separate column so one-character queries work too. Katakana is folded to
hiragana, so ヤマダ and やまだ match; NFKC folds full-width letters and digits. Latin words are
indexed as words and searched as prefixes. Query text is never passed to FTS as syntax: every
token is quoted, so `"`, `*`, `NEAR`, `OR` or `-` in a query are just characters.

PostgreSQL gets exactly the same tokens as a tsvector literal (tsvector_literal / tsquery_expression):
weights stand for the FTS5 columns, positions make bigram phrases, `#` marks single characters; and
each 3- to 8-character prefix of a Latin word, without a position, which a query asks for instead
of `word:*` (one posting list, where `word:*` gathers every word starting so first); ts_rank still
ranks by the positioned, weighted lexemes (Query.rank).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_RUN = re.compile(
    r"[\u3041-\u3096\u30a1-\u30fa\u30fc\u3005\u3006\u4e00-\u9fff\uf900-\ufaff\u3400-\u4dbf]+|[^\W_]+"
)
_CJK_FIRST = re.compile(
    r"[\u3041-\u3096\u30a1-\u30fa\u30fc\u3005\u3006\u4e00-\u9fff\uf900-\ufaff\u3400-\u4dbf]"
)
MAX_TERMS = 8


def normalize(text: str) -> str:
    """NFKC, lower case, katakana folded to hiragana."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(chr(ord(ch) - 0x60) if "\u30a1" <= ch <= "\u30f6" else ch for ch in text)


def _runs(text: str) -> list[tuple[str, bool]]:
    return [(m.group(0), bool(_CJK_FIRST.match(m.group(0)))) for m in _RUN.finditer(normalize(text))]


def bigram_text(*fields: str) -> str:
    """Index text for one column: bigrams of Japanese runs, Latin words as they are."""
    tokens: list[str] = []
    for field in fields:
        for run, cjk in _runs(field):
            if cjk:
                tokens.extend(run[i : i + 2] for i in range(len(run) - 1)) if len(run) > 1 else tokens.append(
                    run
                )
            else:
                tokens.append(run)
    return " ".join(tokens)


def char_text(*fields: str) -> str:
    """Index text for the single-character column: each distinct Japanese character once."""
    seen: dict[str, None] = {}
    for field in fields:
        for run, cjk in _runs(field):
            if cjk:
                seen.update(dict.fromkeys(run))
    return " ".join(seen)


@dataclass(frozen=True)
class Query:
    """An FTS5 expression built only from quoted tokens, or None when nothing searchable remains.

    rank: on PostgreSQL, the expression without its index-only lexemes (word prefixes), for
    ts_rank; None where it is the expression itself."""

    expression: str | None
    terms: tuple[str, ...]
    rank: str | None = None


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def term_expression(text: str, column: str | None = None) -> Query:
    """AND of every term in `text`, each restricted to `column` when given."""
    parts: list[str] = []
    terms: list[str] = []
    for run, cjk in _runs(text)[:MAX_TERMS]:
        terms.append(run)
        if cjk and len(run) == 1:
            parts.append(f"chars : {_quote(run)}")
            continue
        if cjk:
            phrase = " ".join(run[i : i + 2] for i in range(len(run) - 1))
            expr = _quote(phrase)
        else:
            expr = _quote(run) + "*"
        parts.append(f"{column} : {expr}" if column else f"{{title author publisher subject}} : {expr}")
    return Query(" AND ".join(parts) if parts else None, tuple(terms))


# ---------------------------------------------------------------- PostgreSQL: the same tokens in a tsvector

WEIGHTS = {"title": "A", "author": "B", "publisher": "C", "subject": "D"}
FIELD_GAP = 100  # positions between fields, so a phrase never runs from one field into the next
MAX_POSITION = 16383  # PostgreSQL's limit for a tsvector position
PREFIX = ">"  # marks a word-prefix lexeme: '>gard' is "a word starting with gard"
PREFIX_LENGTHS = range(3, 9)  # as FTS5's prefix indexes on SQLite (migration 0013)


def _lexeme(token: str) -> str:
    """A quoted tsvector/tsquery lexeme: PostgreSQL reads it as is (no parser, no dictionary)."""
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_literal(index: dict[str, str]) -> str:
    """The FTS5 row of a bib (catalog.index_values) as a tsvector literal with weights and positions."""
    parts: list[str] = []
    position = 1
    for column, weight in WEIGHTS.items():
        for token in index[column].split():
            parts.append(f"{_lexeme(token)}:{min(position, MAX_POSITION)}{weight}")
            position += 1
        position += FIELD_GAP
    parts.extend(_lexeme("#" + ch) for ch in index["chars"].split())
    prefixes: dict[str, None] = {}
    for column in WEIGHTS:
        for token in index[column].split():
            if not _CJK_FIRST.match(token):
                prefixes.update(dict.fromkeys(token[:n] for n in PREFIX_LENGTHS if n <= len(token)))
    parts.extend(_lexeme(PREFIX + prefix) for prefix in prefixes)
    return " ".join(parts)


def tsquery_expression(text: str, column: str | None = None) -> Query:
    """term_expression for PostgreSQL: AND of every term; a Japanese run is a phrase of bigrams."""
    weight = WEIGHTS[column] if column else ""
    parts: list[str] = []
    ranked: list[str] = []
    terms: list[str] = []
    for run, cjk in _runs(text)[:MAX_TERMS]:
        terms.append(run)
        if cjk and len(run) == 1:
            parts.append(_lexeme("#" + run))  # the single-character namespace, any field
            ranked.append(parts[-1])
            continue
        if cjk:
            grams = [
                f"{_lexeme(run[i : i + 2])}{':' + weight if weight else ''}" for i in range(len(run) - 1)
            ]
            parts.append("(" + " <-> ".join(grams) + ")")
            ranked.append(parts[-1])
            continue
        word = f"{_lexeme(run)}:*{weight}"
        ranked.append(word)
        if len(run) < PREFIX_LENGTHS.start:
            parts.append(word)
        elif len(run) <= PREFIX_LENGTHS[-1] and not weight:
            # A word-prefix lexeme is one posting list; `word:*` makes GIN gather every word that
            # starts so into a bitmap first (3× slower for a common word at 1 M titles).
            parts.append(_lexeme(PREFIX + run))
        else:  # longer than a prefix lexeme, or one field only: the prefix narrows, `word:*` decides
            parts.append(f"({_lexeme(PREFIX + run[: PREFIX_LENGTHS[-1]])} & {word})")
    if not parts:
        return Query(None, tuple(terms))
    return Query(" & ".join(parts), tuple(terms), " & ".join(ranked))
