"""schemathesis against the running service's own OpenAPI document.

Every operation is called with generated data (valid and invalid, in its
coverage, fuzzing and stateful phases) over sockets, with all of its checks:
no answer may be a 5xx or break the document (status codes, media types,
schemas, problem+json included), and valid data must be accepted. The CLI is
used because its pytest plugin does not run on pytest 9.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.web_server import ServiceProcess


def test_schemathesis_finds_no_5xx_and_no_answer_outside_the_schema(
    web_service: ServiceProcess, tmp_path: Path
) -> None:
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            web_service.url + "/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            "30",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
