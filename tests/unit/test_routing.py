"""``add_routes``: the app's routes sit on the app itself, described exactly as
``include_router`` describes them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, status
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import Mount, Route

from finsync.api.app import create_app
from finsync.api.routing import add_routes
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


class Thing(BaseModel):
    name: str


def _header(x_thing: Annotated[str | None, Header()] = None) -> str | None:
    return x_thing


def _router() -> APIRouter:
    router = APIRouter(prefix="/things", tags=["things"])

    @router.post(
        "/{thing_id}",
        status_code=status.HTTP_201_CREATED,
        responses={404: {"description": "No such thing"}},
        dependencies=[Depends(_header)],
        summary="Make a thing",
        deprecated=True,
    )
    async def make(thing_id: int, body: Thing) -> Thing:
        """Makes it."""
        return body

    @router.get("/named", operation_id="find_things", response_model=list[Thing])
    async def named() -> list[dict[str, str]]:
        return []

    @router.get("", response_model=list[Thing], include_in_schema=False)
    async def hidden() -> list[dict[str, str]]:
        return []

    return router


def test_the_description_is_include_routers_own() -> None:
    included, added = FastAPI(), FastAPI()
    included.include_router(_router(), prefix="/api")
    add_routes(added, _router(), "/api")
    assert added.openapi() == included.openapi()
    assert "deprecated" in added.openapi()["paths"]["/api/things/{thing_id}"]["post"]
    assert added.openapi()["paths"]["/api/things/named"]["get"]["operationId"] == "find_things"


def test_every_route_of_the_app_is_its_own(tmp_path: Path) -> None:
    """A router included the usual way would sit behind a wrapper every request walks."""
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:", tmp_path))
    wrapped = [r for r in app.router.routes if not isinstance(r, (Route, Mount))]  # APIRoute is a Route
    assert not wrapped
    assert sum(isinstance(r, APIRoute) for r in app.router.routes) > 80


def test_only_api_routes_are_flattened() -> None:
    router = APIRouter()
    router.routes.append(Route("/plain", lambda request: None))
    with pytest.raises(TypeError, match="only API routes"):
        add_routes(FastAPI(), router)
