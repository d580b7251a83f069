"""The committed schema.graphql is the exported truth: it must match what the code serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LEADGATE = Path(sys.executable).with_name("leadgate")
COMMITTED_SCHEMA = Path(__file__).resolve().parents[1] / "schema.graphql"


def test_exported_schema_matches_the_committed_schema_byte_for_byte() -> None:
    result = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [str(LEADGATE), "export-schema"], capture_output=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout == COMMITTED_SCHEMA.read_bytes(), (
        "schema.graphql is out of date with the code: run `make schema` and commit the result"
    )
