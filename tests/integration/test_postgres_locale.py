"""A PostgreSQL store in a database of the "C" locale finds jobs by non-ASCII words.

Under "C" the database knows no letter beyond ASCII: its ``lower`` leaves 'Ü'
as it is and its regular expressions do not take it for a letter. The one
error the store tokenizes in SQL (a flow parent failed by its child,
``error_keys`` in counts.sql) must still give the words ``stores/search.py``
gives; the conformance test of the same rule runs in the suite's database,
whose locale is the machine's.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from conveyor import Conveyor, JobFailedError, NonRetryableError
from tests.postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

DATABASE = "conveyor_c_locale"


@pytest.fixture
def c_locale_url(postgres_server: PostgresServer) -> Iterator[str]:
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        conn.execute(f"CREATE DATABASE {DATABASE} TEMPLATE template0 LOCALE 'C' ENCODING 'UTF8'")
    yield f"postgresql://postgres@127.0.0.1:{postgres_server.port}/{DATABASE}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


async def test_a_flow_parent_is_found_by_non_ascii_words_in_a_c_database(
    c_locale_url: str,
) -> None:
    app = Conveyor(c_locale_url, log_level="WARNING")

    @app.task(name="pay", queue="members")
    async def pay(customer: str) -> str:
        if customer != "ok":
            raise NonRetryableError(f"Überweisung für {customer} abgelehnt")
        return customer

    @app.task(name="settle")
    async def settle(results: list[str]) -> int:
        return len(results)

    async with app:
        with psycopg.connect(c_locale_url) as conn:
            row = conn.execute("SHOW lc_ctype").fetchone()
        assert row == ("C",)
        flow = await app.flows.group(
            [pay.call("ok"), pay.call("Ærø")], then=settle.step(), on_child_failure="fail"
        )
        await app.work(burst=True)
        with pytest.raises(JobFailedError):
            await flow.wait(timeout=5)
        for word in ("überweisung", "für", "ærø", "abgelehnt"):
            found = await app.jobs.search(error_word=word)
            assert flow.job.id in [job.id for job in found.jobs], word
        assert (await app.jobs.search(error_word="berweisung")).jobs == []
