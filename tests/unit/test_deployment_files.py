"""The files a self-hoster deploys with: no secret written into them, none sent into an image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
INTERPOLATED = re.compile(r"\$\{(\w+)")


def _compose() -> dict[str, dict[str, dict[str, str | dict[str, str]]]]:
    document: dict[str, dict[str, dict[str, str | dict[str, str]]]] = yaml.safe_load(
        (ROOT / "compose.yaml").read_text()
    )
    return document


def _example() -> dict[str, str]:
    lines = (ROOT / "env" / ".env.prod.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_compose_takes_the_database_password_from_the_env_file() -> None:
    services = _compose()["services"]
    db_env = services["db"]["environment"]
    api_env = services["api"]["environment"]
    assert isinstance(db_env, dict)
    assert isinstance(api_env, dict)
    assert INTERPOLATED.findall(db_env["POSTGRES_PASSWORD"]) == ["POSTGRES_PASSWORD"]
    # finsync reaches the bundled database with that same password, written nowhere else.
    assert "${POSTGRES_PASSWORD}" in api_env["FINSYNC_DATABASE_URL"]
    assert "change-me" not in (ROOT / "compose.yaml").read_text()
    # Every variable compose needs is documented in the example env file, empty (to be filled in).
    example = _example()
    needed = set(INTERPOLATED.findall((ROOT / "compose.yaml").read_text())) - {"FINSYNC_DATABASE_URL"}
    assert needed <= example.keys()
    assert all(example[name] == "" for name in needed)


def test_the_database_container_gets_none_of_finsyncs_secrets() -> None:
    db = _compose()["services"]["db"]
    assert "env_file" not in db
    assert not any(name.startswith("FINSYNC_") for name in db["environment"])


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_image() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", "var", "env", ".env", "tests"} <= ignored
    assert not {"src", "pyproject.toml", "README.md", "LICENSE"} & ignored  # what the Dockerfile copies
