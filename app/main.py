"""create_app(): plugins, routes, templates, CSRF, sessions, security headers, error pages."""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import logging
import re
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs

from arq import create_pool
from arq.connections import RedisSettings
from jinja2 import Environment, select_autoescape
from litestar import Litestar, Request, Response
from litestar.config.compression import CompressionConfig
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import CacheControlHeader, State
from litestar.di import Provide
from litestar.exceptions import (
    HTTPException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.plugins.htmx import ClientRedirect, HTMXPlugin, HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app import i18n, reads
from app.csrf import check_csrf_with_one_hmac
from app.db import is_busy, make_engine, make_sessionmaker, pg_server_settings
from app.policy import get_policy
from app.redisconn import lean_redis, make_redis
from app.routes import ROUTES
from app.routes._deps import (
    LoginRequired,
    PasswordChangeRequired,
    provide_db,
    provide_patron,
    provide_policy,
    resolve_dependencies_in_order,
)
from app.routes._render import TEXT_SIZES, render, safe_next, wants_fragment
from app.routes.staff import StaffLoginRequired, provide_staff
from app.services.ratelimit import RateLimiter
from app.sessions import RotatingSessionConfig, SessionStore
from app.settings import Settings, get_settings
from app.templating import FoldTranslations, LanguageEnvironment, fill, language_loader

HERE = Path(__file__).parent
log = logging.getLogger("app")


def _jinja_env() -> Environment:
    env = LanguageEnvironment(
        loader=language_loader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n", FoldTranslations],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    # Plain (not "newstyle") callables: our gettext formats %(name)s itself and the result is
    # autoescaped like any other value; it saves Jinja's Markup round trip on every string.
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=False)  # type: ignore[attr-defined]
    env.globals["static"] = _static_url
    # The filters FoldTranslations turns calls into (app/templating.py).
    env.filters["static"] = _static_url
    env.filters["date"] = i18n.format_date
    env.filters["fill"] = fill
    env.filters["plural"] = i18n.plural
    env.filters["gettext"] = i18n.gettext
    env.filters["url"] = lambda name, **params: env.globals["url_for"](name, **params)
    env.filters["todate"] = lambda value: dt.date.fromisoformat(value) if isinstance(value, str) else value
    return env


def _cached_url_for(app: Litestar):  # type: ignore[no-untyped-def]
    """url_for for templates, memoised: a route's path never changes while the app runs.

    Keyed by the name and the values in the order given (no sorting: a search page asks ~40
    times, and building a sorted key cost more than the lookup)."""
    known: dict[object, str] = {}

    def url_for(name: str, **params: object) -> str:
        key = (name, *params.items()) if params else name
        url = known.get(key)
        if url is None:
            if len(known) >= 4096:  # ids are endless: keep the memo bounded
                known.clear()
            url = known[key] = app.route_reverse(name, **params)
        return url

    def pattern(name: str) -> tuple[str, tuple[str, ...]] | None:
        """The route's one path as a `%d` format and its parameters in order, where every path
        parameter is an integer; None otherwise (FoldTranslations then leaves the call as it is)."""
        index = app.get_handler_index_by_name(name)
        if index is None or len(index["paths"]) != 1:
            return None
        names: list[str] = []

        def integer(found: re.Match[str]) -> str:
            names.append(found.group(1))
            return "%d"

        text = _INT_PARAMETER.sub(integer, index["paths"][0].replace("%", "%%"))
        return None if "{" in text or not names else (text, tuple(names))

    url_for.pattern = pattern  # type: ignore[attr-defined]
    return url_for


_INT_PARAMETER = re.compile(r"\{(\w+):int\}")


@lru_cache(maxsize=64)
def _static_url(name: str) -> str:
    """/static/<name>?v=<content hash>: browsers may cache static files for a year."""
    digest = hashlib.sha256((HERE / "static" / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


def _resolve_language(request: Request) -> tuple[str, bool]:
    """?lang= beats the cookie, which beats Accept-Language; Japanese otherwise."""
    asked = request.query_params.get("lang")
    if asked in i18n.LANGUAGES:
        return asked, True
    cookie = request.cookies.get("lang")
    if cookie in i18n.LANGUAGES:
        return cookie, False
    return i18n.negotiate(request.headers.get("accept-language")), False


async def before_request(request: Request) -> None:
    lang, _ = _resolve_language(request)
    i18n.set_language(lang)
    size = request.query_params.get("text")
    if size not in TEXT_SIZES:
        size = request.cookies.get("text")
    request.state.text_size = size if size in TEXT_SIZES else "normal"


def security_headers(production: bool):  # type: ignore[no-untyped-def]
    csp = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
    extra = [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
    ]
    if production:
        extra.append((b"strict-transport-security", b"max-age=31536000; includeSubDomains"))

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), *extra]
                await send(message)

            await app(scope, receive, send_with_headers)

        return wrapped

    return middleware


def preference_cookies(production: bool):  # type: ignore[no-untyped-def]
    """?lang= and ?text= on any URL are remembered for a year, whatever the response (page or redirect)."""
    flags = "; Path=/; Max-Age=31536000; SameSite=Lax" + ("; Secure" if production else "")

    def middleware(app: ASGIApp) -> ASGIApp:
        async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not scope.get("query_string"):
                await app(scope, receive, send)
                return
            query = parse_qs(scope["query_string"].decode("latin-1"))
            cookies = []
            if query.get("lang", [""])[-1] in i18n.LANGUAGES:
                cookies.append(f"lang={query['lang'][-1]}{flags}".encode())
            if query.get("text", [""])[-1] in TEXT_SIZES:
                cookies.append(f"text={query['text'][-1]}{flags}".encode())

            async def send_with_cookies(message: Message) -> None:
                if message["type"] == "http.response.start" and cookies:
                    message["headers"] = [*message.get("headers", []), *((b"set-cookie", c) for c in cookies)]
                await send(message)

            await app(scope, receive, send_with_cookies)

        return wrapped

    return middleware


def _login_redirect(request: Request, _exc: Exception) -> Response:
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        # After a POST from an expired session, come back to the page the form was on.
        referer = request.headers.get("referer", "")
        host = request.headers.get("host", "")
        path = referer.split(host, 1)[1] if host and host in referer else ""
        target = safe_next(path, "/mylibrary")
    url = request.app.route_reverse("auth:login") + "?next=" + _quote(target)
    if wants_fragment(request) or getattr(request, "htmx", None):
        return ClientRedirect(redirect_to=url)
    return Redirect(path=url, status_code=303)


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def _staff_login_redirect(request: Request, _exc: Exception) -> Response:
    url = request.app.route_reverse("staff:login")
    if getattr(request, "htmx", None):
        return ClientRedirect(redirect_to=url)
    return Redirect(path=url, status_code=303)


def _password_redirect(request: Request, _exc: Exception) -> Response:
    url = request.app.route_reverse("account:password")
    if getattr(request, "htmx", None):
        return ClientRedirect(redirect_to=url)
    return Redirect(path=url, status_code=303)


ERROR_TITLES = {
    400: i18n.N_("The request could not be understood"),
    403: i18n.N_("This form has expired or is not allowed"),
    404: i18n.N_("Page not found"),
    405: i18n.N_("This action is not allowed here"),
    429: i18n.N_("Too many requests"),
    500: i18n.N_("Something went wrong on our side"),
    503: i18n.N_("Please try again shortly"),
}
ERROR_DETAILS = {
    400: i18n.N_("Please check what you entered and try again."),
    403: i18n.N_("Please reload the page and try again. If you were logged out, log in again."),
    404: i18n.N_("The page or record does not exist, or it is not yours."),
    405: i18n.N_("Please use the buttons on the page."),
    429: i18n.N_("Please wait a little and try again."),
    500: i18n.N_("Please try again later. If it keeps happening, ask at the library counter."),
    503: i18n.N_(
        "Part of the service is briefly unavailable. Nothing was changed; please try again in a minute."
    ),
}


def _error_page(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if isinstance(exc, RedisError):
        # Sessions, rate limits and the job queue live in Redis: while it is away, say so and
        # change nothing (the database work of a request runs after its rate-limit check).
        log.warning("Redis unavailable on %s %s: %s", request.method, request.url.path, exc)
        status = 503
    elif is_busy(exc):
        # The database stayed locked past DB_LOCK_TIMEOUT (the driver kept retrying until then):
        # the transaction was rolled back, so nothing changed; the patron is asked to try again.
        log.warning("database busy on %s %s: %s", request.method, request.url.path, exc)
        status = 503
    if status == 500:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    if status not in ERROR_TITLES:
        status = 400 if status < 500 else 500
    lang, _ = _resolve_language(request)
    i18n.set_language(lang)
    if "text_size" not in request.state:
        request.state.text_size = "normal"
    headers = {"HX-Reswap": "none"} if getattr(request, "htmx", None) else {}
    if status == 503:
        headers["Retry-After"] = "30"
    # htmx shows nothing for an error by default; the toast block tells the user.
    return render(
        request,
        "error.html",
        block="toast",
        status_code=status,
        headers=headers,
        title=ERROR_TITLES[status],
        detail=ERROR_DETAILS[status],
    )


def create_app(settings: Settings | None = None) -> Litestar:
    """The app for `settings`. What is built here depends only on `construction_key(settings)`;
    the database, Redis and the paths are opened at start-up from `app.state.settings`, so one app
    can be started again with another database (the tests do, one per test)."""
    resolve_dependencies_in_order()
    check_csrf_with_one_hmac()
    settings = settings or get_settings()
    policy = get_policy(settings.library_policy)

    async def on_startup(app: Litestar) -> None:
        settings = app.state.settings
        # Timeouts: a Redis that hangs (not just refuses) must turn into a 503 within seconds, not
        # a request that waits forever.
        redis = make_redis(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        # The session store's own connection for its reads and writes (app/redisconn.py).
        app.state.session_redis = lean_redis(settings.redis_url, timeout=2, connect_timeout=2)
        app.stores.register(
            "sessions",
            SessionStore(
                redis,
                lean=app.state.session_redis,
                namespace=f"{settings.redis_namespace}:sessions",
                handle_client_shutdown=False,
            ),
            allow_override=True,
        )
        engine = make_engine(settings.database_url, inline_writes=True, lock_timeout=settings.db_lock_timeout)
        read_engine = make_engine(settings.database_url, inline_reads=True) if settings.is_sqlite else engine
        app.state.engine, app.state.read_engine = engine, read_engine
        app.state.sessionmaker = make_sessionmaker(engine)
        # GET pages read through one shared inline connection on SQLite, and through a pool of
        # autocommit connections on PostgreSQL (app/reads.py).
        app.state.read_info = (
            reads.shared_reader(settings.database_url, read_engine.dialect)
            if settings.is_sqlite
            else await reads.pg_reader(
                settings.database_url,
                read_engine.dialect,
                server_settings=pg_server_settings(settings.db_lock_timeout),
            )
        )
        app.state.read_sessionmaker = make_sessionmaker(read_engine, info=app.state.read_info)
        app.state.redis = redis
        app.state.limiter = RateLimiter(redis, settings.redis_namespace)
        app.state.arq = await create_pool(RedisSettings.from_dsn(settings.redis_url))

    async def on_shutdown(app: Litestar) -> None:
        await app.state.arq.aclose()
        await app.state.engine.dispose()
        await app.state.read_engine.dispose()
        if app.state.read_info:
            await reads.close_shared_reader(app.state.read_info)
        await app.state.redis.aclose()
        if app.state.session_redis is not None:
            app.state.session_redis.close()

    template_engine = JinjaTemplateEngine.from_environment(_jinja_env())

    app = Litestar(
        route_handlers=[
            *ROUTES,
            create_static_files_router(
                path="/static",
                directories=[HERE / "static"],
                name="static",
                send_as_attachment=False,
                cache_control=CacheControlHeader(max_age=31536000),
                opt={"skip_session": True},
            ),
        ],
        dependencies={
            "db": Provide(provide_db),
            "patron": Provide(provide_patron, sync_to_thread=False),
            "policy": Provide(provide_policy, sync_to_thread=False),
            "staff": Provide(provide_staff, sync_to_thread=False),
        },
        request_class=HTMXRequest,
        plugins=[HTMXPlugin()],
        # gzip for browsers that ask (pages ~10 KB → ~3 KB; htmx 50 KB → 16 KB). Level 5: most of
        # level 9's saving for a fraction of its CPU. A reverse proxy may do it instead.
        compression_config=CompressionConfig(backend="gzip", minimum_size=1000, gzip_compress_level=5),
        template_config=TemplateConfig(instance=template_engine),
        middleware=[
            security_headers(settings.production),
            preference_cookies(settings.production),
            RotatingSessionConfig(
                max_age=policy.session_timeout_minutes * 60,
                renew_on_access=True,
                key="session",
                secure=settings.production,
                samesite="lax",
                httponly=True,
                exclude=["/static"],
            ).middleware,
        ],
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_name="csrftoken",
            header_name="x-csrftoken",
            cookie_secure=settings.production,
            cookie_httponly=True,
            cookie_samesite="lax",
            exclude=["/static"],
        ),
        before_request=before_request,
        exception_handlers={
            LoginRequired: _login_redirect,
            PasswordChangeRequired: _password_redirect,
            StaffLoginRequired: _staff_login_redirect,
            HTTPException: _error_page,
            NotFoundException: _error_page,
            PermissionDeniedException: _error_page,
            ValidationException: _error_page,
            Exception: _error_page,
        },
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        debug=False,
        openapi_config=None,
        state=State({"settings": settings, "policy": policy}),
        signature_types=[AsyncSession],
    )
    # Every global is set before the first page is compiled: pages copy them once (PageTemplate).
    url_for = _cached_url_for(app)
    template_engine.engine.globals["url_for"] = url_for
    template_engine.engine.filters["url"] = url_for  # `("loans:renew" | url(loan_id=...))`, directly
    return app


def create_server_app() -> Litestar:
    """The app as `python -m app serve` runs it, once in each worker process: `create_app()`, then,
    once started, every page template compiled (`_compile_templates`) and the start-up heap frozen
    out of the garbage collector's way (`_freeze_heap`)."""
    app = create_app()
    app.on_startup.extend([_compile_templates, _freeze_heap])
    return app


def _compile_templates(app: Litestar) -> None:
    """Every page template, in every language, compiled before the first request (~0.5 s a worker).

    Why: Jinja compiles a template on its first use, ~4 ms each, and a page is several (the page,
    the layout, its macros). The first patrons after a worker starts waited for that with every
    request in flight stalled behind it: the first second of a page under load had a p99 of 70 ms
    against 29 ms afterwards (the dashboard, 32 connections). Compiled here, they are also in the
    heap `_freeze_heap` freezes next. A template that does not compile now stops the worker at
    start-up instead of failing its page. The mails' templates are the mailer's (app/mail.py)."""
    env = app.template_engine.engine  # type: ignore[union-attr]
    for name in env.list_templates():
        if not name.startswith("mail/"):
            for lang in i18n.LANGUAGES:
                env.get_template(f"{lang}/{name}")


def _freeze_heap() -> None:
    """Why: after start-up a worker holds ~140 000 long-lived objects that can hold references
    (Litestar's handler models, SQLAlchemy's mappers, templates), and every full collection walked
    them all: 130–170 ms with the process stalled, every few seconds under load, which alone set the
    pages' p99 (python -m bench: the bare template route's p99 101 → 26 ms, /loans 157 → 72 ms).
    Frozen, they are never scanned again; what is made afterwards is collected as usual. Not in
    `create_app`'s own start-up: the tests start an app per test, and a full collection each time
    would cost more than the pauses it saves there."""
    gc.collect()
    gc.freeze()


def construction_key(settings: Settings) -> Settings:
    """The settings `create_app` builds from (the rest are read at each start-up): apps whose keys
    are equal differ only once started, so an app may be reused for another database."""
    return replace(
        settings, database_url="", redis_url="", redis_namespace="", var_dir=Path(), smtp_host="", smtp_port=0
    )
