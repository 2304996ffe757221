"""The reservation cart: add and remove in place (htmx) or by plain forms, and the cart page."""

from __future__ import annotations

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import gettext
from app.routes._deps import RecordId
from app.routes._render import flash, page_url, redirect, render, safe_next, wants_fragment
from app.services import cart as cart_service
from app.services import catalog

CART_EVENT = "cart-changed"


def _message(key: str) -> str:
    text = cart_service.CART_MESSAGES[key]
    return gettext(text, max=cart_service.MAX_ENTRIES)


def _bib_id(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) < 10 else None


def _button(request: Request, bib_id: int, title: str, message: str | None, status: int = 200) -> object:
    return render(
        request,
        "cart/button.html",
        block="button",
        status_code=status,
        bib_id=bib_id,
        bib_title=title,
        cart_ids=set(cart_service.ids_in(request.session)),
        cart_message=message,
        next_url=page_url(request),
        trigger_event=CART_EVENT if status == 200 else None,
    )


@post("/cart", name="cart:add", opt={"db_reads_only": True})
async def add(request: Request, db: NamedDependency[AsyncSession]) -> object:
    form = await request.form()
    bib_id = _bib_id(form.get("bib_id"))
    back = safe_next(str(form.get("next", "")), "/cart")
    if bib_id is None:
        raise NotFoundException()
    current = cart_service.ids_in(request.session)
    try:
        request.session["cart"], title = await cart_service.add(db, current, bib_id)
        message, ok = _message("added"), True
    except cart_service.BibNotFound as exc:
        raise NotFoundException() from exc
    except cart_service.CartRefused as refused:
        message, title = _message(refused.reason), refused.title
        ok = refused.reason == "already"
    if wants_fragment(request):
        # The title's name comes from the catalogue: the buttons carry only its id.
        return _button(request, bib_id, title, message, 200 if ok else 400)
    flash(request, message, "ok" if ok else "error")
    return redirect(back)


@post("/cart/{bib_id:int}/remove", name="cart:remove", opt={"db_reads_only": True})
async def remove(request: Request, bib_id: RecordId, db: NamedDependency[AsyncSession]) -> object:
    form = await request.form()
    try:
        request.session["cart"] = cart_service.remove(cart_service.ids_in(request.session), bib_id)
    except cart_service.BibNotFound as exc:
        raise NotFoundException() from exc
    message = _message("removed")
    if wants_fragment(request):
        if form.get("from") == "cart":
            return render(
                request,
                "cart/page.html",
                block="cart",
                entries=await cart_service.entries(db, cart_service.ids_in(request.session)),
                trigger_event=CART_EVENT,
                cart_message=message,
            )
        return _button(request, bib_id, await cart_service.title_of(db, bib_id), message)
    flash(request, message, "ok")
    return redirect(safe_next(str(form.get("next", "")), "/cart"))


@get("/cart", name="cart:page")
async def cart_page(request: Request, db: NamedDependency[AsyncSession]) -> object:
    entries = await cart_service.entries(db, cart_service.ids_in(request.session))
    return render(
        request,
        "cart/page.html",
        block="cart",
        entries=entries,
        cart_message=None,
        branches=await catalog.branches(db),
    )


@get("/cart/link", name="cart:link")
async def cart_link(request: Request) -> object:
    """The header's "Cart (N)" link, fetched again when the cart-changed event fires."""
    return render(request, "base.html", block="cart_link")
