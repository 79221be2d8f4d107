"""Statistics that cannot be differenced, on a real Postgres: a card issued, a use
and a wellbeing answer today change no figure today or tomorrow (only completed
months count); a region's month with too few wellbeing answers stays out of the
averages, so two periods' averages never differ by one holder's answer; small
age groups are hidden with a complement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest

from cards.adapters import queries
from cards.domain.disclosure import whole_month_period
from cards.adapters.schema import SCHEMA
from kaiku_shared.db import create_pool, ensure_database, migrate
from kaiku_dev.testing import Namespace, unique_namespace

THRESHOLD = 5
TODAY = date(2026, 6, 17)
ISSUER = uuid4()


@pytest.fixture(scope="module")
def namespace(servers) -> Iterator[Namespace]:
    own = Namespace(unique_namespace("sm"), servers)
    yield own
    asyncio.run(own.drop())


@pytest.fixture
async def conn(namespace) -> AsyncIterator[asyncpg.Connection]:
    await ensure_database(namespace.settings, "cards")
    pool = await create_pool(namespace.settings, "cards", size=1)
    try:
        await migrate(pool, SCHEMA)
    finally:
        await pool.close()
    connection = await asyncpg.connect(namespace.settings.service_database_url("cards"))
    try:
        async with connection.transaction():
            for table in ("card_view", "usage_view", "wellbeing_view"):
                await connection.execute(f"DELETE FROM {table}")
        yield connection
    finally:
        await connection.close()


async def issue(conn, day: date, *, birth_year: int = 1980, region: str = "kainuu",
                life_satisfaction: int | None = None) -> str:
    """A card in the read models as the projections leave it, with an answer at issue."""
    number = uuid4().hex[:10]
    await conn.execute(
        "INSERT INTO card_view (card_number, issuer, birth_year, valid_from, community, "
        "valid_until, children, municipality, region, version) "
        "VALUES ($1, $2, $3, $4, false, $5, 1, 'kajaani', $6, 1)",
        number, ISSUER, birth_year, day, day + timedelta(days=364), region)
    await conn.execute(
        "INSERT INTO wellbeing_view (card_number, version, occasion, answered_on, region, "
        "municipality, life_satisfaction) VALUES ($1, 1, 'issue', $2, $3, 'kajaani', $4)",
        number, day, region, life_satisfaction)
    await conn.execute(
        "INSERT INTO usage_view (ticket_id, card_number, starts_at, children, status, "
        "version) VALUES ($1, $2, $3, 1, 'registered', 1)",
        uuid4(), number, datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=12))
    return number


async def everything(conn, start: str | None, end: str | None, today: date) -> dict:
    months = whole_month_period(start, end, today)
    period = queries.Period(months.first, months.last, today)
    return {
        "national": await queries.national(conn, period),
        **{by: await queries.breakdown(conn, period, by, region="kainuu",
                                       threshold=THRESHOLD)
           for by in queries.DIMENSIONS},
        "ages": await queries.age_groups(conn, period, region="kainuu", threshold=THRESHOLD),
        "wellbeing": await queries.wellbeing(conn, period, region=None, threshold=THRESHOLD),
    }


@pytest.mark.parametrize(("start", "end"), [(None, None), ("2026-01", "2026-12"),
                                            ("2026-06", None)])
async def test_a_day_apart_the_figures_are_the_same(conn, start, end):
    for day in (date(2026, 3, 3), date(2026, 5, 20)) * 3:
        await issue(conn, day, life_satisfaction=7)
    before = await everything(conn, start, end, TODAY)
    # today's card, use and answer: one holder's, and the only ones this month
    await issue(conn, TODAY, birth_year=1950, life_satisfaction=2)
    today = await everything(conn, start, end, TODAY)
    tomorrow = await everything(conn, start, end, TODAY + timedelta(days=1))
    assert before == today == tomorrow
    assert today["national"]["cards_issued"] == (6 if start != "2026-06" else 0)
    # once June is over, June counts
    july = await everything(conn, start, end, date(2026, 7, 1))
    if start != "2026-06":
        assert july["national"]["cards_issued"] == 7
        assert july["national"]["active_cards"] == 7  # judged on 30 June


async def test_a_region_month_with_few_answers_stays_out_of_the_averages(conn):
    for score in (6, 6, 6, 6, 6):
        await issue(conn, date(2026, 3, 10), life_satisfaction=score)
    await issue(conn, date(2026, 4, 10), life_satisfaction=0)  # one answer in April
    await issue(conn, date(2026, 4, 11))  # and one holder who did not answer
    march = await everything(conn, "2026-03", "2026-03", TODAY)
    spring = await everything(conn, "2026-03", "2026-04", TODAY)
    for figures in (march, spring):
        assert figures["wellbeing"]["at_issue"]["life_satisfaction"]["average"] == 6.0
        assert figures["wellbeing"]["at_issue"]["life_satisfaction"]["answers"] == 5
    left_out = spring["wellbeing"]["at_issue"]["life_satisfaction"]
    assert (left_out["left_out"], left_out["suppressed"]) == (2, True)


async def test_a_lone_small_age_group_takes_a_complement(conn):
    for _ in range(3):
        await issue(conn, date(2026, 2, 2), birth_year=2000)  # 26: 25–34
    for _ in range(7):
        await issue(conn, date(2026, 2, 2), birth_year=1980)  # 46: 45–54
    for _ in range(30):
        await issue(conn, date(2026, 2, 2), birth_year=1960)  # 66: 65–74
    ages = {g["age_group"]: g for g in (await everything(conn, None, None, TODAY))["ages"]}
    assert ages["25–34"] == {"age_group": "25–34", "cards": None, "suppressed": True}
    # 40 cards are published as the total: 45–54 is hidden too, or 3 = 40 − 7 − 30
    assert ages["45–54"] == {"age_group": "45–54", "cards": None, "suppressed": True}
    assert ages["65–74"]["cards"] == 30
