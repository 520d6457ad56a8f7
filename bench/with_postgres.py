"""Run a command against a throwaway PostgreSQL server, then print its tables' sizes.

    python -m bench.with_postgres [--schema S ...] -- COMMAND ... {url} ...

The server is ``initdb``'d in a temp dir and listens on a free port of
127.0.0.1 only (``tests/postgres_server.py``), with its durable defaults (fsync
and full-page writes on, the other settings PostgreSQL's own); it is stopped and
removed afterwards. ``{url}`` in the command becomes the URL of a conveyor store
in schema ``--schema`` (the first one given) of database ``conveyor``; ``{url:S}``
that of schema ``S``. When the command ends, the size of every table of each
schema (with its indexes and TOAST) is printed. ``scripts/bench-admin`` runs the
management reads this way.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import psycopg
from psycopg import sql
from tests.postgres_server import PostgresServer, running_postgres

DURABLE = {"fsync": "on", "full_page_writes": "on"}


def table_sizes(server: PostgresServer, schema: str) -> str:
    """One line per table of ``schema`` of 1 MB or more: rows (counted), table, indexes, total."""
    with psycopg.connect(server.store_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname,"
            " pg_size_pretty(pg_table_size(c.oid)), pg_size_pretty(pg_indexes_size(c.oid)),"
            " pg_size_pretty(pg_total_relation_size(c.oid)), pg_total_relation_size(c.oid)"
            " FROM pg_class c WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r'"
            " ORDER BY pg_total_relation_size(c.oid) DESC",
            (schema,),
        ).fetchall()
        total = sum(row[4] for row in rows)
        lines = [f"schema {schema}: {total / 2**20:,.0f} MB in all"]
        lines.append(f"  {'table':<18} {'rows':>12} {'table':>10} {'indexes':>10} {'total':>10}")
        for name, table, indexes, whole, size in rows:
            if size < 1 << 20:  # the small ones say nothing
                continue
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(name)
            )
            found = conn.execute(query).fetchone()
            count = found[0] if found else 0
            lines.append(f"  {name:<18} {count:>12,} {table:>10} {indexes:>10} {whole:>10}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", action="append", help="conveyor's schema(s); default bench")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    schemas = args.schema or ["bench"]
    if not command:
        parser.error("a command is needed")
    with running_postgres(DURABLE) as server:

        def url(match: re.Match[str]) -> str:
            return server.store_url(match.group(1) or schemas[0])

        argv = [re.sub(r"\{url(?::(\w+))?\}", url, arg) for arg in command]
        print(f"PostgreSQL on 127.0.0.1:{server.port} (fsync on)", flush=True)
        status = subprocess.run(argv, check=False).returncode
        for schema in schemas:
            print(table_sizes(server, schema))
    sys.exit(status)


if __name__ == "__main__":
    main()
