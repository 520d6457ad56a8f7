"""schemathesis against the reference service's own routes (``/api/v1``), over HTTP.

Every product operation (and the management API's queue endpoints at the products'
``/api/v1/queues`` paths) is called with generated data, valid and invalid, in the
coverage, fuzzing and stateful phases, with a customer's key (``X-API-Key``) and an
operator's (``Authorization: Bearer``), under all of its checks (schemathesis 4 runs
every one by default; ``--checks all`` would also override the per-operation settings):
no 5xx, no answer outside the document (problem+json included), invalid data refused,
valid data accepted. ``schemathesis_service.toml`` lists the few answers a schema
cannot state.
The CLI is used because its pytest plugin does not run on pytest 9.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from conveyor import new_api_key
from tests.e2e.reference_service import service_env, sign_up
from tests.web_server import running_service

pytestmark = pytest.mark.slow

OPERATOR, OPERATOR_KEY = new_api_key("fuzz", "operator")


@pytest.mark.timeout(300)
def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_schema(tmp_path: Path) -> None:
    env = {**service_env(tmp_path), "CONVEYOR_ADMIN_KEYS": OPERATOR_KEY.line()}
    with running_service("examples.service:app", tmp_path / "server.log", env=env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            customer = sign_up(client, tier="enterprise", name="fuzz")["X-API-Key"]
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "--config-file",
                str(Path(__file__).with_name("schemathesis_service.toml")),
                "run",
                server.url + "/openapi.json",
                "--include-path-regex",
                "^/api/v1/",
                "--max-examples",
                "5",
                "--header",
                f"X-API-Key: {customer}",
                "--header",
                f"Authorization: Bearer {OPERATOR}",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=240,
            check=False,
        )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
