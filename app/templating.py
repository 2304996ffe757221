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

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from types import FunctionType, MethodType
from typing import Any

import markupsafe
from jinja2 import BaseLoader, Environment, FileSystemLoader, Template, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.environment import TemplateModule
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from jinja2.runtime import Context, Macro, new_context
from markupsafe import Markup, escape

from app import i18n

FOLDED = frozenset({"_", "gettext"})
# Calls that become filters (a filter is called directly; a call goes through Jinja's Context.call).
AS_FILTERS = {"fmt_date": "date", "url_for": "url", "static": "static"}
OPENING, CLOSING = {"lparen", "lbracket", "lbrace"}, {"rparen", "rbracket", "rbrace"}


def _language_of(name: str | None) -> str | None:
    prefix = (name or "").partition("/")[0]
    return prefix if prefix in i18n.LANGUAGES else None


def fill(text: str, **variables: object) -> str:
    """The second half of gettext: the translation (already looked up) with its values filled in."""
    return text % variables if variables else text


class FoldTranslations(Extension):
    """Work done once when a page is compiled for a language, instead of at every request:

    - `_("text")` → the translated text; `_("text %(n)s", n=x)` → `("translated" | fill(n=x))`;
    - `static("app.css")` → its hashed address; `url_for("loans:list")` → its path (routes and
      static files do not change while the app runs); with values, `("loans:renew" | url(...))`;
    - `fmt_date(x)` → `(x | date)`; `_(label)` → `(label | gettext)`.
    """

    def filter_stream(self, stream: TokenStream) -> Iterable[Token]:
        lang = _language_of(stream.name)
        if lang is None:
            return stream
        tokens = list(stream)
        if not any(token.type == "data" and _KEEPS_WHITESPACE.search(token.value) for token in tokens):
            tokens = [
                _collapsed(token, i > 0 and tokens[i - 1].type == "block_end")
                if token.type == "data"
                else token
                for i, token in enumerate(tokens)
            ]
        return self._fold(tokens, lang)

    def _fold(self, tokens: list[Token], lang: str) -> Iterator[Token]:
        i, n = 0, len(tokens)
        while i < n:
            token = tokens[i]
            if (
                token.type == "name"
                and (token.value in FOLDED or token.value in AS_FILTERS or token.value == "ngettext")
                and i + 1 < n
                and tokens[i + 1].type == "lparen"
                and (i == 0 or tokens[i - 1].type != "dot")
            ):
                end = _matching(tokens, i + 1)
                if end is not None:
                    folded = self._rewrite(token, tokens[i + 2 : end], lang)
                    if folded is not None:
                        yield from folded
                        i = end + 1
                        continue
            yield token
            i += 1

    def _rewrite(self, call: Token, args: list[Token], lang: str) -> list[Token] | None:
        line = call.lineno
        first, rest = _split_first(args)
        if not first:
            return None
        literal = first[0].value if len(first) == 1 and first[0].type == "string" else None
        first, rest = list(self._fold(first, lang)), list(self._fold(rest, lang))
        if call.value == "ngettext":
            return _plural(line, lang, literal, _split_all(rest))
        if call.value in FOLDED:
            if literal is None:  # a message chosen at run time: translated then, as a filter
                return _as_filter(line, first, "gettext", rest)
            translated = Token(line, "string", i18n.translate(lang, literal))
            if not rest:
                return [translated]
            values = _keywords(_split_all(rest))
            if values is None:
                return _as_filter(line, [translated], "fill", rest)
            return _formatted(line, [translated], values)
        if literal is not None and not rest:
            constant = self._constant(call.value, literal)
            if constant is not None:
                return [Token(line, "string", constant)]
        if literal is not None and call.value == "url_for":
            path = self._path(line, literal, rest)
            if path is not None:
                return path
        return _as_filter(line, first, AS_FILTERS[call.value], rest)

    def _path(self, line: int, name: str, args: list[Token]) -> list[Token] | None:
        """`url_for("holds:cancel", hold_id=x)` → `("/holds/%d/cancel" % ((x),))`, for a route whose
        path parameters are all integers, each given by name.

        Why: a search page asks for ~40 such addresses and the holds page 5 a hold, each a call into
        Python (the filter, its memo key and lookup); `%` on a string is done by the page's own code.
        `%d` accepts what Litestar's `{name:int}` accepts (a number) and fails on anything else, as
        `route_reverse` does. A tuple, not `_formatted`'s dict: `"%(name)d" % {...}` cost the holds
        page 3 % more (callgrind, 2,055 against 1,993 k a request).
        """
        pattern = getattr(self.environment.globals.get("url_for"), "pattern", None)
        found = pattern(name) if pattern is not None else None
        if found is None:
            return None
        text, order = found
        given = _keywords(_split_all(args))  # None: by position, or `**values`: left to url_for
        if given is None or set(given) != set(order):
            return None
        out = [Token(line, "lparen", "("), Token(line, "string", text), Token(line, "mod", "%")]
        out.append(Token(line, "lparen", "("))
        for key in order:
            value = given[key]
            out += [Token(line, "lparen", "("), *value, Token(line, "rparen", ")"), Token(line, "comma", ",")]
        return [*out, Token(line, "rparen", ")"), Token(line, "rparen", ")")]

    def _constant(self, function: str, argument: str) -> str | None:
        if function == "static":
            return str(self.environment.globals["static"](argument))  # type: ignore[operator]
        if function == "url_for" and "url_for" in self.environment.globals:
            return str(self.environment.globals["url_for"](argument))  # type: ignore[operator]
        return None


# A run of whitespace with a line break in it, in a page's own markup (not in the values it shows).
_LINE_BREAK_RUN = re.compile(r"[ \t]*\n\s*")
_INDENT = re.compile(r"\A[ \t]{2,}")
# Where the page's own whitespace is content: such a template keeps all of its whitespace.
_KEEPS_WHITESPACE = re.compile(r"<(pre|textarea)\b", re.IGNORECASE)


def _collapsed(token: Token, after_tag: bool) -> Token:
    """The template's own text with each whitespace run that breaks a line cut to one line break,
    and so is the indentation that starts the text after a `{% tag %}` (the tag's own line and line
    break are gone already: lstrip_blocks, trim_blocks).

    Why: the indentation of the template source made up a tenth of a page (the loans page: 1 088 of
    10 662 characters), and every character of a page is copied into the joined page and encoded
    to UTF-8 at every request, by CPython's per-character UCS-2 encoder once the page holds any
    Japanese (~12 instructions a character). A browser renders any run of whitespace between
    elements or words as one space, so the page looks the same. The values a page shows keep their
    whitespace (they are not template text), and a template with a `<pre>` or `<textarea>`, where
    whitespace is content, is left as it is.
    """
    value = _LINE_BREAK_RUN.sub("\n", token.value)
    if after_tag:
        value = _INDENT.sub("\n", value, count=1)
    return token if value == token.value else Token(token.lineno, token.type, value)


def _matching(tokens: list[Token], opening: int) -> int | None:
    """Index of the bracket closing tokens[opening], within the same expression."""
    depth = 0
    for j in range(opening, len(tokens)):
        kind = tokens[j].type
        if kind in OPENING:
            depth += 1
        elif kind in CLOSING:
            depth -= 1
            if depth == 0:
                return j
        elif kind in ("variable_end", "block_end", "eof"):
            return None
    return None


def _split_first(args: list[Token]) -> tuple[list[Token], list[Token]]:
    """The first argument's tokens, and the tokens after its comma."""
    depth = 0
    for j, token in enumerate(args):
        if token.type in OPENING:
            depth += 1
        elif token.type in CLOSING:
            depth -= 1
        elif token.type == "comma" and depth == 0:
            return args[:j], args[j + 1 :]
    return args, []


def _keywords(arguments: list[list[Token]]) -> dict[str, list[Token]] | None:
    """`name=value, ...` as each name's value tokens; None if any argument is given otherwise."""
    given: dict[str, list[Token]] = {}
    for argument in arguments:
        if len(argument) < 3 or argument[0].type != "name" or argument[1].type != "assign":
            return None
        given[argument[0].value] = argument[2:]
    return given


def _formatted(line: int, text: list[Token], values: dict[str, list[Token]]) -> list[Token]:
    """`(text % {"name": (value), ...})`: what gettext's `text % variables` does, in the page's code
    instead of a filter call (a search page fills ~50 titles into its labels)."""
    out = [Token(line, "lparen", "("), *text, Token(line, "mod", "%"), Token(line, "lbrace", "{")]
    for name, value in values.items():
        out += [Token(line, "string", name), Token(line, "colon", ":"), Token(line, "lparen", "(")]
        out += [*value, Token(line, "rparen", ")"), Token(line, "comma", ",")]
    return [*out, Token(line, "rbrace", "}"), Token(line, "rparen", ")")]


def _plural(line: int, lang: str, singular: str | None, rest: list[list[Token]]) -> list[Token] | None:
    """`ngettext("one", "many", n)` with its texts translated: Japanese has one form, so
    `("…" % {"num": (n)})`; English's two become `((n) | plural("one", "many"))`. Anything else
    (texts chosen at run time, more values) stays a call to `i18n.ngettext`."""
    if singular is None or len(rest) != 2 or len(rest[0]) != 1 or rest[0][0].type != "string":
        return None
    forms = i18n.plural_forms(lang, singular, rest[0][0].value)
    count = rest[1]
    if len(forms) == 1:
        return _formatted(line, [Token(line, "string", forms[0])], {"num": count})
    choices = [Token(line, "string", forms[0]), Token(line, "comma", ","), Token(line, "string", forms[1])]
    return _as_filter(line, count, "plural", choices)


def _split_all(args: list[Token]) -> list[list[Token]]:
    """The tokens of each argument, split at the commas between them."""
    parts: list[list[Token]] = []
    while args:
        first, args = _split_first(args)
        parts.append(first)
    return parts


def _as_filter(line: int, value: list[Token], name: str, rest: list[Token]) -> list[Token]:
    """`((value) | name(rest))`"""
    out = [Token(line, "lparen", "("), Token(line, "lparen", "("), *value, Token(line, "rparen", ")")]
    out += [Token(line, "pipe", "|"), Token(line, "name", name)]
    if rest:
        out += [Token(line, "lparen", "("), *rest, Token(line, "rparen", ")")]
    return [*out, Token(line, "rparen", ")")]


def _escape_text(value: Any) -> Any:
    """Autoescaping of a page's `{{ value }}`: the same characters as markupsafe.escape, but text
    and numbers come back as plain str, not wrapped in Markup (a Python-level constructor, ~7 % of
    the Loans page), and Markup as it is. In that place the result only ever joins the page's
    other pieces of text. Anything else goes through markupsafe as before."""
    kind = type(value)
    if kind is str:
        return _escape_inner(value)
    if kind is int:  # digits need no escaping
        return str(value)
    if kind is Markup:  # already safe
        return value
    return escape(value)


# markupsafe's C escaper (its pure-Python twin where the speedups are missing).
_escape_inner: Callable[[str], str] = getattr(markupsafe, "_escape_inner", lambda text: str(escape(text)))


class PageTemplate(Template):
    """A compiled page, with two shortcuts on its hot paths (bench/pages.py, profiled with py-spy).

    - Its `{{ value }}`s escape through `_escape_text`.
    - Its module, once made, serves every `{% import %}` / `{% from ... import %}`. Jinja makes the
      module once too, but checks at every import that the importing page brings no globals of
      its own: a set difference against the template's ChainMap of globals, walked key by key in
      Python (~30 µs a page). Here the names are taken once; a page whose globals are all among
      them gets the module straight away, any other goes through Jinja's check as before
      (globals are only ever added, so the shortcut stays right).
    - Its contexts start from a plain dict of its globals, made once. Jinja keeps a template's
      globals as a ChainMap over the environment's, and every render (and include) copied it key
      by key in Python, twice (the context's variables and its set of global names): ~5 % of the
      Loans page. The copy is taken when the template is first rendered, so globals must be set
      before the first page is compiled (`create_app` does; Jinja itself asks for that).
    """

    _global_names: frozenset[str] | None = None
    _flat_globals: dict[str, Any] | None = None

    @classmethod
    def _from_namespace(
        cls, environment: Environment, namespace: MutableMapping[str, Any], globals: MutableMapping[str, Any]
    ) -> Template:
        # The compiled code's functions look `escape` up in this namespace at every call.
        namespace["escape"] = _escape_text
        namespace["_NO_ATTRIBUTE"] = _NO_ATTRIBUTE  # for PageCodeGenerator's attribute lookups
        namespace["_item_or_undefined"] = _item_or_undefined
        return super()._from_namespace(environment, namespace, globals)

    def new_context(
        self,
        vars: dict[str, Any] | None = None,
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,
    ) -> Context:
        flat = self._flat_globals
        if flat is None:
            flat = self._flat_globals = dict(self.globals)
        return new_context(self.environment, self.name, self.blocks, vars, shared, flat, locals)

    def _get_default_module(self, ctx: Context | None = None) -> TemplateModule:
        module = self._module
        if ctx is not None and module is not None:
            names = self._global_names
            if names is None:
                names = self._global_names = frozenset(self.globals)
            if ctx.globals_keys <= names:
                return module
        return super()._get_default_module(ctx)


class PageContext(Context):
    """Jinja's Context, calling macros and plain functions directly.

    Why: every `{{ macro(...) }}` and `{{ function(...) }}` in a page goes through `Context.call`,
    which asks the callable twice whether it wants the context passed (`pass_context` and friends)
    before calling it: ~9 % of the search page (40 macro calls and ~40 `ngettext` calls), ~5 % of the
    Loans page (py-spy under load). A macro never wants it, nor does a function or method that was
    not marked (the mark is the `jinja_pass_arg` attribute those decorators set), so those are called
    straight away, exactly as `Context.call` would end up calling them; anything else goes through it.

    A macro given all its arguments by position, with no `caller`, `varargs` or `kwargs` of its own,
    runs its body at once, as `Macro.__call__` ends up doing after sorting the arguments out in
    Python (~2 µs a call; a Loans page calls its card macro once a loan).
    """

    def call(__self, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        kind = type(__obj)
        if kind is Macro or (kind in _PLAIN_CALLABLES and not hasattr(__obj, "jinja_pass_arg")):
            if kwargs:
                kwargs.pop("_block_vars", None)
                kwargs.pop("_loop_vars", None)
            try:
                if (
                    kind is Macro
                    and not kwargs
                    and len(args) == __obj._argument_count
                    and not (__obj.caller or __obj.catch_kwargs or __obj.catch_varargs)
                    and not __self.environment.is_async
                ):
                    body = __obj._func(*args)
                    # The body's output was escaped as it was written, as Macro._invoke trusts it.
                    return Markup(body) if __obj._default_autoescape else body  # noqa: S704
                return __obj(*args, **kwargs)
            except StopIteration:  # as Context.call answers it
                return __self.environment.undefined(
                    "value was undefined because a callable raised a StopIteration exception"
                )
        return super().call(__obj, *args, **kwargs)


_PLAIN_CALLABLES = frozenset({FunctionType, MethodType})

_NO_ATTRIBUTE = object()


def _item_or_undefined(obj: Any, attribute: str, environment: Environment) -> Any:
    """The rest of Jinja's `Environment.getattr`, once the attribute was not found."""
    try:
        return obj[attribute]
    except (TypeError, LookupError, AttributeError):
        return environment.undefined(obj=obj, name=attribute)


class PageCodeGenerator(CodeGenerator):
    """Jinja's compiler, with `x.name` looked up in the page's own code instead of a call.

    Why: Jinja compiles every `{{ loan.title }}` to `environment.getattr(loan, "title")`, a Python
    call that tries the attribute, then the item; a search page makes ~500 of them, the Loans
    page ~160. Here the attribute is read where it is used, with the builtin getattr and a default,
    and only when there is no such attribute does a call finish the lookup as Jinja does (the
    item, else undefined). Same answers in every case (attribute first, then item, then undefined;
    an AttributeError raised inside a property ends the same way), and dicts are found faster too
    (no AttributeError raised on the way). Sandboxed and async environments keep Jinja's code.
    """

    def blockvisit(self, nodes: Iterable[nodes.Node], frame: Frame) -> None:
        """A page's body and each of its blocks collect their output in a list and yield it once,
        joined, instead of yielding every piece of text and every value on its own.

        Why: a block's pieces travel up through every generator that renders it (the page, its
        parent's body, the content block, the results block: four frames for a search result), and
        a search page yields ~1 100 of them (~14 % of its instructions, callgrind). Jinja already
        writes macros, loops with `{% else %}` and `{% set %}` blocks this way (`frame.buffer`);
        here the top frames of a page and of its blocks are buffered too. A block called from a
        buffered frame appends what it yields (Jinja's own code for that case), and
        jinja2-fragments' `render_block` joins the block's output as before. Pages are not
        streamed, so nothing is lost by yielding once.
        """
        if frame.parent is not None or frame.buffer is not None or self.environment.is_async:
            super().blockvisit(nodes, frame)
            return
        self.buffer(frame)
        super().blockvisit(nodes, frame)
        self.writeline(f"yield concat({frame.buffer})")

    @optimizeconst
    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        if self.environment.is_async or self.environment.sandboxed:
            super().visit_Getattr(node, frame)  # Jinja's code (the sandbox's getattr, async awaits)
            return
        name = repr(node.attr)
        # The object is evaluated once (_ga_o); any lookup nested inside it is finished before
        # these names are assigned, so nesting is safe.
        self.write("(_ga_v if (_ga_v := getattr((_ga_o := ")
        self.visit(node.node, frame)
        self.write(f"), {name}, _NO_ATTRIBUTE)) is not _NO_ATTRIBUTE")
        self.write(f" else _item_or_undefined(_ga_o, {name}, environment))")


class LanguageEnvironment(Environment):
    """Includes and parents resolve under the language prefix of the template that names them.

    Templates never change while the app runs (auto_reload is off), so a name, once resolved,
    keeps its template: `get_template` answers from a plain dict, without Jinja's path joining,
    weak reference and locked LRU cache at every `{% extends %}` and `{% import %}` of every page.
    """

    template_class = PageTemplate
    context_class = PageContext
    code_generator_class = PageCodeGenerator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._resolved: dict[tuple[str, str | None], Template] = {}

    def join_path(self, template: str, parent: str) -> str:
        lang = _language_of(parent)
        if lang is None or _language_of(template) is not None:
            return template
        return f"{lang}/{template}"

    def get_template(  # type: ignore[override]
        self,
        name: str | Template,
        parent: str | None = None,
        globals: MutableMapping[str, Any] | None = None,
    ) -> Template:
        if globals is not None or not isinstance(name, str) or self.auto_reload:
            return super().get_template(name, parent, globals)
        key = (name, parent)
        template = self._resolved.get(key)
        if template is None:
            template = self._resolved[key] = super().get_template(name, parent)
        return template


class LanguageLoader(BaseLoader):
    """Serves `<dir>/<template>` as `<lang>/<template>` too; the template keeps the prefixed name,
    which is what tells FoldTranslations its language (Jinja's PrefixLoader would drop it)."""

    def __init__(self, directory: str) -> None:
        self.files = FileSystemLoader(directory)

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Any]:
        lang, _, rest = template.partition("/")
        return self.files.get_source(environment, rest if lang in i18n.LANGUAGES else template)

    def list_templates(self) -> list[str]:
        return self.files.list_templates()


def language_loader(directory: str) -> LanguageLoader:
    return LanguageLoader(directory)
