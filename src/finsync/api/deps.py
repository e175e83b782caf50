"""Annotated dependency aliases used by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import OAuth2PasswordBearer

from finsync.api.pagination import PAGE_PARAMETERS, page_request
from finsync.application.api_tokens import digest, is_api_token
from finsync.application.orders import Bearer, Caller
from finsync.application.user_auth import Client
from finsync.bootstrap import Container
from finsync.config import Settings
from finsync.domain.entities import User
from finsync.domain.errors import AuthenticationFailed, InsufficientScope
from finsync.domain.ports import AccessClaims, PageRequest, PersonPresent, UnitOfWork
from finsync.domain.trading import ApiToken

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_settings(container: ContainerDep) -> Settings:
    return container.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


E = TypeVar("E", bound=Callable[..., Any])


def bounded(endpoint: E) -> E:
    """Marks a route whose plain requests (no parameter but ``limit`` and ``cursor``) read a
    bounded amount: a few rows by key, a page sought in an index, the user's accounts. On a
    SQLite file those read on the event loop's thread (``Container.bounded_read_uow``); any
    other request of the route (a text search, a date range) keeps the threaded reads."""
    endpoint._finsync_bounded = True  # type: ignore[attr-defined]
    return endpoint


def _bounded(request: Request) -> bool:
    endpoint = getattr(request.scope.get("route"), "endpoint", None)
    if not getattr(endpoint, "_finsync_bounded", False):
        return False
    query = request.scope.get("query_string", b"").decode("latin-1")
    return all(name in PAGE_PARAMETERS for name, _ in parse_qsl(query, keep_blank_values=True))


async def get_uow(request: Request) -> AsyncIterator[UnitOfWork]:
    """The request's unit of work, for reads only (never committed; autocommit on PostgreSQL):
    writes go through use cases with their own. (The container straight from the app, not
    through ``ContainerDep``: every dependency level costs each request's CPU.)"""
    container: Container = request.app.state.container
    reads = container.read_uow
    if container.bounded_read_uow is not None and _bounded(request):
        reads = container.bounded_read_uow
    async with reads() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


@dataclass(frozen=True, slots=True)
class Authenticated:
    user: User
    claims: AccessClaims


@dataclass(frozen=True, slots=True)
class Principal:
    """Who calls: a logged-in user (``claims``) or a bot with one of their API tokens."""

    user: User
    caller: Caller
    claims: AccessClaims | None = None


BearerDep = Annotated[str | None, Depends(oauth2)]


async def get_principal(request: Request, uow: UowDep, token: BearerDep) -> Principal:
    """The bearer's user: a JWT whose session is still live, or an unrevoked API token."""
    return await _principal(request, uow, token)


async def _principal(request: Request, uow: UnitOfWork, token: str | None) -> Principal:
    """The bearer's user: a JWT whose session is still live, or an unrevoked API token (by its
    digest). One query, in the request's unit of work: a read route's own queries follow in
    the same transaction on the same connection (one checkout per request, not two). A route
    that does not read through it (writes go through use cases with their own unit of work)
    gets the connection back to the pool at once. Never cached: a revoked session or token
    is refused on its next request."""
    container: Container = request.app.state.container
    if not token:
        raise AuthenticationFailed("missing bearer token")
    api_token: ApiToken | None = None
    claims: AccessClaims | None = None
    if is_api_token(token):
        found = await uow.api_tokens.by_hash(digest(token))
        api_token, user = found if found else (None, None)
    else:
        claims = container.tokens.verify(token)
        user = await uow.users.get_in_session(claims.user_id, claims.session_id, container.clock())
    if not _reads_request_uow(request.scope.get("route")):
        await uow.rollback()  # ends the read transaction: its connection goes back to the pool
    if user is None:
        if claims is None:
            raise AuthenticationFailed("this API token is unknown or revoked")
        raise AuthenticationFailed("this session has ended; please log in again")
    return Principal(user, Caller(user.id, api_token), claims)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def still_good(container: Container, principal: Principal) -> bool:
    """Whether the principal's session (a login) or API token (a bot) is still live, the user
    still active: asked again by what outlives its request (an event stream)."""
    async with container.read_uow() as uow:
        if principal.claims is not None:
            claims, now = principal.claims, container.clock()
            return await uow.users.get_in_session(claims.user_id, claims.session_id, now) is not None
        token = principal.caller.token
        return token is not None and await uow.api_tokens.by_hash(token.token_hash) is not None


async def get_authenticated(principal: PrincipalDep) -> Authenticated:
    """A logged-in user: what API tokens may never do (sessions, password, tokens, settings)."""
    if principal.claims is None:
        raise InsufficientScope("API tokens cannot do this; log in as the user")
    return Authenticated(principal.user, principal.claims)


_AUTH_CALLS: set[object] = set()


def _reads_request_uow(route: object) -> bool:
    """Whether ``route`` uses the request's unit of work for more than authentication
    (looked up once per route in its dependency tree)."""
    if route is None:
        return True
    known: bool | None = getattr(route, "_finsync_reads_uow", None)
    if known is None:
        dependant = getattr(route, "dependant", None)
        known = dependant is None or _needs_uow(dependant)
        route._finsync_reads_uow = known  # type: ignore[attr-defined]  # routes are not hashable
    return known


def _needs_uow(dependant: Dependant) -> bool:
    for sub in dependant.dependencies:
        if sub.call is get_uow:
            return True
        if sub.call not in _AUTH_CALLS and _needs_uow(sub):
            return True
    return False


AuthenticatedDep = Annotated[Authenticated, Depends(get_authenticated)]


# Route paths an API token never reaches, even to read: the login's own affairs (compared with
# the matched route's path, never the URL's, which carries any ``root_path`` prefix).
TOKEN_DENIED = ("/api/v1/auth", "/api/v1/users/me", "/api/v1/api-tokens")


async def get_current_user(request: Request, uow: UowDep, bearer: BearerDep) -> User:
    """The user; an API token passes only to read (scope ``read``, GET) outside TOKEN_DENIED.
    Order routes take ``PrincipalDep`` instead and check ``trade:`` scopes themselves.
    (Not through ``PrincipalDep``: one dependency level less on every request.)"""
    principal = await _principal(request, uow, bearer)
    token = principal.caller.token
    if token is not None:
        # The route's own path: ``request.url.path`` carries the ASGI ``root_path`` (a prefix
        # the app is served under), which no entry of TOKEN_DENIED would match. No route: deny.
        route = getattr(request.scope.get("route"), "path", None)
        if (
            request.method not in ("GET", "HEAD")
            or not isinstance(route, str)
            or route.startswith(TOKEN_DENIED)
        ):
            raise InsufficientScope("API tokens cannot do this; log in as the user")
        if not token.may_read:
            raise InsufficientScope("this API token lacks the scope read")
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]
_AUTH_CALLS.update({get_principal, get_authenticated, get_current_user})


async def get_client(request: Request) -> Client:
    """The caller's address (after trusted proxies only) and user agent."""
    return Client.of(request.client.host if request.client else None, request.headers.get("user-agent"))


ClientDep = Annotated[Client, Depends(get_client)]


async def get_present(client: ClientDep) -> PersonPresent | None:
    """The person behind this request, for a sync they ask for (None: no known address)."""
    return None if client.address == "unknown" else PersonPresent(client.address, client.user_agent)


PresentDep = Annotated[PersonPresent | None, Depends(get_present)]
PageDep = Annotated[PageRequest, Depends(page_request)]


async def get_order_caller(
    request: Request, container: ContainerDep, token: Annotated[str | None, Depends(oauth2)]
) -> Caller | Bearer:
    """Who places an order. An API token is checked by the order's own first read (with the
    account, connection and settings: one round trip where ``get_principal`` would add a
    second); a login's JWT and session are checked by ``_principal`` as everywhere."""
    if token and is_api_token(token):
        return Bearer(digest(token))
    async with container.read_uow() as uow:
        return (await _principal(request, uow, token)).caller


OrderCallerDep = Annotated[Caller | Bearer, Depends(get_order_caller)]
