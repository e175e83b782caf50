"""Where the browser comes back from a provider's consent page (no API token: the state is the key)."""

from __future__ import annotations

import html
from urllib.parse import urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from finsync.api.deps import ContainerDep, PresentDep
from finsync.application.provider_authorization import CallbackOutcome

router = APIRouter(tags=["connections"])

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>finsync</title>
<meta name="viewport" content="width=device-width"></head>
<body style="font-family:system-ui;max-width:32rem;margin:4rem auto">
<h1 id="title">{title}</h1><p id="message">{message}</p>{extra}</body></html>"""


def _client_redirect(target: str, outcome: CallbackOutcome) -> str:
    """Append our parameters to the configured client URL (never one supplied by the request)."""
    parts = urlsplit(target)
    params = {"connection_id": str(outcome.connection_id)} if outcome.connection_id else {}
    if outcome.error:
        params |= {"status": "error", "error": outcome.error}
    else:
        params |= {"status": "reauthorized" if outcome.reauthorized else "connected"}
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


@router.get(
    "/connections/callback/{provider}",
    response_class=HTMLResponse,
    responses={
        302: {"description": "Back to the configured client URL"},
        400: {
            "description": "A page saying why not (denied, expired or unknown state)",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
    },
)
async def authorization_callback(
    provider: str, request: Request, container: ContainerDep, present: PresentDep
) -> Response:
    """The provider redirects the browser here after consent; activates the connection and starts
    its first sync. Redirects to FINSYNC_CLIENT_REDIRECT_URL (with `connection_id` and `status`:
    `connected`, `reauthorized` when the login was already connected and that connection was
    re-authorised instead, or `error` with an `error` code) or shows a small page."""
    params = {k: v for k, v in request.query_params.items() if len(v) <= 4096}
    outcome = await container.provider_authorization.complete(provider, params, present)
    target = container.settings.client_redirect_url
    if target:
        return RedirectResponse(_client_redirect(target, outcome), status_code=302)
    if outcome.error is None:
        page = PAGE.format(
            title="Connected — you can close this window",
            message=html.escape(outcome.message or "finsync is fetching your accounts now."),
            extra=f'<p><small>connection <code id="connection">{outcome.connection_id}</code></small></p>',
        )
        return HTMLResponse(page)
    page = PAGE.format(
        title="Could not connect",
        message=html.escape(outcome.message or "The connection was not authorised."),
        extra=f'<p><small>error code <code id="error">{html.escape(outcome.error)}</code></small></p>',
    )
    return HTMLResponse(page, status_code=400)
