"""The schema. Relationships are lazy="raise": every page states what it loads."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PASSWORD_STATES = ("none", "temporary", "permanent")
ITEM_STATUSES = ("on_shelf", "on_loan", "in_transit", "on_hold_shelf", "missing")
HOLD_STATUSES = ("waiting", "in_transit", "ready", "collected", "cancelled")
ACTIVE_HOLD_STATUSES = ("waiting", "in_transit", "ready")
CONTACTS = ("email", "phone", "none")
STAFF_ROLES = ("counter", "admin")
MATERIAL_TYPES = ("book", "magazine", "audiovisual", "serial", "other")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Branch(Base):
    __tablename__ = "branches"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name_ja: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    # Weekly closing days as ISO weekday digits ("1" = Monday), e.g. "1" or "15".
    closed_weekdays: Mapped[str] = mapped_column(String(7), default="", server_default="")
    is_pickup_point: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class PickupLocation(Base):
    """A sub-location of a branch where holds can be collected (受取場所)."""

    __tablename__ = "pickup_locations"
    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"), index=True)
    name_ja: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))


class ClosedDay(Base):
    """A single closed day of a branch (休館日), besides its weekly closing days."""

    __tablename__ = "closed_days"
    __table_args__ = (UniqueConstraint("branch_id", "day"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(String(200), default="", server_default="")


class Patron(Base):
    __tablename__ = "patrons"
    __table_args__ = (
        CheckConstraint(f"password_state IN ({_in(PASSWORD_STATES)})", name="password_state"),
        CheckConstraint("lang IN ('ja', 'en')", name="lang"),
        Index("uq_patrons_calendar_token", "calendar_token", unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    card_number: Mapped[str] = mapped_column(String(20), unique=True)
    card_expires_on: Mapped[dt.date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100), default="", server_default="")
    name_kana: Mapped[str] = mapped_column(String(100), default="", server_default="")
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    phone: Mapped[str] = mapped_column(String(30), default="", server_default="")
    address: Mapped[str] = mapped_column(String(300), default="", server_default="")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_state: Mapped[str] = mapped_column(String(10), default="none", server_default="none")
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    lang: Mapped[str] = mapped_column(String(2), default="ja", server_default="ja")
    home_branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"))
    # Mail the patron opted in to (spec 7: due-date reminder, overdue and card-expiry notices are opt-in).
    notify_due: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    notify_overdue: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    notify_expiry: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    notify_pickup: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    notify_arrivals: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    notify_news: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Pre-fills the holds form (初期値設定): contact method; the pickup library is home_branch_id.
    default_contact: Mapped[str | None] = mapped_column(String(10))
    # My本棚 (Koga): the reading history is kept only while this is on (off by default).
    keep_history: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Secret part of the due-date calendar feed's address (/calendar/<token>.ics); reset by the patron.
    calendar_token: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))

    emails: Mapped[list[Email]] = relationship(lazy="raise", back_populates="patron")


class Email(Base):
    __tablename__ = "emails"
    __table_args__ = (
        UniqueConstraint("patron_id", "address"),
        Index("uq_emails_token_hash", "token_hash", unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(254))
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))
    # Confirmation link: only a hash of the token is kept; it works once, until token_expires_at.
    token_hash: Mapped[str | None] = mapped_column(String(64))
    token_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    # Koga: 今後の連絡先はこのアドレスに変更する / 登録済み予約の連絡先もこのアドレスに変更する,
    # applied when the address is confirmed.
    default_on_confirm: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    holds_on_confirm: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    patron: Mapped[Patron] = relationship(lazy="raise", back_populates="emails")


class StaffUser(Base):
    __tablename__ = "staff_users"
    __table_args__ = (CheckConstraint(f"role IN ({_in(STAFF_ROLES)})", name="role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(50), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class Series(Base):
    __tablename__ = "series"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    title_reading: Mapped[str] = mapped_column(String(300), default="", server_default="")


class Bib(Base):
    __tablename__ = "bibs"
    __table_args__ = (CheckConstraint(f"material_type IN ({_in(MATERIAL_TYPES)})", name="material_type"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    control_number: Mapped[str | None] = mapped_column(String(50), unique=True)  # 001 of an imported record
    title: Mapped[str] = mapped_column(String(500))
    title_reading: Mapped[str] = mapped_column(String(500), default="", server_default="")
    authors: Mapped[str] = mapped_column(String(500), default="", server_default="")
    authors_reading: Mapped[str] = mapped_column(String(500), default="", server_default="")
    publisher: Mapped[str] = mapped_column(String(200), default="", server_default="")
    pub_year: Mapped[int | None] = mapped_column(Integer)
    isbn: Mapped[str | None] = mapped_column(String(17), index=True)
    subjects: Mapped[str] = mapped_column(Text, default="", server_default="")
    language: Mapped[str] = mapped_column(String(3), default="jpn", server_default="jpn")
    material_type: Mapped[str] = mapped_column(String(20), default="book", server_default="book")
    loanable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    series_id: Mapped[int | None] = mapped_column(ForeignKey("series.id"), index=True)
    series_volume: Mapped[int | None] = mapped_column(Integer)
    search_key: Mapped[int | None] = mapped_column(BigInteger)  # rowid in bib_fts (SQLite)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(ITEM_STATUSES)})", name="status"),
        Index("ix_items_bib_status", "bib_id", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    barcode: Mapped[str] = mapped_column(String(30), unique=True)
    bib_id: Mapped[int] = mapped_column(ForeignKey("bibs.id"), index=True)
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"), index=True)  # home branch
    location_branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id"))  # where it is now
    status: Mapped[str] = mapped_column(String(20), default="on_shelf", server_default="on_shelf")
    loanable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    is_ill: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # 相互貸借
    available_since: Mapped[dt.date | None] = mapped_column(Date, index=True)  # new-arrival digest
    shelfmark: Mapped[str] = mapped_column(String(50), default="", server_default="")


class Loan(Base):
    __tablename__ = "loans"
    __table_args__ = (
        # One open loan per item, on both databases.
        Index(
            "uq_loans_open_item",
            "item_id",
            unique=True,
            sqlite_where=text("returned_on IS NULL"),
            postgresql_where=text("returned_on IS NULL"),
        ),
        Index("ix_loans_patron_open", "patron_id", "returned_on"),
        # Open loans by due date (the daily due reminders and overdue notices), not every loan ever.
        Index(
            "ix_loans_open_due",
            "due_on",
            sqlite_where=text("returned_on IS NULL"),
            postgresql_where=text("returned_on IS NULL"),
        ),
        # A patron's loans in a period (the reading marathon's count), among years of returned ones.
        Index("ix_loans_patron_loaned", "patron_id", "loaned_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id"))
    branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"))  # where it was checked out
    loaned_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date)
    renewals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_renewed_on: Mapped[dt.date | None] = mapped_column(Date)
    returned_on: Mapped[dt.date | None] = mapped_column(Date)


class Hold(Base):
    __tablename__ = "holds"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(HOLD_STATUSES)})", name="status"),
        CheckConstraint(f"contact IN ({_in(CONTACTS)})", name="contact"),
        Index("ix_holds_bib_queue", "bib_id", "status", "placed_at"),
        # A patron's holds by status; cancelled ones by when (the lists show the recent ones).
        Index("ix_holds_patron_status", "patron_id", "status", "cancelled_at"),
        # Holds by status: the counter's pickup shelf (ready at its branch, by "keep until") and the
        # daily jobs' ready holds, among every hold ever collected or cancelled.
        Index("ix_holds_status_pickup", "status", "pickup_branch_id", "shelf_until"),
        # A copy is set aside for at most one hold at a time (never one item on two holds).
        Index(
            "uq_holds_item_allocated",
            "item_id",
            unique=True,
            sqlite_where=text("status IN ('in_transit', 'ready')"),
            postgresql_where=text("status IN ('in_transit', 'ready')"),
        ),
        # One active hold per patron and bib (spec 4: no duplicate hold, from any channel).
        Index(
            "uq_holds_active_patron_bib",
            "patron_id",
            "bib_id",
            unique=True,
            sqlite_where=text("status IN ('waiting', 'in_transit', 'ready')"),
            postgresql_where=text("status IN ('waiting', 'in_transit', 'ready')"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id"))
    bib_id: Mapped[int] = mapped_column(ForeignKey("bibs.id"))
    status: Mapped[str] = mapped_column(String(20), default="waiting", server_default="waiting")
    placed_at: Mapped[dt.datetime] = mapped_column(DateTime)  # queue order
    pickup_branch_id: Mapped[int] = mapped_column(ForeignKey("branches.id"))
    pickup_location_id: Mapped[int | None] = mapped_column(ForeignKey("pickup_locations.id"))
    contact: Mapped[str] = mapped_column(String(10), default="email", server_default="email")
    email_id: Mapped[int | None] = mapped_column(ForeignKey("emails.id", ondelete="SET NULL"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"))
    channel: Mapped[str] = mapped_column(String(20), default="web", server_default="web")
    suspended_until: Mapped[dt.date | None] = mapped_column(Date)
    # Ordered series holds (順番予約): holds sharing a group are allocated in position order.
    series_group: Mapped[str | None] = mapped_column(String(36), index=True)
    series_position: Mapped[int | None] = mapped_column(Integer)
    ready_on: Mapped[dt.date | None] = mapped_column(Date)
    notified_on: Mapped[dt.date | None] = mapped_column(Date)
    shelf_until: Mapped[dt.date | None] = mapped_column(Date)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    cancel_reason: Mapped[str | None] = mapped_column(String(20))  # patron / staff / expired
    collected_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


NOTICE_STATUSES = ("pending", "sent", "failed")
NOTICE_TYPES = (
    "registration_confirm",
    "registration_received",
    "registration_completed",
    "registration_rejected",
    "email_confirmation",
    "hold_accepted",
    "pickup_ready",
    "hold_expired",
    "due_reminder",
    "overdue",
    "card_expiry",
    "temporary_password",
    "new_arrivals",
    "library_news",
)


class Notice(Base):
    """A mail decided in the same transaction as the change it reports; the worker sends pending ones."""

    __tablename__ = "notices"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(NOTICE_STATUSES)})", name="status"),
        # Notices by status in id order: the mailer's due ones (oldest first, 50 at a time) and
        # the staff's failed ones (newest first), each walked in order and stopped early.
        Index("ix_notices_status", "status", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(30))
    patron_id: Mapped[int | None] = mapped_column(ForeignKey("patrons.id"), index=True)  # None: an applicant
    registration_id: Mapped[int | None] = mapped_column(ForeignKey("registrations.id"))
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("holds.id"))
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loans.id"))
    dedup_key: Mapped[str] = mapped_column(String(120), unique=True)  # one notice per event, ever
    payload: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # JSON for the template
    status: Mapped[str] = mapped_column(String(10), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(DateTime)  # a worker is sending it until then
    claimed_by: Mapped[str | None] = mapped_column(String(60))  # which worker (see app/tasks/mailer.py)


# The table itself, for Core bulk inserts (executemany) of notices.
NOTICES: Table = Notice.__table__  # type: ignore[assignment]


class StaffAudit(Base):
    """Who did what at the counter, and when."""

    __tablename__ = "staff_audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200), default="", server_default="")
    detail: Mapped[str] = mapped_column(String(500), default="", server_default="")
    at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


REGISTRATION_STATUSES = ("email_pending", "documents", "submitted", "approved", "rejected")


class Registration(Base):
    """An online self-registration (Yokohama): applicant's details until staff approve or reject them."""

    __tablename__ = "registrations"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(REGISTRATION_STATUSES)})", name="status"),
        Index("uq_registrations_token_hash", "token_hash", unique=True),
        # Applications waiting for review, and an applicant's earlier application, among every
        # application ever reviewed.
        Index("ix_registrations_status", "status", "id"),
        Index("ix_registrations_email_birth", "email", "birth_date"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="email_pending", server_default="email_pending")
    eligibility: Mapped[str] = mapped_column(String(10))  # live / work / study
    name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    address: Mapped[str] = mapped_column(String(300))
    phone: Mapped[str] = mapped_column(String(30))
    email: Mapped[str] = mapped_column(String(254))
    lang: Mapped[str] = mapped_column(String(2), default="ja", server_default="ja")
    password_hash: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str | None] = mapped_column(String(64))
    token_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    duplicate_note: Mapped[str] = mapped_column(String(300), default="", server_default="")
    reject_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    patron_id: Mapped[int | None] = mapped_column(ForeignKey("patrons.id"))
    reviewed_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


class RegistrationDocument(Base):
    """An identity document, stored outside app/static under a random name, deleted after review."""

    __tablename__ = "registration_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    registration_id: Mapped[int] = mapped_column(
        ForeignKey("registrations.id", ondelete="CASCADE"), index=True
    )
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)
    content_type: Mapped[str] = mapped_column(String(30))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


class BookList(Base):
    """マイブックリスト (Fukushima): a patron's own list of titles, with a memo."""

    __tablename__ = "book_lists"
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    memo: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


class BookListEntry(Base):
    __tablename__ = "book_list_entries"
    __table_args__ = (UniqueConstraint("list_id", "bib_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("book_lists.id", ondelete="CASCADE"), index=True)
    bib_id: Mapped[int] = mapped_column(ForeignKey("bibs.id"))
    memo: Mapped[str] = mapped_column(Text, default="", server_default="")
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


class Favourite(Base):
    """お気に入り (Koga): one toggle per title."""

    __tablename__ = "favourites"
    __table_args__ = (UniqueConstraint("patron_id", "bib_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"), index=True)
    bib_id: Mapped[int] = mapped_column(ForeignKey("bibs.id"))
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


class Marathon(Base):
    """読書マラソン (Koga): a goal of N loans between two dates."""

    __tablename__ = "marathons"
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"), index=True)
    goal: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


class HistoryShelf(Base):
    """A custom shelf of the reading history (本棚を作成する, Koga)."""

    __tablename__ = "history_shelves"
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


class HistoryEntry(Base):
    """My本棚 (Koga): a title the patron borrowed, kept only while they opt in; one row per title."""

    __tablename__ = "reading_history"
    __table_args__ = (
        UniqueConstraint("patron_id", "bib_id"),
        Index("ix_reading_history_patron_last", "patron_id", "last_loaned_on"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"))
    bib_id: Mapped[int] = mapped_column(ForeignKey("bibs.id"))
    shelf_id: Mapped[int | None] = mapped_column(ForeignKey("history_shelves.id", ondelete="SET NULL"))
    first_loaned_on: Mapped[dt.date] = mapped_column(Date)
    last_loaned_on: Mapped[dt.date] = mapped_column(Date)
    times: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class Alert(Base):
    """A saved search whose new arrivals are mailed in the biweekly digest (Fukushima)."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(primary_key=True)
    patron_id: Mapped[int] = mapped_column(ForeignKey("patrons.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(50))
    query: Mapped[str] = mapped_column(Text)  # the search's parameters as JSON
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))


class LibraryEvent(Base):
    """An event on the library calendar (a story time, a book fair), written by staff."""

    __tablename__ = "library_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("branches.id", ondelete="CASCADE"))
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    title_ja: Mapped[str] = mapped_column(String(100))
    title_en: Mapped[str] = mapped_column(String(100), default="", server_default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class News(Base):
    """Library news or an urgent closure notice (Yokohama's 緊急のお知らせ), written by staff."""

    __tablename__ = "news"
    __table_args__ = (
        # The news shown now (urgent first, newest first, a few of them), walked in this order
        # and stopped early, instead of sorting every item ever published (news.current).
        Index("ix_news_current", "urgent", "published_on", "id"),
        # Items staff asked to mail that the worker has not mailed yet (news.fan_out, every minute).
        Index("ix_news_to_mail", "mail_requested", "mailed_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    title_ja: Mapped[str] = mapped_column(String(100))
    title_en: Mapped[str] = mapped_column(String(100), default="", server_default="")
    body_ja: Mapped[str] = mapped_column(Text, default="", server_default="")
    body_en: Mapped[str] = mapped_column(Text, default="", server_default="")
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    published_on: Mapped[dt.date] = mapped_column(Date, index=True)
    shown_until: Mapped[dt.date | None] = mapped_column(Date)
    mail_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    mailed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # notices made for every subscriber
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, server_default=text("CURRENT_TIMESTAMP"))
