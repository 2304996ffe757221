"""Every renewal rule, for every preset, and renewals against a real SQLite file."""

import asyncio
import datetime as dt

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import make_engine, make_sessionmaker
from app.models import Bib, Branch, ClosedDay, Hold, Item, Loan, Patron
from app.policy import PRESETS, load_policy
from app.services import calendar, loans

TODAY = dt.date(2026, 11, 23)  # a Monday


def refusal(preset: str, **kw):  # type: ignore[no-untyped-def]
    args = dict(
        today=TODAY, due_on=TODAY + dt.timedelta(days=5), renewals=0, is_ill=False, others_waiting=False
    )
    args.update(kw)
    return loans.renewal_refusal(load_policy(preset), **args)


@pytest.mark.parametrize("preset", PRESETS)
def test_a_plain_loan_is_renewable(preset: str) -> None:
    assert refusal(preset) is None


@pytest.mark.parametrize("preset", PRESETS)
def test_once_only(preset: str) -> None:
    assert refusal(preset, renewals=1) == "already_renewed"


@pytest.mark.parametrize("preset", PRESETS)
def test_not_when_overdue(preset: str) -> None:
    assert refusal(preset, due_on=TODAY - dt.timedelta(days=1)) == "overdue"
    assert refusal(preset, due_on=TODAY) is None  # due today is not overdue yet


@pytest.mark.parametrize("preset", PRESETS)
def test_not_when_another_patron_waits(preset: str) -> None:
    assert refusal(preset, others_waiting=True) == "on_hold"


@pytest.mark.parametrize("preset", PRESETS)
def test_not_for_inter_library_loans(preset: str) -> None:
    assert refusal(preset, is_ill=True) == "ill"


def test_already_renewed_is_reported_before_the_other_reasons() -> None:
    assert refusal("default", renewals=1, is_ill=True, others_waiting=True) == "already_renewed"


def test_renewal_window(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "window.toml"
    path.write_text("renewal_window_days = 3\n")
    policy = load_policy(str(path))
    far = dict(today=TODAY, renewals=0, is_ill=False, others_waiting=False)
    assert loans.renewal_refusal(policy, due_on=TODAY + dt.timedelta(days=4), **far) == "too_early"
    assert loans.renewal_refusal(policy, due_on=TODAY + dt.timedelta(days=3), **far) is None


def test_no_gain_when_renewing_would_not_extend() -> None:
    # Borrowed today: due in 14 days; renewing today would give the same date.
    assert refusal("default", due_on=TODAY + dt.timedelta(days=14)) == "no_gain"


@pytest.mark.parametrize(
    ("preset", "days"),
    [("default", 14), ("kitakyushu", 14), ("fukushima", 14), ("koga", 14), ("fukuoka", 14), ("yokohama", 14)],
)
def test_new_due_date_per_policy(preset: str, days: int) -> None:
    # Kitakyushu: 14 days from the renewal day; Fukushima: 15 days counting the renewal day = +14.
    assert loans.candidate_due_date(load_policy(preset), TODAY) == TODAY + dt.timedelta(days=days)


def test_closed_days_push_the_due_date() -> None:
    monday = dt.date(2026, 11, 30)
    assert calendar.next_open_day(monday, "1", set()) == dt.date(2026, 12, 1)
    assert calendar.next_open_day(monday, "1", {dt.date(2026, 12, 1)}) == dt.date(2026, 12, 2)
    assert calendar.next_open_day(monday, "", set()) == monday
    assert calendar.next_open_day(monday, "1234567", set()) == monday  # always closed: keep the date


async def _hanako(db: AsyncSession) -> Patron:
    patron = await db.scalar(select(Patron).where(Patron.card_number == "100000017"))
    assert patron is not None
    return patron


async def _loan_by_title(db: AsyncSession, patron_id: int, title: str, today: dt.date) -> loans.LoanView:
    views = await loans.list_loans(db, patron_id, today=today, policy=load_policy("default"))
    return next(v for v in views if v.title == title)


async def test_demo_loans_show_each_reason(db: AsyncSession) -> None:
    from app import clock

    hanako = await _hanako(db)
    views = await loans.list_loans(db, hanako.id, today=clock.today(), policy=load_policy("default"))
    by_title = {v.title: v.refusal for v in views}
    assert by_title == {
        "吾輩は猫である": None,
        "銀河鉄道の夜": "on_hold",
        "Pride and Prejudice": "already_renewed",
    }
    assert [v.due_on for v in views] == sorted(v.due_on for v in views)


async def test_renew_moves_due_date_past_closed_days_and_counts(db: AsyncSession) -> None:
    today = TODAY
    hanako = await _hanako(db)
    loan = await _loan_by_title(db, hanako.id, "吾輩は猫である", today)
    await db.execute(update(Loan).where(Loan.id == loan.id).values(due_on=today + dt.timedelta(days=3)))
    branch = await db.get_one(Branch, loan.branch_id)
    candidate = today + dt.timedelta(days=14)
    # Close the candidate day and the next; the due date must land on the first open day after them.
    branch.closed_weekdays = ""
    db.add_all(
        [
            ClosedDay(branch_id=branch.id, day=candidate),
            ClosedDay(branch_id=branch.id, day=candidate + dt.timedelta(days=1)),
        ]
    )
    await db.commit()
    result = await loans.renew(db, hanako.id, loan.id, today=today, policy=load_policy("default"))
    assert result.renewed and result.loan.due_on == candidate + dt.timedelta(days=2)
    stored = await db.get_one(Loan, loan.id, populate_existing=True)
    assert (stored.due_on, stored.renewals, stored.last_renewed_on) == (
        candidate + dt.timedelta(days=2),
        1,
        today,
    )
    again = await loans.renew(db, hanako.id, loan.id, today=today, policy=load_policy("default"))
    assert not again.renewed and again.reason == "already_renewed"


@pytest.mark.parametrize("preset", ["kitakyushu", "fukushima"])
async def test_renewal_days_follow_the_preset(db: AsyncSession, preset: str) -> None:
    hanako = await _hanako(db)
    loan = await _loan_by_title(db, hanako.id, "吾輩は猫である", TODAY)
    await db.execute(update(Loan).where(Loan.id == loan.id).values(due_on=TODAY + dt.timedelta(days=2)))
    await db.execute(update(Branch).values(closed_weekdays=""))
    await db.commit()
    result = await loans.renew(db, hanako.id, loan.id, today=TODAY, policy=load_policy(preset))
    assert result.loan.due_on == TODAY + dt.timedelta(days=14)


async def test_another_patrons_loan_is_not_found_and_unchanged(db: AsyncSession) -> None:
    taro = await db.scalar(select(Patron).where(Patron.card_number == "100000025"))
    hanako = await _hanako(db)
    assert taro is not None
    loan = await _loan_by_title(db, hanako.id, "吾輩は猫である", TODAY)
    with pytest.raises(loans.LoanNotFound):
        await loans.renew(db, taro.id, loan.id, today=TODAY, policy=load_policy("default"))
    stored = await db.get_one(Loan, loan.id)
    assert stored.renewals == 0


async def test_returned_loans_are_not_renewable(db: AsyncSession) -> None:
    hanako = await _hanako(db)
    loan = await _loan_by_title(db, hanako.id, "吾輩は猫である", TODAY)
    await db.execute(update(Loan).where(Loan.id == loan.id).values(returned_on=TODAY))
    await db.commit()
    with pytest.raises(loans.LoanNotFound):
        await loans.renew(db, hanako.id, loan.id, today=TODAY, policy=load_policy("default"))


async def test_inter_library_loan_is_refused(db: AsyncSession) -> None:
    hanako = await _hanako(db)
    loan = await _loan_by_title(db, hanako.id, "吾輩は猫である", TODAY)
    item_id = (await db.get_one(Loan, loan.id)).item_id
    await db.execute(update(Item).where(Item.id == item_id).values(is_ill=True))
    await db.commit()
    result = await loans.renew(db, hanako.id, loan.id, today=TODAY, policy=load_policy("default"))
    assert (result.renewed, result.reason) == (False, "ill")


async def test_two_concurrent_renewals_renew_once(database_url: str) -> None:
    """Two tabs submit at the same moment: one renews, the other is told it is already renewed."""
    engine = make_engine(database_url)
    maker = make_sessionmaker(engine)
    async with maker() as s:
        hanako = await _hanako(s)
        loan = await _loan_by_title(s, hanako.id, "吾輩は猫である", TODAY)
        await s.execute(update(Loan).where(Loan.id == loan.id).values(due_on=TODAY + dt.timedelta(days=3)))
        await s.commit()

    async def attempt() -> loans.RenewResult:
        async with maker() as s:
            return await loans.renew(s, hanako.id, loan.id, today=TODAY, policy=load_policy("default"))

    results = await asyncio.gather(attempt(), attempt())
    assert sorted(r.renewed for r in results) == [False, True]
    assert [r.reason for r in results if not r.renewed] == ["already_renewed"]
    async with maker() as s:
        assert (await s.get_one(Loan, loan.id)).renewals == 1
    await engine.dispose()


async def test_renew_all_reports_each_loan(db: AsyncSession) -> None:
    from app import clock

    hanako = await _hanako(db)
    results = await loans.renew_all(db, hanako.id, today=clock.today(), policy=load_policy("default"))
    outcome = {r.loan.title: (r.renewed, r.reason) for r in results}
    assert outcome == {
        "吾輩は猫である": (True, None),
        "銀河鉄道の夜": (False, "on_hold"),
        "Pride and Prejudice": (False, "already_renewed"),
    }


async def test_each_field_of_a_loan_view_comes_from_its_own_column(db: AsyncSession) -> None:
    """The view is built by position (loans._view): every field is checked against the database."""
    policy = load_policy("default")
    patron_id = await db.scalar(select(Loan.patron_id).where(Loan.returned_on.is_(None)).limit(1))
    views = await loans.list_loans(db, patron_id, today=TODAY, policy=policy)
    assert views
    for view in views:
        loan = await db.get_one(Loan, view.id)
        item = await db.get_one(Item, loan.item_id)
        branch = await db.get_one(Branch, loan.branch_id)
        bib = await db.get_one(Bib, item.bib_id)
        waiting = await db.scalar(
            select(Hold.id).where(
                Hold.bib_id == bib.id, Hold.status == "waiting", Hold.patron_id != patron_id
            )
        )
        assert (view.bib_id, view.title, view.authors) == (bib.id, bib.title, bib.authors)
        assert (view.branch_id, view.branch_ja, view.branch_en) == (branch.id, branch.name_ja, branch.name_en)
        assert view.closed_weekdays == branch.closed_weekdays
        assert (view.loaned_on, view.due_on, view.renewals) == (loan.loaned_on, loan.due_on, loan.renewals)
        assert (view.is_ill, view.others_waiting) == (item.is_ill, waiting is not None)
        assert view.overdue == (loan.due_on < TODAY)
        assert view.refusal == loans.renewal_refusal(
            policy,
            today=TODAY,
            due_on=loan.due_on,
            renewals=loan.renewals,
            is_ill=item.is_ill,
            others_waiting=waiting is not None,
        )
        assert not view.renewed_now and view.new_due is None
