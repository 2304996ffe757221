"""app/templating.py: pages compiled per language render what run-time translation renders, escaped alike."""

import re

from jinja2 import DictLoader

from app import i18n
from app.main import _jinja_env
from app.templating import LanguageEnvironment

PAGE = """{% extends "base.txt" %}{% block body %}[{{ _("Loans") }}]
[{{ _("Renew %(title)s", title=title) }}]
[{{ _(label) }}]
[{{ url_for("loans:list") }}|{{ url_for("loans:renew", loan_id=7) }}]
[{{ fmt_date(day) }}]{% include "part.txt" %}{% endblock %}"""
BASE = "<{{ _('Skip to main content') }}>{% block body %}{% endblock %}"
PART = "({{ _('Renew') }})"


def _env(fold: bool) -> LanguageEnvironment:
    real = _jinja_env()
    env = real if fold else LanguageEnvironment(autoescape=True, extensions=["jinja2.ext.i18n"])
    env.loader = _PrefixedDict({"page.txt": PAGE, "base.txt": BASE, "part.txt": PART})
    env.globals["url_for"] = _fake_url_for
    env.globals["fmt_date"] = i18n.format_date
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=False)  # type: ignore[attr-defined]
    return env


class _PrefixedDict(DictLoader):
    def get_source(self, environment, template):  # type: ignore[no-untyped-def]
        lang, _, rest = template.partition("/")
        return super().get_source(environment, rest if lang in i18n.LANGUAGES else template)


def _fake_url_for(name: str, **params: object) -> str:
    return "/" + name.replace(":", "/") + "".join(f"/{v}" for v in params.values())


def _render(env: LanguageEnvironment, name: str, lang: str) -> str:
    import datetime as dt

    i18n.set_language(lang)
    try:
        return env.get_template(name).render(
            title='<script>alert(1)</script>"', label="Overdue", day=dt.date(2026, 11, 23)
        )
    finally:
        i18n.set_language("ja")


def test_folded_pages_match_run_time_translation_in_both_languages() -> None:
    folded, plain = _env(fold=True), _env(fold=False)
    for lang in i18n.LANGUAGES:
        expected = _render(plain, "page.txt", lang)
        assert _render(folded, f"{lang}/page.txt", lang) == expected
    ja = _render(folded, "ja/page.txt", "ja")
    assert "[貸出]" in ja and "<本文へ移動>" in ja and "(延長)" in ja  # base and include are Japanese too
    assert "&lt;script&gt;" in ja and "<script>" not in ja  # a value filled into a translation is escaped
    assert "[/loans/list|/loans/renew/7]" in ja and "2026年11月23日(月)" in ja
    assert "[Loans]" in _render(folded, "en/page.txt", "en")


def test_the_work_moves_to_compile_time() -> None:
    env = _env(fold=True)
    code = env.compile(PAGE, "ja/page.txt", raw=True)
    calls = re.findall(r"context\.call\(\(undefined\(name='(\w+)'\)", code)
    assert calls == [], calls  # no Context.call left: constants and filters instead
    assert "'貸出'" in code or "貸出" in code
    plain = env.compile(PAGE, "page.txt", raw=True)  # no language prefix: nothing folded (mail, tests)
    assert "context.call" in plain
