"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from finsync.api.deps import ContainerDep
from finsync.api.schemas import HealthOut

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", response_model=HealthOut)
async def live() -> HealthOut:
    """The process is up."""
    return HealthOut(status="ok")


@router.get("/ready", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def ready(container: ContainerDep) -> HealthOut | JSONResponse:
    """The database answers; 503 otherwise."""
    problem = await container.database_problem()
    if problem is not None:
        body = HealthOut(status="unavailable", checks={"database": problem})
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthOut(status="ok", checks={"database": "ok"})
