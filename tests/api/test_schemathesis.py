"""Schemathesis against the OpenAPI document: every answer the app gives must be one the document promises.

The app runs in-process (ASGI) on a real, migrated SQLite database with a signed-in user and
some imported data; schemathesis's engine runs all its phases (examples, coverage, fuzzing,
stateful) with all its checks, seeded and within a time budget, and the test fails on any
distinct failure it reports, printing them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.engine import events, from_schema
from schemathesis.engine.statistic import Statistic
from schemathesis.python import asgi

from finsync.api.app import create_app
from finsync.cli import migrate_database
from tests.api.helpers import PASSWORD
from tests.conftest import SHARED, make_settings
from tests.fakes.clock import VirtualClock

pytestmark = pytest.mark.e2e

SEED = 20261121
MAX_SECONDS = 90
OFX = SHARED / "fixtures" / "ofx"


def _refused_url() -> str:
    """A loopback address nothing listens on: provider calls fail fast, never leave the machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'schemathesis.db'}"
    migrate_database(url)
    dead = _refused_url()
    settings = make_settings(
        url,
        tmp_path,
        trading212_live_url=dead,
        trading212_demo_url=dead,
        alpaca_live_url=dead,
        alpaca_paper_url=dead,
        provider_timeout_seconds=1.0,
    )
    application = create_app(settings, adapter_options={"clock": VirtualClock()})
    yield application
    asgi.shutdown_lifespans()


def _seed(app: FastAPI) -> str:
    """A user with an imported bank and brokerage statement; returns their access token."""
    with asgi.get_client(app) as client:
        r = client.post("/api/v1/users", json={"email": "ada@example.com", "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = client.post("/api/v1/auth/token", data={"username": "ada@example.com", "password": PASSWORD})
        assert r.status_code == 200, r.text
        token = str(r.json()["access_token"])
        for name in ("bank_medium.ofx", "fidelity.ofx"):
            files = {"file": (name, (OFX / name).read_bytes(), "application/x-ofx")}
            r = client.post("/api/v1/imports", headers={"Authorization": f"Bearer {token}"}, files=files)
            assert r.status_code == 201, r.text
    return token


def _streams(ctx: Any) -> bool:
    """Streaming endpoints (server-sent events) never end on their own: not for this run."""
    responses = ctx.operation.definition.raw.get("responses", {})
    return any("text/event-stream" in (r.get("content") or {}) for r in responses.values())


def test_the_api_keeps_every_promise_of_its_openapi_document(app: FastAPI) -> None:
    token = _seed(app)
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "max-time": MAX_SECONDS,
            "headers": {"Authorization": f"Bearer {token}"},
            "checks": {"enabled": True},
            "generation": {"database": "none"},
        }
    )
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=config).exclude(func=_streams)
    statistic, errors = Statistic(), []
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            statistic.on_scenario_finished(event.recorder)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(f"{getattr(event, 'label', '')}: {event.info.format()}")
    elapsed = time.monotonic() - started
    report = []
    for label, groups in statistic.failures.items():
        for group in groups.values():
            body = group.response.text[:300] if group.response is not None else ""
            status = group.response.status_code if group.response is not None else None
            titles = "; ".join(f"{f.title}: {f.message}" for f in group.failures)
            report.append(f"{label}: {titles}\n  -> {status} {body}\n  {group.code_sample}")
    print(
        f"schemathesis: {len(statistic.unique_failures_map)} distinct failures, "
        f"{statistic.total_cases} cases, {elapsed:.1f} s"
    )
    if os.environ.get("FINSYNC_SCHEMATHESIS_REPORT"):
        Path(os.environ["FINSYNC_SCHEMATHESIS_REPORT"]).write_text("\n\n".join(report + errors))
    assert not errors, "\n".join(errors)
    assert not report, f"{len(report)} distinct failures:\n" + "\n".join(report)
