"""Loans and renewals (貸出・延長): every renewal rule lives here."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from sqlalchemy import BindParameter, Select, and_, bindparam, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.i18n import N_
from app.models import Bib, Branch, Hold, Item, Loan
from app.policy import Policy
from app.reads import Bound, Read
from app.services import calendar

REFUSAL_MESSAGES = {
    "already_renewed": N_("Already renewed: a loan can be renewed only once."),
    "overdue": N_("Overdue: please return it to the library."),
    "on_hold": N_("Another patron has reserved this item."),
    "ill": N_("Borrowed from another library system: it cannot be renewed."),
    "too_early": N_("Renewal opens %(days)s days before the due date."),
    "no_gain": N_("Renewing today would not move the due date later."),
}


class LoanNotFound(LookupError):
    """No open loan with that id belongs to this patron."""


@dataclass(slots=True)  # a row of a page: not frozen, which costs ~3 µs per row to build
class LoanView:
    id: int
    bib_id: int
    title: str
    authors: str
    branch_id: int
    branch_ja: str
    branch_en: str
    closed_weekdays: str
    loaned_on: dt.date
    due_on: dt.date
    renewals: int
    is_ill: bool
    others_waiting: bool
    overdue: bool
    refusal: str | None
    renewed_now: bool = False
    new_due: dt.date | None = None

    @property
    def renewable(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class RenewResult:
    loan: LoanView
    renewed: bool
    reason: str | None  # why not, when not renewed


def _open_loans(patron_id: BindParameter[int], *columns: Any) -> Select:
    """`columns` of the patron's open loans, with their item and title joined."""
    return (
        select(*columns)
        .join(Item, Item.id == Loan.item_id)
        .join(Bib, Bib.id == Item.bib_id)
        .where(Loan.patron_id == patron_id, Loan.returned_on.is_(None))
    )


@cache
def _base_query() -> Select:
    """One statement with everything the loans page shows and every renewal rule needs.

    Built once with a bound parameter: constructing the statement costs as much as running it.
    """
    patron_id: BindParameter[int] = bindparam("patron_id")
    someone_waiting = exists().where(
        and_(Hold.bib_id == Item.bib_id, Hold.status == "waiting", Hold.patron_id != patron_id)
    )
    return _open_loans(
        patron_id,
        Loan.id,
        Loan.loaned_on,
        Loan.due_on,
        Loan.renewals,
        Loan.branch_id,
        Item.is_ill,
        Bib.id.label("bib_id"),
        Bib.title,
        Bib.authors,
        Branch.name_ja,
        Branch.name_en,
        Branch.closed_weekdays,
        someone_waiting.label("others_waiting"),
    ).join(Branch, Branch.id == Loan.branch_id)


@cache
def _list_query() -> Select:
    return _base_query().order_by(Loan.due_on, Loan.id)


@cache
def _one_query() -> Select:
    return _base_query().where(Loan.id == bindparam("loan_id"))


@cache
def _lines_query() -> Select:
    return _open_loans(bindparam("patron_id"), Bib.title, Loan.due_on).order_by(Loan.due_on, Loan.id)


_LIST = Read(_list_query)
_ONE = Read(_one_query)
_LINES = Read(_lines_query)


@dataclass(slots=True)  # a row of a page: not frozen, which costs a setattr call per field
class LoanLine:
    """A loan as the dashboard lists it."""

    title: str
    due_on: dt.date
    overdue: bool


class _RenewalRules:
    """The renewal rules of one day, worked out once for a page of loans (a loan's refusal is then
    a few comparisons: building the rules per loan was half of each row's cost)."""

    __slots__ = ("allowed", "candidate", "today", "window")

    def __init__(self, policy: Policy, today: dt.date) -> None:
        self.allowed = policy.renewals_allowed
        self.today = today
        self.window = policy.renewal_window_days
        self.candidate = candidate_due_date(policy, today)

    def refusal(self, due_on: dt.date, renewals: int, is_ill: bool, others_waiting: bool) -> str | None:
        """Why this loan cannot be renewed today, or None when it can (the order is the order shown)."""
        if renewals >= self.allowed:
            return "already_renewed"
        if due_on < self.today:
            return "overdue"
        if is_ill:
            return "ill"  # Kitakyushu: 市外の図書館から取り寄せて貸出した資料は延長できません
        if others_waiting:
            return "on_hold"
        if self.window and (due_on - self.today).days > self.window:
            return "too_early"
        if self.candidate <= due_on:
            return "no_gain"
        return None


def renewal_refusal(
    policy: Policy, *, today: dt.date, due_on: dt.date, renewals: int, is_ill: bool, others_waiting: bool
) -> str | None:
    """Why this loan cannot be renewed today, or None when it can (the order is the order shown)."""
    return _RenewalRules(policy, today).refusal(due_on, renewals, is_ill, others_waiting)


def candidate_due_date(policy: Policy, today: dt.date) -> dt.date:
    """The renewal day plus the policy's days, before closed days are considered.

    Kitakyushu: 延長処理をした日から2週間 (today + 14).
    Fukushima: 手続きをされた日から15日間 — the renewal day is day 1 (today + 14).
    """
    days = policy.renewal_days - (1 if policy.renewal_counts_renewal_day else 0)
    return today + dt.timedelta(days=days)


def _view(row, rules: _RenewalRules) -> LoanView:  # type: ignore[no-untyped-def]
    is_ill, others_waiting, due_on = bool(row.is_ill), bool(row.others_waiting), row.due_on
    # By position, in LoanView's field order (a row of a page: keywords cost ~40 % more here).
    return LoanView(
        row.id,
        row.bib_id,
        row.title,
        row.authors,
        row.branch_id,
        row.name_ja,
        row.name_en,
        row.closed_weekdays,
        row.loaned_on,
        due_on,
        row.renewals,
        is_ill,
        others_waiting,
        due_on < rules.today,
        rules.refusal(due_on, row.renewals, is_ill, others_waiting),
    )


async def list_loans(
    session: AsyncSession, patron_id: int, *, today: dt.date, policy: Policy
) -> list[LoanView]:
    """The patron's open loans, overdue first, then by due date."""
    rows = await _LIST.all(session, patron_id=patron_id)
    rules = _RenewalRules(policy, today)
    return [_view(row, rules) for row in rows]


def lines_read(patron_id: int, *, today: dt.date) -> Bound:
    """The patron's open loans in `list_loans`' order, with only what the dashboard shows (no
    renewal rules, no branch, no check for other patrons' holds: the dashboard's loans cost about
    half the loans page's): a list of LoanLine, alone or with other reads (app/reads.py)."""
    return Bound(_LINES, {"patron_id": patron_id}, lambda rows: _loan_lines(rows, today))


def _loan_lines(rows: list[Any], today: dt.date) -> list[LoanLine]:
    return [LoanLine(r.title, r.due_on, r.due_on < today) for r in rows]


async def lines(session: AsyncSession, patron_id: int, *, today: dt.date) -> list[LoanLine]:
    return await lines_read(patron_id, today=today).run(session)  # type: ignore[no-any-return]


async def get_loan(
    session: AsyncSession, patron_id: int, loan_id: int, *, today: dt.date, policy: Policy
) -> LoanView:
    row = await _ONE.first(session, patron_id=patron_id, loan_id=loan_id)
    if row is None:
        raise LoanNotFound(loan_id)
    return _view(row, _RenewalRules(policy, today))


async def renew(
    session: AsyncSession, patron_id: int, loan_id: int, *, today: dt.date, policy: Policy
) -> RenewResult:
    """Renew one loan if every rule allows; another patron's loan id raises LoanNotFound."""
    loan = await get_loan(session, patron_id, loan_id, today=today, policy=policy)
    return await _renew_view(session, loan, today=today, policy=policy)


async def _renew_view(
    session: AsyncSession, loan: LoanView, *, today: dt.date, policy: Policy
) -> RenewResult:
    if loan.refusal is not None:
        return RenewResult(loan, False, loan.refusal)
    candidate = candidate_due_date(policy, today)
    closed = await calendar.closed_days(
        session, loan.branch_id, candidate, candidate + dt.timedelta(days=calendar.LOOKAHEAD_DAYS)
    )
    # A due date on a closed day of the branch moves to the next open day (spec 5).
    new_due = calendar.next_open_day(candidate, loan.closed_weekdays, closed)
    # Compare-and-set on the renewal count: a second tab or a replayed form finds it renewed.
    result = await session.execute(
        update(Loan)
        .where(Loan.id == loan.id, Loan.renewals == loan.renewals, Loan.returned_on.is_(None))
        .values(due_on=new_due, renewals=Loan.renewals + 1, last_renewed_on=today)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        # Someone renewed it between our read and our write (another tab, a replayed form).
        return RenewResult(replace(loan, refusal="already_renewed"), False, "already_renewed")
    renewed = replace(loan, due_on=new_due, renewals=loan.renewals + 1, renewed_now=True, new_due=new_due)
    renewed = replace(
        renewed,
        refusal=renewal_refusal(
            policy,
            today=today,
            due_on=new_due,
            renewals=renewed.renewals,
            is_ill=loan.is_ill,
            others_waiting=loan.others_waiting,
        ),
    )
    return RenewResult(renewed, True, None)


async def renew_all(
    session: AsyncSession, patron_id: int, *, today: dt.date, policy: Policy
) -> list[RenewResult]:
    """Try every open loan; each result says renewed or why not."""
    loans = await list_loans(session, patron_id, today=today, policy=policy)
    return [await _renew_view(session, loan, today=today, policy=policy) for loan in loans]
