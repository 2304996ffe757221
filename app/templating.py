"""The Jinja environment: pages compiled once per language, with fixed strings translated at compile time.

Why: a page says `{{ _("Holds") }}` dozens of times, and each is a call from the template into
Python at every request (Jinja's call dispatch, the catalogue lookup, escaping the result): on the
loans page that was a fifth of the page's time (bench/pages.py, profiled with py-spy). A string
with nothing to fill in has the same translation at every request, so:

- `render()` asks for `"<lang>/<template>"` (`ja/loans/list.html`);
- the loader serves the same file under each language prefix, and `{% extends %}` /
  `{% include %}` / `{% import %}` keep the prefix of the template that asks (`join_path`);
- the `FoldTranslations` extension replaces `_("literal")` and `gettext("literal")` with the
  translated literal while the template is compiled, which Jinja then escapes once and writes
  out as part of the page's fixed text.

Calls with values to fill in (`_("%(n)s loans", n=...)`) and `ngettext` stay calls, and a template
asked for without a prefix (mail, tests) is compiled as before with every call left in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream

from app import i18n

FOLDED = frozenset({"_", "gettext"})


def _language_of(name: str | None) -> str | None:
    prefix = (name or "").partition("/")[0]
    return prefix if prefix in i18n.LANGUAGES else None


class FoldTranslations(Extension):
    """`_("text")` → the text in the template's language, at compile time."""

    def filter_stream(self, stream: TokenStream) -> Iterable[Token]:
        lang = _language_of(stream.name)
        if lang is None:
            return stream
        return self._fold(list(stream), lang)

    @staticmethod
    def _fold(tokens: list[Token], lang: str) -> Iterator[Token]:
        i, n = 0, len(tokens)
        while i < n:
            token = tokens[i]
            if (
                token.type == "name"
                and token.value in FOLDED
                and i + 3 < n
                and (i == 0 or tokens[i - 1].type != "dot")
                and tokens[i + 1].type == "lparen"
                and tokens[i + 2].type == "string"
                and tokens[i + 3].type == "rparen"
            ):
                yield Token(token.lineno, "string", i18n.translate(lang, tokens[i + 2].value))
                i += 4
                continue
            yield token
            i += 1


class LanguageEnvironment(Environment):
    """Includes and parents resolve under the language prefix of the template that names them."""

    def join_path(self, template: str, parent: str) -> str:
        lang = _language_of(parent)
        if lang is None or _language_of(template) is not None:
            return template
        return f"{lang}/{template}"


def language_loader(directory: str) -> ChoiceLoader:
    files = FileSystemLoader(directory)
    return ChoiceLoader([PrefixLoader(dict.fromkeys(i18n.LANGUAGES, files)), files])
