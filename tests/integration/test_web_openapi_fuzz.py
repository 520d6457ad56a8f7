"""schemathesis against the running service's own OpenAPI document.

Every operation is called with generated data (valid and invalid, in its
coverage, fuzzing and stateful phases) over sockets, the management API's
with an operator key, with all of its checks:
no answer may be a 5xx or break the document (status codes, media types,
schemas, problem+json included), and valid data must be accepted. The CLI is
used because its pytest plugin does not run on pytest 9.

The service is a server of its own, not the session's shared one: as an
operator schemathesis finds the queues and pauses, cleans and removes (a paused
"default" queue left the later tests' jobs waiting).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.web_server import ADMIN_KEYS, ADMIN_TOKEN, running_service


@pytest.mark.timeout(400)
def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_schema(tmp_path: Path) -> None:
    with running_service(
        "tests.integration.web_service_app:api",
        tmp_path / "server.log",
        env={"CONVEYOR_ADMIN_KEYS": ADMIN_KEYS},
    ) as web_service:
        _fuzz(web_service.url, tmp_path)


def _fuzz(url: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            url + "/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "30",
            # The management API (/api/v1) too, as an operator: its actions run on the
            # service's memory store.
            "--header",
            f"Authorization: Bearer {ADMIN_TOKEN}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
