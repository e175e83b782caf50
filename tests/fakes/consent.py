"""Submit a fake provider's consent form the way a browser would, without a browser."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


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
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert page.status_code == 200, page.text
        form = _Form()
        form.feed(page.text)
        answer = await browser.post(urljoin(url, form.action), data={**form.fields, "decision": decision})
    assert answer.status_code in (302, 303), answer.text
    return str(answer.headers["location"])
