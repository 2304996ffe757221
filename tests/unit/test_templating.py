"""app/templating.py: pages compiled per language render what run-time translation renders, escaped alike."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jinja2 import DictLoader
from markupsafe import escape

from app import i18n
from app.main import _jinja_env, create_app
from app.templating import LanguageEnvironment

if TYPE_CHECKING:
    import pytest

    from app.settings import Settings

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


HOSTILE = {
    "text": "<script>alert('x')</script> & \"quoted\"",
    "number": 7,
    "nothing": None,
    "safe": "<b>kept</b>",
    "items": ["<i>", "a&b"],
}
SHOWN = """{% from "macros.txt" import card %}{% from "macros.txt" import card as again %}
<p title="{{ text }}">{{ text }}|{{ number }}|{{ nothing }}|{{ safe | safe }}|{{ text ~ number }}</p>
{% for item in items %}{{ card(item) }}{{ again(item) }}{% endfor %}
{% set inline %}[{{ text }}]{% endset %}{{ inline }}"""
MACROS = "{% macro card(value) %}<li>{{ value }}</li>{% endmacro %}"


def test_pages_escape_exactly_as_jinja_does() -> None:
    """PageTemplate's plain-str escaping and its reused import module change nothing a page shows."""
    from jinja2 import Environment

    sources = {"shown.txt": SHOWN, "macros.txt": MACROS}
    ours = LanguageEnvironment(autoescape=True, loader=_PrefixedDict(sources))
    plain = Environment(autoescape=True, loader=DictLoader(sources))
    expected = plain.get_template("shown.txt").render(HOSTILE)
    assert "&lt;script&gt;" in expected and "<b>kept</b>" in expected and "<li>&lt;i&gt;</li>" in expected
    for _ in range(2):  # the second time through, the imported module is the one made first
        assert ours.get_template("en/shown.txt").render(HOSTILE) == expected


def test_an_import_by_a_page_with_globals_of_its_own_sees_them() -> None:
    """The shortcut for imports serves only pages whose globals the module already knows."""
    sources = {
        "page.txt": '{% from "greeting.txt" import hello %}{{ hello() }}',
        "visited.txt": '{% from "greeting.txt" import hello %}{{ hello() }}',
        "greeting.txt": "{% macro hello() %}hello {{ visitor or 'everyone' }}{% endmacro %}",
    }
    env = LanguageEnvironment(autoescape=True, loader=_PrefixedDict(sources))
    assert env.get_template("en/page.txt").render() == "hello everyone"
    assert env.get_template("en/page.txt").render() == "hello everyone"
    # A page given a global of its own gets a module that sees it, as in Jinja, although the
    # module made for the first page is there.
    visited = env.get_template("en/visited.txt", globals={"visitor": "Hanako"})
    assert visited.render() == "hello Hanako"
    assert env.get_template("en/page.txt").render() == "hello everyone"


def test_calls_from_a_page_reach_macros_functions_and_context_takers_as_jinja_makes_them() -> None:
    """PageContext calls macros and plain functions directly; what asks for the context still gets it."""
    from jinja2 import Environment, pass_context, pass_environment

    from app.templating import PageContext

    @pass_context
    def who(context, suffix):  # type: ignore[no-untyped-def]
        return context["name"] + suffix

    @pass_environment
    def env_name(environment):  # type: ignore[no-untyped-def]
        return type(environment).__name__

    def stops():  # type: ignore[no-untyped-def]
        raise StopIteration

    class Shout:
        def loud(self, text: str) -> str:
            return text.upper()

    source = (
        "{% macro card(x, tail='') %}<{{ x }}{{ tail }}>{% endmacro %}"
        "{% for n in [1, 2] %}{{ card(n, tail='!') }}{{ plain(n) }}{{ who('?') }}{% endfor %}"
        "|{{ env_name() }}|{{ shout.loud('a<b') }}|{{ stops() }}|{{ (lambda_ or plain)(3) }}"
    )
    page_env = Environment(autoescape=True)
    page_env.context_class = PageContext
    jinja_env = Environment(autoescape=True)
    names = {"plain": lambda n: n * 10, "who": who, "env_name": env_name, "stops": stops, "shout": Shout()}
    ours = page_env.from_string(source).render(name="Hanako", **names)
    theirs = jinja_env.from_string(source).render(name="Hanako", **names)
    assert ours == theirs == "<1!>10Hanako?<2!>20Hanako?|Environment|A&lt;B||30"


def test_pages_start_from_their_globals_as_jinja_gives_them() -> None:
    """PageTemplate builds each context from a dict of its globals made once, not from Jinja's
    ChainMap at every render: pages, includes and imports see the same names, and a page's
    own variables still win over a global of the same name."""
    from jinja2 import Environment

    sources = {
        "page.txt": (
            '{% from "m.txt" import tag %}{% set local = "L" %}[{{ site }}|{{ shared }}|{{ tag() }}]'
            '{% include "part.txt" %}{% for n in range(2) %}{{ n }}{% endfor %}'
        ),
        "part.txt": "({{ site }}{{ local }}{{ shared }})",
        "m.txt": "{% macro tag() %}<{{ site }}>{% endmacro %}",
    }
    ours = LanguageEnvironment(autoescape=True, loader=_PrefixedDict(sources))
    plain = Environment(autoescape=True, loader=DictLoader(sources))
    for env in (ours, plain):
        env.globals.update(site="City", shared="global")
    for variables in ({}, {"shared": "page's own"}):
        expected = plain.get_template("page.txt").render(variables)
        for _ in range(2):
            assert ours.get_template("en/page.txt").render(variables) == expected
    assert plain.get_template("page.txt").render() == "[City|global|<City>](CityLglobal)01"
    assert ours.get_template("en/part.txt").new_context().globals_keys >= {"site", "shared", "range"}


def test_attribute_lookups_in_the_page_answer_as_jinjas_getattr() -> None:
    """PageCodeGenerator reads `x.name` in the compiled page; every case answers as Jinja's
    `environment.getattr` does: attribute first, then item, then undefined; errors alike."""
    import pytest
    from jinja2 import Environment
    from jinja2.exceptions import UndefinedError

    class Book:
        title = "<b>坊っちゃん</b>"
        authors = ""

        @property
        def broken(self) -> str:
            raise AttributeError("inside a property")

        def shout(self) -> str:
            return self.title.upper()

    source = (
        "{% macro card(b) %}[{{ b.title }}|{{ b.authors or 'none' }}]{% endmacro %}"
        "{{ card(book) }}{{ row.title }}|{{ row.items }}|{{ row.missing }}|{{ book.missing }}|"
        "{{ book.broken }}|{{ book.shout() }}|{{ nested.inner.value }}|{{ pairs.1 }}|"
        "{% for r in rows if r.keep %}{{ loop.index }}{{ r.name }}{% endfor %}|{{ text.upper() }}|"
        "{% set t = book.title %}{{ t | length }}|{{ (book.title if row.title else '') | length }}"
    )
    variables = {
        "book": Book(),
        "row": {"title": "dict title", "items": "an item called items"},
        "nested": {"inner": {"value": 42}},
        "pairs": {"1": "one"},
        "rows": [{"name": "a", "keep": True}, {"name": "b", "keep": False}, {"name": "c", "keep": 1}],
        "text": "kana",
    }
    ours = LanguageEnvironment(autoescape=True, loader=_PrefixedDict({"p.txt": source}))
    plain = Environment(autoescape=True, loader=DictLoader({"p.txt": source}))
    expected = plain.get_template("p.txt").render(variables)
    assert ours.get_template("en/p.txt").render(variables) == expected
    assert expected.startswith("[&lt;b&gt;坊っちゃん&lt;/b&gt;|none]dict title|&lt;built-in method items")
    assert expected.endswith("|||&lt;B&gt;坊っちゃん&lt;/B&gt;|42||1a2c|KANA|12|12")
    for env, name in ((ours, "en/q.txt"), (plain, "q.txt")):
        env.loader.mapping["q.txt"] = "{{ nothing.here }}"  # type: ignore[union-attr]
        with pytest.raises(UndefinedError):
            env.get_template(name).render()
    assert "_ga_o" in ours.compile("{{ a.b }}", raw=True)  # the lookup is in the page's code


def test_macros_called_with_every_argument_by_position_answer_as_jinja() -> None:
    """PageContext runs such a macro's body at once; every other kind of call still goes through
    Macro.__call__. Both render what Jinja renders, escaping included, with autoescape on and off."""
    from jinja2 import Environment

    from app.templating import PageContext

    source = (
        "{% macro card(x, tail='.') %}<i>{{ x }}{{ tail }}</i>{% endmacro %}"
        "{% macro wrap(x) %}[{{ caller() }}{{ x }}]{% endmacro %}"
        "{% macro many(x) %}{{ x }}{{ varargs | join(',') }}{{ kwargs | dictsort | join(';') }}{% endmacro %}"
        "{{ card(a, b) }}|{{ card(a) }}|{{ card(a, tail=b) }}|{{ card(a, b) | upper }}|"
        "{% call wrap(a) %}in{% endcall %}|{{ many(a, 1, 2, k='v') }}|{{ many(a) }}|"
        "{% set saved = card(a, b) %}{{ saved }}{{ saved | length }}"
    )
    values = {"a": "<a&b>", "b": "'!'"}
    for autoescape in (True, False):
        ours = Environment(autoescape=autoescape)
        ours.context_class = PageContext
        theirs = Environment(autoescape=autoescape)
        expected = theirs.from_string(source).render(values)
        assert ours.from_string(source).render(values) == expected
        if autoescape:
            assert expected.startswith("<i>&lt;a&amp;b&gt;&#39;!&#39;</i>|<i>&lt;a&amp;b&gt;.</i>|")


def test_pages_and_blocks_written_in_one_piece_render_as_jinja_renders_them() -> None:
    """PageCodeGenerator buffers a page's body and each block and yields it once: pages with a
    parent, blocks within blocks, `super()`, `self.block()`, includes, imports, loops with
    `{% else %}`, `{% set %}` blocks and output before `{% extends %}` come out as Jinja writes them,
    and a block rendered alone (jinja2-fragments, for htmx) is the same block."""
    from jinja2 import Environment
    from jinja2_fragments import render_block

    sources = {
        "base.txt": (
            "<title>{% block title %}Base{% endblock %}</title>"
            "{% block nav %}<nav>{{ text }}</nav>{% endblock %}"
            "<main>{% block body %}{% block inner %}[inner]{% endblock %}{% endblock %}</main>"
            "{% include 'part.txt' %}<footer>{{ self.title() }}</footer>"
        ),
        "part.txt": "({% for i in items %}{{ i }}{% else %}none{% endfor %})",
        "macros.txt": "{% macro m(x) %}<m>{{ x }}</m>{% endmacro %}",
        "page.txt": (
            "{% extends 'base.txt' %}"
            "{% block title %}{{ super() }} &gt; {{ text }}{% endblock %}"
            "{% block inner %}{% from 'macros.txt' import m %}"
            "{% for i in items %}<li>{{ m(i) }}</li>{% endfor %}"
            "{% set held %}<{{ text }}>{% endset %}{{ held }}{% endblock %}"
        ),
    }
    values = {"text": "<a&b>", "items": ["x<", "y"]}
    ours = LanguageEnvironment(autoescape=True, loader=_PrefixedDict(sources))
    plain = Environment(autoescape=True, loader=DictLoader(sources))
    expected = plain.get_template("page.txt").render(values)
    assert "<li><m>x&lt;</m></li>" in expected and "(x&lt;y)" in expected
    assert "<title>Base &gt; &lt;a&amp;b&gt;</title>" in expected
    assert ours.get_template("en/page.txt").render(values) == expected
    fragment = render_block(plain, "page.txt", "inner", values)
    assert fragment.startswith("<li><m>") and render_block(ours, "en/page.txt", "inner", values) == fragment
    page = ours.get_template("en/page.txt")
    pieces = list(page.blocks["inner"](page.new_context(values)))
    assert len(pieces) == 1  # the whole block in one piece, not one per text and value
    theirs = plain.get_template("page.txt")
    assert len(list(theirs.blocks["inner"](theirs.new_context(values)))) > 5


def test_a_pages_own_indentation_is_cut_and_what_it_shows_is_not() -> None:
    page = (
        "<ul>\n    {% for x in items %}\n    <li>{{ x }}</li>\n    {% endfor %}\n  </ul>\n"
        "<p>a  b</p>   \n\n  <p>{{ _('Renew') }}</p>"
    )
    form = "<form>\n    <textarea name=memo>{{ items[0] }}</textarea>\n    </form>"
    env = _jinja_env()
    env.loader = _PrefixedDict({"page.html": page, "form.html": form})
    items = ["one\n    two", "x"]
    collapsed = env.get_template("ja/page.html").render(items=items)
    assert collapsed == "<ul>\n\n<li>one\n    two</li>\n\n<li>x</li>\n\n</ul>\n<p>a  b</p>\n<p>延長</p>"
    # Rendered in a browser, nothing changes: each whitespace run is still whitespace.
    as_shown = env.get_template("page.html").render(items=items)  # no language: a mail, kept as written
    assert as_shown != collapsed and re.sub(r"\s+", " ", as_shown.replace("Renew", "延長")) == re.sub(
        r"\s+", " ", collapsed
    )
    # Where whitespace is content (<pre>, <textarea>), the template keeps all of it.
    assert env.get_template("en/form.html").render(items=items) == (
        "<form>\n    <textarea name=memo>one\n    two</textarea>\n    </form>"
    )


def test_addresses_with_number_parameters_are_written_by_the_page_itself() -> None:
    from app.main import create_app

    app = create_app()
    env = app.template_engine.engine
    page = (
        "{{ url_for('holds:cancel', hold_id=h.id) }}"
        "|{{ url_for('lists:remove_entry', entry_id=9, list_id=h.id) }}"
        "|{{ url_for('feed:ics', token=t) }}|{{ url_for('bibs:detail', bib_id=h.id) }}"
    )
    env.loader = _PrefixedDict({"urls.html": page})
    compiled = env.compile(page, "ja/urls.html", raw=True)
    assert "'/holds/%d/cancel' %" in compiled and "'/lists/%d/entries/%d/delete' %" in compiled
    assert "'/bibs/%d' %" in compiled and "'feed:ics'" in compiled  # a text parameter: still a call
    rendered = env.get_template("ja/urls.html").render(h={"id": 42}, t="a&b")
    assert rendered == "|".join(
        [
            app.route_reverse("holds:cancel", hold_id=42),
            app.route_reverse("lists:remove_entry", list_id=42, entry_id=9),
            str(escape(app.route_reverse("feed:ics", token="a&b"))),
            app.route_reverse("bibs:detail", bib_id=42),
        ]
    )
    assert rendered.startswith("/holds/42/cancel|/lists/42/entries/9/delete|")
    try:  # not a number: refused, as route_reverse refuses it
        env.get_template("ja/urls.html").render(h={"id": "42; x"}, t="")
    except TypeError:
        pass
    else:
        raise AssertionError("a text id was written into an address")


def test_plurals_and_filled_texts_are_written_by_the_page_as_ngettext_and_gettext_write_them() -> None:
    page = (
        '{{ ngettext("%(num)s item on loan.", "%(num)s items on loan.", n) }}'
        '|{{ ngettext("%(num)s overdue.", "%(num)s overdue.", things|length) }}'
        "|{{ _('Renew %(title)s', title=title) }}|{{ _('Suspended until %(date)s', date=fmt_date(day)) }}"
    )
    folded, plain = _env(fold=True), _env(fold=False)
    for env in (folded, plain):
        env.loader = _PrefixedDict({"p.txt": page})
    import datetime as dt

    for lang in i18n.LANGUAGES:
        for n in (0, 1, 2, 11):
            values = {"n": n, "things": ["x"] * n, "title": "<b>1</b>", "day": dt.date(2026, 12, 1)}
            i18n.set_language(lang)
            try:
                expected = plain.get_template("p.txt").render(**values)
                assert folded.get_template(f"{lang}/p.txt").render(**values) == expected
            finally:
                i18n.set_language("ja")
    compiled = folded.compile(page, "ja/p.txt", raw=True)
    assert "ngettext" not in compiled and "fill" not in compiled  # no call left for these
    assert "'plural'" in folded.compile(page, "en/p.txt", raw=True)  # English chooses at run time
    i18n.set_language("ja")
    assert (
        folded.get_template("ja/p.txt")
        .render(n=3, things=[], title="<b>", day=None)
        .startswith("貸出中 3点。|")
    )


async def test_the_served_app_compiles_every_page_before_its_first_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m app serve` (create_server_app) compiles each page template in each language once
    started: afterwards no page, for a guest or a patron, in Japanese or English, reads a template.
    Without that, the first requests after a worker started waited ~4 ms for each template they met."""
    import gc

    from litestar.testing import AsyncTestClient

    from app import main
    from tests.unit.conftest import login

    monkeypatch.setattr(main, "create_app", lambda: create_app(settings))  # a fresh, uncompiled app
    app = main.create_server_app()
    try:
        async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
            loader = app.template_engine.engine.loader  # type: ignore[union-attr]
            read: list[str] = []

            def get_source(environment: object, name: str) -> None:
                read.append(name)
                raise AssertionError(f"{name} was compiled by a request")

            monkeypatch.setattr(loader, "get_source", get_source)
            for lang in i18n.LANGUAGES:
                page = await client.get(f"/login?lang={lang}")
                assert page.status_code == 200 and f'<html lang="{lang}"' in page.text
            assert (await login(client)).status_code == 303
            pages = ("/mylibrary", "/loans", "/holds", "/search?q=%E7%8C%AB", "/cart", "/no-such-page")
            for lang in i18n.LANGUAGES:
                for path in pages:
                    page = await client.get(path + ("&" if "?" in path else "?") + f"lang={lang}")
                    assert page.status_code == (404 if path == "/no-such-page" else 200), (path, lang)
                    assert f'<html lang="{lang}"' in page.text
            assert read == []
    finally:
        gc.unfreeze()
