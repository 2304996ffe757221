"""render(): the one way a handler answers with HTML — the whole page, or one block for htmx."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2_fragments.litestar import HTMXBlockTemplate
from litestar import Request
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect
from litestar.utils.empty import value_or_default
from litestar.utils.scope.state import ScopeState
from markupsafe import Markup

from app import clock
from app.i18n import format_date, get_language, gettext
from app.services.accounts import SessionPatron
from app.services.refusal import Refused

TEXT_SIZES = ("normal", "large")


def wants_fragment(request: Request) -> bool:
    """True for an htmx swap; boosted navigation and history restores get the whole page."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted and not htmx.history_restore_request


def session_patron(request: Request) -> SessionPatron | None:
    data = request.session if "session" in request.scope else {}
    if not data or not data.get("pid"):
        return None
    return SessionPatron.from_session(data)


def flash(request: Request, message: str, level: str = "info") -> None:
    """Keep a message in the session for the next page (POST → 303 → GET)."""
    request.session.setdefault("flash", []).append([level, message])


_SWITCH_URLS: dict[tuple[str, bytes, tuple[tuple[str, str], ...]], str] = {}


def switch_url(request: Request, **params: str) -> str:
    """The current page's URL with one preference parameter changed (language, text size).

    Every page's header asks for two; worked out once per address (~2.5 % of the Loans page).
    """
    key = (request.scope["path"], request.scope.get("query_string", b""), tuple(sorted(params.items())))
    url = _SWITCH_URLS.get(key)
    if url is None:
        query = {k: v for k, v in request.query_params.items() if k not in ("lang", "text")}
        query.update(params)
        url = f"{request.url.path}?{urlencode(query)}"
        if len(_SWITCH_URLS) >= 4096:  # search addresses are endless: keep the memo bounded
            _SWITCH_URLS.clear()
        _SWITCH_URLS[key] = url
    return url


def base_context(request: Request) -> dict[str, Any]:
    lang = get_language()
    patron = session_patron(request)
    # Routing errors (404, 405) are answered before the session middleware runs.
    session = request.session if "session" in request.scope else {}
    messages = session.pop("flash", []) if session else []
    cart_count = len(session.get("cart", [])) if session else 0
    return {
        "lang": lang,
        "text_size": request.state.get("text_size", "normal"),
        "patron": patron,
        "patron_name": patron.display_name(lang) if patron else "",
        "card_expired": bool(patron and patron.card_expires_on < clock.today()),
        "flash_messages": messages,
        "policy": request.app.state.policy,
        "today": clock.today(),
        "fmt_date": format_date,
        "switch_url": lambda **p: switch_url(request, **p),
        "current_path": request.url.path,
        "current_url": page_url(request),
        "cart_count": cart_count,
        "translate": gettext,
    }


class PageResponse(HTMXBlockTemplate):
    """A page or block whose `csrf_input` is Markup: templates write `{{ csrf_input }}`, no `| safe`.

    Litestar hands templates the hidden CSRF field as a plain string, so every form had to mark it
    safe, which built a new Markup object per form (a search page has three forms per title).
    """

    def create_template_context(self, request: Request) -> dict[str, Any]:
        token = value_or_default(ScopeState.from_scope(request.scope).csrf_token, "")
        # The token is hex (Litestar's CSRF middleware); escaped anyway, as Litestar does.
        field = Markup('<input type="hidden" name="_csrf_token" value="%s" />') % token
        return {**self.context, "request": request, "csrf_input": field}


def render(
    request: HTMXRequest | Request,
    template: str,
    *,
    block: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    trigger_event: str | None = None,
    **context: Any,
) -> PageResponse:
    """The whole page, or only `block` when htmx asks for a swap."""
    partial = block is not None and wants_fragment(request)
    return PageResponse(
        # Compiled once per language, its fixed strings already translated (app/templating.py).
        template_name=f"{get_language()}/{template}",
        block_name=block if partial else None,
        context={**base_context(request), **context, "partial": partial},
        status_code=status_code,
        media_type="text/html",
        headers={"Vary": "HX-Request", **(headers or {})},
        trigger_event=trigger_event,
        after="receive" if trigger_event else None,
    )


def redirect(path: str) -> Redirect:
    """303 See Other: the browser follows with a GET, so a reload never re-posts."""
    return Redirect(path=path, status_code=303)


def page_url(request: Request) -> str:
    """The page the user is on: htmx's HX-Current-URL, else this request's own path and query."""
    current = request.headers.get("hx-current-url")
    if current:
        parts = urlsplit(current)
        return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""), "/")
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def safe_next(value: str | None, default: str = "/mylibrary") -> str:
    """Only a local path may be a redirect target (no //host, no scheme, no backslash)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 500:
        return default
    return value


def refusal_message(problem: Refused) -> str:
    """A service's refusal in the reader's language, its limit filled in."""
    return gettext(problem.messages[problem.reason], max=problem.limit)
