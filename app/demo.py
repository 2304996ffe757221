"""The demo library (`python -m app demo-data`): idempotent, dates relative to today.

Browser regression tests rely on the patrons below; keep their card numbers and states.
"""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    Bib,
    Branch,
    ClosedDay,
    Email,
    Hold,
    Item,
    LibraryEvent,
    Loan,
    News,
    Patron,
    PickupLocation,
    Series,
    StaffUser,
)
from app.services.catalog import reindex_bibs
from app.services.passwords import hash_password

BRANCHES = [
    # code, Japanese, English, weekly closing days (ISO weekday digits)
    ("central", "中央図書館", "Central Library", "1"),  # closed every Monday
    ("east", "東図書館", "East Library", "2"),
    ("west", "西図書館", "West Library", ""),
]
SUB_LOCATIONS = [
    ("central", "1階 総合カウンター", "1F main counter"),
    ("central", "2階 こどもカウンター", "2F children's counter"),
]

CLASSICS = [
    ("吾輩は猫である", "わがはいはねこである", "夏目 漱石", "なつめ そうせき", "岩波書店", 1990),
    ("坊っちゃん", "ぼっちゃん", "夏目 漱石", "なつめ そうせき", "新潮社", 2003),
    ("こころ", "こころ", "夏目 漱石", "なつめ そうせき", "岩波書店", 1989),
    ("羅生門・鼻", "らしょうもん はな", "芥川 龍之介", "あくたがわ りゅうのすけ", "新潮社", 2005),
    ("銀河鉄道の夜", "ぎんがてつどうのよる", "宮沢 賢治", "みやざわ けんじ", "角川書店", 1996),
    ("注文の多い料理店", "ちゅうもんのおおいりょうりてん", "宮沢 賢治", "みやざわ けんじ", "新潮社", 1990),
    ("走れメロス", "はしれめろす", "太宰 治", "だざい おさむ", "新潮社", 2005),
    ("人間失格", "にんげんしっかく", "太宰 治", "だざい おさむ", "新潮社", 2006),
    ("雪国", "ゆきぐに", "川端 康成", "かわばた やすなり", "新潮社", 2006),
    ("伊豆の踊子", "いずのおどりこ", "川端 康成", "かわばた やすなり", "新潮社", 2003),
    ("金閣寺", "きんかくじ", "三島 由紀夫", "みしま ゆきお", "新潮社", 2003),
    ("舞姫", "まいひめ", "森 鷗外", "もり おうがい", "岩波書店", 2007),
    ("高瀬舟", "たかせぶね", "森 鷗外", "もり おうがい", "新潮社", 2006),
    ("たけくらべ", "たけくらべ", "樋口 一葉", "ひぐち いちよう", "岩波書店", 2004),
    ("蜘蛛の糸", "くものいと", "芥川 龍之介", "あくたがわ りゅうのすけ", "岩波書店", 2011),
    ("細雪", "ささめゆき", "谷崎 潤一郎", "たにざき じゅんいちろう", "新潮社", 1999),
    ("山月記", "さんげつき", "中島 敦", "なかじま あつし", "角川書店", 2009),
    ("風の又三郎", "かぜのまたさぶろう", "宮沢 賢治", "みやざわ けんじ", "岩波書店", 2010),
    ("檸檬", "れもん", "梶井 基次郎", "かじい もとじろう", "新潮社", 2003),
    ("夜明け前", "よあけまえ", "島崎 藤村", "しまざき とうそん", "岩波書店", 2004),
]
ENGLISH = [
    ("Pride and Prejudice", "Jane Austen", "Penguin Classics", 2003),
    ("A Tale of Two Cities", "Charles Dickens", "Penguin Classics", 2003),
    ("The Adventures of Sherlock Holmes", "Arthur Conan Doyle", "Oxford University Press", 2009),
    ("Alice's Adventures in Wonderland", "Lewis Carroll", "Macmillan", 2015),
    ("The Old Man and the Sea", "Ernest Hemingway", "Scribner", 1995),
    ("Frankenstein", "Mary Shelley", "Penguin Classics", 2018),
    ("Moby-Dick", "Herman Melville", "Penguin Classics", 2002),
    ("The Great Gatsby", "F. Scott Fitzgerald", "Scribner", 2004),
    ("Little Women", "Louisa May Alcott", "Penguin Classics", 2019),
    ("Anne of Green Gables", "L. M. Montgomery", "Puffin", 2008),
    ("Kokoro (English translation)", "Natsume Soseki", "Penguin Classics", 2010),
    ("Snow Country", "Yasunari Kawabata", "Vintage", 1996),
    ("The Tale of Genji", "Murasaki Shikibu", "Penguin Classics", 2002),
    ("Japanese Cooking for Beginners", "Emi Kato", "Tuttle", 2021),
    ("A History of Kyushu", "Robert Hill", "Routledge", 2019),
    ("Learning Python", "Mark Lutz", "O'Reilly", 2013),
    ("Birds of Japan", "Mark Brazil", "Helm", 2018),
    ("The Little Prince", "Antoine de Saint-Exupéry", "Harcourt", 2000),
    ("Gardening Through the Seasons", "Sarah Green", "DK", 2020),
    ("Night Train to the Stars", "Kenji Miyazawa", "Kodansha", 1996),
]
# Generated titles: adjective + noun + の + topic, each with its reading, for a catalogue of 200+.
ADJ = [
    ("はじめての", "はじめての"),
    ("やさしい", "やさしい"),
    ("たのしい", "たのしい"),
    ("図解", "ずかい"),
    ("くわしい", "くわしい"),
    ("親子で学ぶ", "おやこでまなぶ"),
    ("季節の", "きせつの"),
    ("手作りの", "てづくりの"),
]
NOUN = [
    ("家庭料理", "かていりょうり"),
    ("野鳥観察", "やちょうかんさつ"),
    ("星空", "ほしぞら"),
    ("日本史", "にほんし"),
    ("園芸", "えんげい"),
    ("写真", "しゃしん"),
    ("俳句", "はいく"),
    ("プログラミング", "ぷろぐらみんぐ"),
    ("茶道", "さどう"),
    ("福岡散歩", "ふくおかさんぽ"),
    ("昆虫図鑑", "こんちゅうずかん"),
    ("英会話", "えいかいわ"),
    ("猫の飼い方", "ねこのかいかた"),
    ("山歩き", "やまあるき"),
    ("和菓子", "わがし"),
    ("折り紙", "おりがみ"),
    ("天気", "てんき"),
    ("数学", "すうがく"),
    ("絵本の読み聞かせ", "えほんのよみきかせ"),
    ("科学実験", "かがくじっけん"),
    ("世界の国々", "せかいのくにぐに"),
]
PUBLISHERS = ["小学館", "講談社", "朝日新聞出版", "ポプラ社", "福音館書店", "技術評論社"]

SERIES = (
    "星の図書館",
    "ほしのとしょかん",
    "青木 みどり",
    "あおき みどり",
    "星の図書館 第%d巻",
    "ほしのとしょかん だい%dかん",
)
REFERENCE = (
    "日本語大辞典 第二版",
    "にほんごだいじてん",
    "国語研究会 編",
    "こくごけんきゅうかい",
    "大修館書店",
    2019,
)


def _bib_rows() -> list[dict]:
    rows: list[dict] = []
    for i, (title, reading, author, author_reading, publisher, year) in enumerate(CLASSICS):
        rows.append(
            dict(
                control_number=f"demo-ja-{i:03d}",
                title=title,
                title_reading=reading,
                authors=author,
                authors_reading=author_reading,
                publisher=publisher,
                pub_year=year,
                language="jpn",
                subjects="日本文学 小説",
                isbn=f"97840{i:08d}",
            )
        )
    for i, (title, author, publisher, year) in enumerate(ENGLISH):
        rows.append(
            dict(
                control_number=f"demo-en-{i:03d}",
                title=title,
                title_reading=title.lower(),
                authors=author,
                authors_reading=author.lower(),
                publisher=publisher,
                pub_year=year,
                language="eng",
                subjects="English",
                isbn=f"97801{i:08d}",
            )
        )
    for i, ((adj, adj_r), (noun, noun_r)) in enumerate(itertools.product(ADJ, NOUN)):
        rows.append(
            dict(
                control_number=f"demo-gen-{i:03d}",
                title=f"{adj}{noun}",
                title_reading=f"{adj_r}{noun_r}",
                authors=f"著者 {i % 17 + 1}号",
                authors_reading=f"ちょしゃ {i % 17 + 1}ごう",
                publisher=PUBLISHERS[i % len(PUBLISHERS)],
                pub_year=2000 + i % 26,
                language="jpn",
                subjects=noun,
                isbn=f"97848{i:08d}",
                material_type="magazine" if i % 41 == 0 else "book",
            )
        )
    return rows


PATRONS = [
    # card, password, state, name, English name, kana, birth date, phone, expiry (days from today)
    (
        "100000017",
        "hanako-2026",
        "permanent",
        "山田 花子",
        "Hanako Yamada",
        "ヤマダ ハナコ",
        "1985-06-15",
        "092-111-2222",
        900,
    ),
    (
        "100000025",
        "taro-2026",
        "permanent",
        "鈴木 太郎",
        "Taro Suzuki",
        "スズキ タロウ",
        "1978-02-03",
        "092-333-4444",
        700,
    ),
    (
        "100000033",
        "temp-1234",
        "temporary",
        "田中 美咲",
        "Misaki Tanaka",
        "タナカ ミサキ",
        "1992-09-09",
        "092-555-6666",
        800,
    ),
    (
        "100000041",
        "jiro-2026",
        "permanent",
        "高橋 次郎",
        "Jiro Takahashi",
        "タカハシ ジロウ",
        "1969-12-24",
        "092-777-8888",
        -1,
    ),
    (
        "100000058",
        None,
        "none",
        "山本 健",
        "Ken Yamamoto",
        "ヤマモト ケン",
        "1990-04-01",
        "092-000-0000",
        1000,
    ),
    (
        "100000066",
        "sato-2026",
        "permanent",
        "佐藤 優",
        "Yu Sato",
        "サトウ ユウ",
        "2001-07-07",
        "092-999-1111",
        600,
    ),
]
STAFF = [("counter", "counter-2026", "窓口 担当", "counter", "central")]


async def load_demo(session: AsyncSession, today: dt.date) -> dict[str, int]:
    """Create the catalogue once, then put the demo patrons back into their documented state."""
    branches = await _branches(session, today)
    bibs = await _catalogue(session, branches, today)
    await _patrons(session, branches, bibs, today)
    await _arrivals_events_news(session, branches, today)
    unindexed = (await session.scalars(select(Bib.id).where(Bib.search_key.is_(None)))).all()
    await reindex_bibs(session, list(unindexed))
    await session.commit()
    return {"branches": len(branches), "bibs": len(bibs)}


async def _branches(session: AsyncSession, today: dt.date) -> dict[str, Branch]:
    existing = {b.code: b for b in await session.scalars(select(Branch))}
    for code, ja, en, closed in BRANCHES:
        if code not in existing:
            branch = Branch(code=code, name_ja=ja, name_en=en, closed_weekdays=closed)
            session.add(branch)
            existing[code] = branch
    await session.flush()
    if not await session.scalar(select(PickupLocation.id).limit(1)):
        for code, ja, en in SUB_LOCATIONS:
            session.add(PickupLocation(branch_id=existing[code].id, name_ja=ja, name_en=en))
    # Year-end closing (年末年始) for every branch, and one extra day at West, near today.
    days = [(dt.date(y, 12, d), "年末年始") for y in (today.year, today.year + 1) for d in (29, 30, 31)]
    days += [(dt.date(y, 1, d), "年末年始") for y in (today.year, today.year + 1) for d in (1, 2, 3)]
    have = {(c.branch_id, c.day) for c in await session.scalars(select(ClosedDay))}
    for branch in existing.values():
        extra = [(today + dt.timedelta(days=10), "館内整理日")] if branch.code == "west" else []
        for day, note in days + extra:
            if (branch.id, day) not in have:
                session.add(ClosedDay(branch_id=branch.id, day=day, note=note))
    await session.flush()
    return existing


async def _catalogue(session: AsyncSession, branches: dict[str, Branch], today: dt.date) -> dict[str, Bib]:
    bibs = {b.control_number: b for b in await session.scalars(select(Bib)) if b.control_number}
    if "demo-ja-000" in bibs:
        return bibs
    codes = list(branches)
    barcode = itertools.count(200000001)
    for i, row in enumerate(_bib_rows()):
        bib = Bib(**row)
        session.add(bib)
        bibs[bib.control_number or ""] = bib
        await session.flush()
        for j in range(1 + i % 3):
            session.add(
                Item(
                    barcode=str(next(barcode)),
                    bib_id=bib.id,
                    branch_id=branches[codes[(i + j) % 3]].id,
                    available_since=today - dt.timedelta(days=30 + i),
                    status="on_shelf",
                )
            )
    series = Series(title=SERIES[0], title_reading=SERIES[1])
    session.add(series)
    await session.flush()
    for volume in range(1, 5):
        bib = Bib(
            control_number=f"demo-series-{volume}",
            title=SERIES[4] % volume,
            title_reading=SERIES[5] % volume,
            authors=SERIES[2],
            authors_reading=SERIES[3],
            publisher="ポプラ社",
            pub_year=2020 + volume,
            series_id=series.id,
            series_volume=volume,
            subjects="児童書 ファンタジー",
            isbn=f"97845{volume:08d}",
        )
        session.add(bib)
        await session.flush()
        bibs[bib.control_number or ""] = bib
        session.add(
            Item(
                barcode=str(next(barcode)),
                bib_id=bib.id,
                branch_id=branches["central"].id,
                available_since=today - dt.timedelta(days=5 * volume),
                status="on_shelf",
            )
        )
    title, reading, author, author_reading, publisher, year = REFERENCE
    ref = Bib(
        control_number="demo-reference",
        title=title,
        title_reading=reading,
        authors=author,
        authors_reading=author_reading,
        publisher=publisher,
        pub_year=year,
        loanable=False,
        subjects="辞書",
        isbn="9784469000001",
    )
    session.add(ref)
    await session.flush()
    bibs["demo-reference"] = ref
    session.add(
        Item(
            barcode=str(next(barcode)),
            bib_id=ref.id,
            branch_id=branches["central"].id,
            loanable=False,
            status="on_shelf",
            shelfmark="R813.1",
        )
    )
    await session.flush()
    return bibs


NEW_ARRIVALS = [
    # control number, title, reading, author, reading, publisher, subjects, days since it became available
    (
        "demo-new-1",
        "宇宙のふしぎ図鑑",
        "うちゅうのふしぎずかん",
        "星野 光",
        "ほしの ひかる",
        "学研",
        "宇宙 天文 図鑑",
        2,
    ),
    (
        "demo-new-2",
        "はじめての和食",
        "はじめてのわしょく",
        "田中 みそ",
        "たなか みそ",
        "主婦の友社",
        "料理",
        5,
    ),
    ("demo-new-3", "A Guide to Japanese Libraries", "", "Jane Reader", "", "Library Press", "libraries", 9),
]


async def _arrivals_events_news(session: AsyncSession, branches: dict[str, Branch], today: dt.date) -> None:
    """New arrivals (for the digest), two events on the calendar and one piece of library news."""
    existing = {
        b.control_number: b
        for b in await session.scalars(select(Bib).where(Bib.control_number.like("demo-new-%")))
    }
    for n, (control, title, reading, author, author_reading, publisher, subjects, ago) in enumerate(
        NEW_ARRIVALS
    ):
        bib = existing.get(control)
        if bib is None:
            bib = Bib(
                control_number=control,
                title=title,
                title_reading=reading,
                authors=author,
                authors_reading=author_reading,
                publisher=publisher,
                pub_year=today.year,
                subjects=subjects,
                language="jpn" if reading else "eng",
            )
            session.add(bib)
            await session.flush()
            session.add(Item(barcode=f"29000000{n + 1}", bib_id=bib.id, branch_id=branches["central"].id))
            await session.flush()
        # Kept new whenever the demo is loaded again: dates are relative to today.
        bib.pub_year = today.year
        for item in await session.scalars(select(Item).where(Item.bib_id == bib.id)):
            item.available_since = today - dt.timedelta(days=ago)
    if not await session.scalar(select(LibraryEvent.id).limit(1)):
        saturday = today + dt.timedelta(days=(5 - today.weekday()) % 7 or 7)
        session.add(
            LibraryEvent(
                branch_id=branches["central"].id, day=saturday, title_ja="おはなし会", title_en="Story time"
            )
        )
        session.add(
            LibraryEvent(
                branch_id=None,
                day=today + dt.timedelta(days=12),
                title_ja="リサイクル本フェア",
                title_en="Recycled book fair",
            )
        )
    if not await session.scalar(select(News.id).limit(1)):
        session.add(
            News(
                title_ja="年末年始の休館について",
                title_en="Closed over the New Year",
                body_ja="12月29日から1月3日まで、すべての図書館は休館します。",
                body_en="All libraries are closed from 29 December to 3 January.",
                published_on=today,
            )
        )
    await session.flush()


async def _patrons(
    session: AsyncSession, branches: dict[str, Branch], bibs: dict[str, Bib], today: dt.date
) -> None:
    central = branches["central"].id
    patrons: dict[str, Patron] = {}
    for card, password, state, name, name_en, kana, born, phone, expiry in PATRONS:
        patron = await session.scalar(select(Patron).where(Patron.card_number == card))
        if patron is None:
            patron = Patron(card_number=card)
            session.add(patron)
        patron.name, patron.name_en, patron.name_kana = name, name_en, kana
        patron.birth_date = dt.date.fromisoformat(born)
        patron.phone = phone
        patron.card_expires_on = today + dt.timedelta(days=expiry)
        patron.password_state = state
        patron.password_hash = await hash_password(password) if password else None
        patron.home_branch_id = central
        patrons[card] = patron
    await session.flush()
    ids = [p.id for p in patrons.values()]
    # Put the demo patrons back: their loans and holds are recreated below.
    loaned = select(Loan.item_id).where(Loan.patron_id.in_(ids))
    await session.execute(update(Item).where(Item.id.in_(loaned)).values(status="on_shelf"))
    await session.execute(delete(Loan).where(Loan.patron_id.in_(ids)))
    await session.execute(delete(Hold).where(Hold.patron_id.in_(ids)))
    await session.execute(delete(Email).where(Email.patron_id.in_(ids)))
    hanako, taro, sato = patrons["100000017"], patrons["100000025"], patrons["100000066"]
    session.add(
        Email(
            patron_id=hanako.id,
            address="hanako@example.jp",
            is_default=True,
            confirmed_at=dt.datetime.combine(today - dt.timedelta(days=100), dt.time(10)),
        )
    )
    session.add(
        Email(
            patron_id=sato.id,
            address="sato@example.jp",
            is_default=True,
            confirmed_at=dt.datetime.combine(today - dt.timedelta(days=50), dt.time(10)),
        )
    )

    async def lend(patron: Patron, control: str, loaned_ago: int, due_in: int, renewals: int = 0) -> None:
        item = await session.scalar(
            select(Item).where(Item.bib_id == bibs[control].id).order_by(Item.id).limit(1)
        )
        assert item is not None
        item.status = "on_loan"
        session.add(
            Loan(
                item_id=item.id,
                patron_id=patron.id,
                branch_id=item.branch_id,
                loaned_on=today - dt.timedelta(days=loaned_ago),
                due_on=today + dt.timedelta(days=due_in),
                renewals=renewals,
                last_renewed_on=today - dt.timedelta(days=6) if renewals else None,
            )
        )

    # Hanako: one renewable, one reserved by another patron, one already renewed once; nothing overdue.
    await lend(hanako, "demo-ja-000", loaned_ago=10, due_in=4)  # 吾輩は猫である: renewable
    await lend(hanako, "demo-ja-004", loaned_ago=5, due_in=9)  # 銀河鉄道の夜: Sato has reserved it
    await lend(hanako, "demo-en-000", loaned_ago=20, due_in=8, renewals=1)  # Pride and Prejudice: renewed
    # Taro: one loan three days overdue.
    await lend(taro, "demo-ja-006", loaned_ago=17, due_in=-3)  # 走れメロス
    now = dt.datetime.combine(today, dt.time(9))
    session.add(
        Hold(
            patron_id=sato.id,
            bib_id=bibs["demo-ja-004"].id,
            status="waiting",
            placed_at=now - dt.timedelta(days=2),
            pickup_branch_id=central,
            contact="email",
        )
    )
    session.add(
        Hold(
            patron_id=hanako.id,
            bib_id=bibs["demo-series-2"].id,
            status="waiting",
            placed_at=now - dt.timedelta(days=1),
            pickup_branch_id=central,
            contact="email",
        )
    )
    for username, password, display, role, branch in STAFF:
        staff = await session.scalar(select(StaffUser).where(StaffUser.username == username))
        if staff is None:
            staff = StaffUser(username=username)
            session.add(staff)
        staff.display_name, staff.role, staff.branch_id = display, role, branches[branch].id
        staff.password_hash = await hash_password(password)
    await session.flush()
