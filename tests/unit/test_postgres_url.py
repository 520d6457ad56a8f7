"""PostgreSQL store URLs: the schemes served, conveyor's own parameters, clear refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conveyor import ConfigError, Conveyor
from conveyor.stores.postgres.url import parse_url
from conveyor.stores.registry import backend_type, url_problems


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@db:5432/shop",
        "postgres://db/shop",
        "postgresql+asyncpg://db/shop",
        "postgresql+psycopg://db/shop",
    ],
)
def test_every_postgres_scheme_is_served_by_the_postgres_backend(url: str) -> None:
    assert url_problems(url) == []
    assert getattr(backend_type(url), "__name__", None) == "PostgresBackend"


def test_conveyors_parameters_are_taken_out_and_libpqs_kept() -> None:
    parsed = parse_url("postgresql+psycopg://u:p@db/shop?sslmode=require&schema=jobs&pool_size=4")
    assert parsed.dsn == "postgresql://u:p@db/shop?sslmode=require"
    assert (parsed.schema, parsed.pool_size) == ("jobs", 4)
    assert parse_url("postgresql://db/shop").schema == "conveyor"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql://db/shop?schema=Bad-Name", "schema must be"),
        ("postgresql://db/shop?schema=" + "x" * 41, "schema must be"),
        ("postgresql://db/shop?pool_size=0", "pool_size must be"),
        ("postgresql:///shop", "look like postgresql://"),
    ],
)
def test_a_bad_url_is_a_config_error_that_says_why(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Conveyor(url)


def test_the_password_never_appears_in_a_refusal() -> None:
    with pytest.raises(ConfigError) as refused:
        Conveyor("postgresql://app:hunter2@/shop")
    assert "hunter2" not in str(refused.value)


def test_without_the_driver_a_postgres_url_names_the_extra_to_install() -> None:
    script = (
        "import sys\n"
        "sys.modules['asyncpg'] = None  # as if the extra were not installed\n"
        "from conveyor import ConfigError, Conveyor\n"
        "Conveyor('memory://')  # other stores are unaffected\n"
        "try:\n"
        "    Conveyor('postgresql://db/shop')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "pip install 'conveyor[postgres]'" in out.stdout
