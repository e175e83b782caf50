"""Schemathesis against the OpenAPI document: every answer the app gives must be one the document promises.

The app runs in-process (ASGI) as `make run` builds it, on a real, migrated SQLite database
with a signed-in user and imported statements, its providers faked on loopback. Schemathesis's
engine runs all its phases (examples, coverage, fuzzing, stateful) with all its checks (the
response-time one needs a limit and stays off), seeded, with a fixed number of examples per
operation; streaming endpoints are left out. The test fails on any distinct failure, printing
each with a curl line. The one thing filtered is a documented domain rule refusing schema-valid
data (`_domain_rule`).

A count, not a time budget: with ``max-time`` the engine shares the budget between phases and
stops wherever the clock says, so a busy machine ran a fraction of the coverage phase (887 of
its 3,137 cases under load) and no two runs tested the same cases. With a count every run sends
the same cases: the whole coverage phase (every boundary and every schema-violating value of
every parameter, which is where the document's lies show), ``EXAMPLES`` generated cases per
operation and ``STATEFUL_EXAMPLES`` linked scenarios, in about a third of the time the budget
took. The failure classes this test was built for still fail it, checked by injecting each:
error bodies documented as JSON, undocumented 400s and 401s, a 405 without ``Allow``, numeric
dates accepted, cursors without their pattern, timestamps without ``Z``, a crash. A ``limit``
documented without its bounds is found only by luck (the budgeted run found it in its stateful
phase; runs with 10 and 60 stateful examples did not), so
``test_read_api.py::test_openapi_documents_every_error_as_problem_json`` checks every list's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.engine import events, from_schema
from schemathesis.engine.statistic import Statistic
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.python import asgi

from finsync.api.app import create_app
from tests.api.conftest import redirect_settings
from tests.api.helpers import PASSWORD
from tests.api.world import ALPACA_ID, ALPACA_SECRET, T212_KEY, T212_SECRET
from tests.conftest import SHARED, make_settings, migrated_sqlite_file
from tests.fakes.alpaca import AlpacaStore
from tests.fakes.alpaca import create_app as alpaca_app
from tests.fakes.clock import VirtualClock
from tests.fakes.gocardless import FakeGoCardless
from tests.fakes.gocardless import with_sample_data as gocardless_sample
from tests.fakes.ibkr import BASE as IBKR_BASE
from tests.fakes.ibkr import FlexStore
from tests.fakes.ibkr import create_app as ibkr_app
from tests.fakes.schwab import FakeSchwab
from tests.fakes.schwab import with_sample_data as schwab_sample
from tests.fakes.server import serve
from tests.fakes.trading212 import Trading212Store
from tests.fakes.trading212 import create_app as t212_app

pytestmark = pytest.mark.e2e

SEED = 20261121
EXAMPLES = 10  # generated cases per operation in the fuzzing phase (the coverage phase sends all of its own)
STATEFUL_EXAMPLES = 20  # linked scenarios (create, then read/change/delete what was created)
OFX = SHARED / "fixtures" / "ofx"
FRAMEWORK_REFUSALS = ("/validation-error", "/malformed-request")


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    """The app as `make run` builds it (lifespan and all), on SQLite, its providers faked on loopback."""
    migrated_sqlite_file(tmp_path / "schemathesis.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'schemathesis.db'}"
    clock = VirtualClock()
    schwab, bank = schwab_sample(FakeSchwab(clock)), gocardless_sample(FakeGoCardless(clock))
    with ExitStack() as stack:
        urls = [
            stack.enter_context(serve(app))
            for app in (
                t212_app(clock, api_key=T212_KEY, api_secret=T212_SECRET, store=Trading212Store()),
                alpaca_app(clock, key_id=ALPACA_ID, secret_key=ALPACA_SECRET, store=AlpacaStore()),
                schwab.app,
                bank.app,
                ibkr_app(clock, FlexStore()),
            )
        ]
        settings = make_settings(
            url,
            tmp_path,
            trading212_live_url=urls[0],
            trading212_demo_url=urls[0],
            alpaca_live_url=urls[1],
            alpaca_paper_url=urls[1],
            ibkr_url=f"{urls[4]}{IBKR_BASE}",
            webhook_timeout_seconds=2.0,  # generated webhook URLs lead nowhere (no internet)
            **redirect_settings(urls[2], urls[3], provider_timeout_seconds=2.0),
        )
        yield create_app(settings, adapter_options={"clock": clock})
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


def _domain_rule(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep a failure, unless it is a schema-valid request refused by a documented domain rule.

    A JSON Schema cannot say that a cursor belongs to another list, that date_from is after
    date_to, or that a provider refused a key: those answer a 4xx the operation documents, as a
    problem whose type is not the framework's (or, for the browser callback, as a page). A
    request the framework's own validation refuses although the document allows it stays a
    failure: that would be the document lying.
    """
    documented = case.operation.definition.raw.get("responses", {})
    if isinstance(failure, RejectedPositiveData) and str(response.status_code) in documented:
        try:
            kind = str(json.loads(response.content).get("type", ""))
        except ValueError:
            kind = ""
        return kind.endswith(FRAMEWORK_REFUSALS)
    return True


def test_the_api_keeps_every_promise_of_its_openapi_document(app: FastAPI) -> None:
    token = _seed(app)
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {token}"},
            "checks": {"enabled": True},
            "generation": {"database": "none", "max-examples": EXAMPLES},
            "phases": {"stateful": {"generation": {"max-examples": STATEFUL_EXAMPLES}}},
        }
    )
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, config=config).exclude(func=_streams)
    schema.hook("filter_failure")(_domain_rule)
    statistic, errors = Statistic(), []
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            statistic.on_scenario_finished(event.recorder)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            errors.append(f"{getattr(event, 'label', '')}: {event.info.format()}")
        elif isinstance(event, events.EngineFinished):  # checks over the whole run
            errors += [f"{f.title}: {f.message}" for f in event.failures]
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
    assert not errors, "\n".join(errors)
    assert not report, f"{len(report)} distinct failures:\n" + "\n".join(report)
