"""Settings are declared once (src/leadgate/config.py): the environment and README follow."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Final

import pytest

from leadgate.config import InvalidSetting, Settings, declarations, markdown_table, with_table
from tests.processes import leadgate

ROOT: Final = Path(__file__).resolve().parent.parent
README: Final = ROOT / "README.md"
# A variable's name as src/ spells it (not a placeholder such as LEADGATE_STATIC__).
VARIABLE: Final = re.compile(r"\b(?:LEADGATE_[A-Z0-9_]*[A-Z0-9]|DATABASE_URL)\b")


def declared_names() -> list[str]:
    return [declared.name for _, declared in declarations()]


def test_unset_and_empty_variables_keep_every_default() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env(dict.fromkeys(declared_names(), " ")) == Settings()


def test_every_default_as_the_variable_spells_it_reads_back_as_that_default() -> None:
    defaults = Settings()
    for name, declared in declarations():
        default = getattr(defaults, name)
        if default is None:
            continue  # unset: nothing to spell
        spelled = declared.parser.show(default)
        assert Settings.from_env({declared.name: spelled}) == defaults, declared.name


def test_values_are_read_from_their_variables_with_their_types() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://app@db.internal/leads",
            "LEADGATE_DATA_DIR": "/var/lib/leadgate",
            "LEADGATE_POOL_MAX": " 25 ",
            "LEADGATE_SHUTDOWN_TIMEOUT": "2.5",
            "LEADGATE_ACCESS_LOG": "1",
            "LEADGATE_COMPILED_QUERIES": "0",
            "LEADGATE_LOG_FORMAT": "json",
            "LEADGATE_WEBHOOK_RETRY_SCHEDULE": "0.2, 1,30",
            "LEADGATE_MAX_TOKENS": "800",
        }
    )
    assert settings == dataclasses.replace(
        Settings(),
        database_url="postgresql://app@db.internal/leads",
        data_dir=Path("/var/lib/leadgate"),
        pool_max_size=25,
        shutdown_timeout_seconds=2.5,
        access_log=True,
        compiled_queries=False,
        log_format="json",
        webhook_retry_schedule=(0.2, 1.0, 30.0),
        max_document_tokens=800,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LEADGATE_POOL_MAX": "ten"}, "LEADGATE_POOL_MAX must be an integer ≥ 1, got 'ten'"),
        ({"LEADGATE_POOL_MAX": "0"}, "LEADGATE_POOL_MAX must be an integer ≥ 1, got '0'"),
        (
            {"LEADGATE_STATEMENT_TIMEOUT_MS": "1.5"},
            "LEADGATE_STATEMENT_TIMEOUT_MS must be an integer ≥ 0, got '1.5'",
        ),
        (
            {"LEADGATE_SHUTDOWN_TIMEOUT": "nan"},
            "LEADGATE_SHUTDOWN_TIMEOUT must be a number of seconds ≥ 0, got 'nan'",
        ),
        (
            {"LEADGATE_WEBHOOK_LEASE": "-1"},
            "LEADGATE_WEBHOOK_LEASE must be a number of seconds ≥ 0, got '-1'",
        ),
        ({"LEADGATE_ACCESS_LOG": "true"}, "LEADGATE_ACCESS_LOG must be 1 or 0, got 'true'"),
        ({"LEADGATE_LOG_FORMAT": "xml"}, "LEADGATE_LOG_FORMAT must be text or json, got 'xml'"),
        (
            {"LEADGATE_WEBHOOK_RETRY_SCHEDULE": "5,,30"},
            "LEADGATE_WEBHOOK_RETRY_SCHEDULE must be comma-separated seconds ≥ 0, got '5,,30'",
        ),
    ],
)
def test_a_bad_value_names_the_variable_and_what_it_expects(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidSetting) as raised:
        Settings.from_env(env)
    assert str(raised.value) == message


def test_a_bad_database_url_is_named_without_echoing_its_password() -> None:
    with pytest.raises(InvalidSetting) as raised:
        Settings.from_env({"DATABASE_URL": "mysql://app:hunter2@db.internal/leads"})
    assert str(raised.value) == "DATABASE_URL must be a postgresql:// URL"


def test_secret_settings_stay_out_of_the_repr() -> None:
    settings = dataclasses.replace(
        Settings.from_env({"DATABASE_URL": "postgresql://app:hunter2@db.internal/leads"}),
        graphiql_api_key="lw_live_not-in-a-repr",
    )
    assert "hunter2" not in repr(settings)
    assert "not-in-a-repr" not in repr(settings)


def test_readme_configuration_table_is_the_one_the_declarations_render() -> None:
    readme = README.read_text(encoding="utf-8")
    assert with_table(readme) == readme, "README is stale: run `make settings-doc`"
    assert markdown_table() in readme


def test_every_variable_is_a_row_of_exactly_one_readme_table() -> None:
    rows = [
        line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `")
    ]
    for name in declared_names():
        assert len([row for row in rows if row.startswith(f"| `{name}`")]) == 1, name


def test_every_variable_named_in_src_is_declared() -> None:
    # A variable read by hand somewhere else would bypass parsing, errors and the README table.
    named = {
        match
        for path in (ROOT / "src" / "leadgate").rglob("*.py")
        for match in VARIABLE.findall(path.read_text(encoding="utf-8"))
    }
    assert named
    assert named <= set(declared_names())


async def test_serve_with_a_bad_variable_exits_2_naming_it_without_a_traceback() -> None:
    result = await leadgate("serve", env={**os.environ, "LEADGATE_POOL_MAX": "ten"})
    assert result.returncode == 2
    assert result.stderr == "error: LEADGATE_POOL_MAX must be an integer ≥ 1, got 'ten'\n"
    assert result.stdout == ""
