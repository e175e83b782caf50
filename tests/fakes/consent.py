"""Fake providers' consent pages, and submitting them the way a browser would, without a browser.

A consent page is a plain HTML form (Allow / Deny, no JavaScript) that posts to the provider,
which then sends the browser back to the caller's redirect URI with its own query parameters.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

import httpx
from fastapi.responses import HTMLResponse, RedirectResponse

from finsync.providers.http import http_transport


def consent_page(
    *,
    title: str,
    heading: str,
    action: str,
    intro: str = "",
    hidden: Mapping[str, str] | None = None,
    inputs: str = "",
) -> HTMLResponse:
    """The Allow / Deny form posting to ``action`` (relative to the page).

    ``hidden`` fields travel along with the decision; ``inputs`` is extra form markup.
    """
    fields = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
        for k, v in (hidden or {}).items()
    )
    text = f"<p>{html.escape(intro)}</p>" if intro else ""
    return HTMLResponse(
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(heading)}</h1>{text}"
        f"<form method='post' action='{html.escape(action)}'>{fields}{inputs}"
        "<button type='submit' name='decision' value='allow' id='allow'>Allow</button>"
        "<button type='submit' name='decision' value='deny' id='deny'>Deny</button>"
        "</form></body></html>"
    )


def redirect_back(redirect_uri: str, params: Mapping[str, str]) -> RedirectResponse:
    """Send the browser back to ``redirect_uri`` with ``params`` added to its query."""
    sep = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{sep}{urlencode(params)}", status_code=302)


class _Form(HTMLParser):
    """Collects the consent form's action and hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.action = a.get("action", "")
        elif tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")


async def submit_consent(url: str, decision: str = "allow") -> str:
    """Open the consent page at ``url``, press Allow or Deny, return where the provider redirects."""
    async with httpx.AsyncClient(transport=http_transport()) as browser:
        page = await browser.get(url)
        assert page.status_code == 200, page.text
        form = _Form()
        form.feed(page.text)
        answer = await browser.post(urljoin(url, form.action), data={**form.fields, "decision": decision})
    assert answer.status_code in (302, 303), answer.text
    return str(answer.headers["location"])
