"""The wire-format rules every JSON response keeps, as a walker any API test can reuse.

* a timestamp is UTC with ``Z``: ``2026-11-21T09:00:00Z``;
* a decimal string is fixed-point: never ``4.3E+2``.

``raw`` members are skipped: they are the provider's record as received, not our rendering.
``WireCheck`` is an httpx response hook that applies the walker to every JSON response.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$")
EXPONENT = re.compile(r"^-?[0-9.]+[eE][+-]?[0-9]+$")
DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
SKIPPED = frozenset({"raw"})


@dataclass
class WireReport:
    """What a walk saw: how many timestamps and decimal strings, and every one that breaks a rule."""

    timestamps: int = 0
    decimals: int = 0
    problems: list[str] = field(default_factory=list)

    def walk(self, value: Any, where: str = "$") -> WireReport:
        if isinstance(value, dict):
            for key, item in value.items():
                if key not in SKIPPED:
                    self.walk(item, f"{where}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.walk(item, f"{where}[{i}]")
        elif isinstance(value, str):
            if TIMESTAMP.match(value):
                self.timestamps += 1
                if not value.endswith("Z"):
                    self.problems.append(f"{where}: timestamp {value!r} is not UTC with Z")
            elif EXPONENT.match(value):
                self.decimals += 1
                self.problems.append(f"{where}: decimal {value!r} is in exponent notation")
            elif DECIMAL.match(value):
                self.decimals += 1
        return self


def wire_problems(body: Any) -> list[str]:
    """Every timestamp not in UTC-with-Z and every decimal in exponent notation in ``body``."""
    return WireReport().walk(body).problems


class WireCheck:
    """An httpx ``response`` hook: walks every JSON response and keeps a running report."""

    def __init__(self) -> None:
        self.report = WireReport()
        self.responses = 0

    async def __call__(self, response: httpx.Response) -> None:
        if "json" not in response.headers.get("content-type", "") or not await response.aread():
            return
        self.responses += 1
        where = f"{response.request.method} {response.request.url.path}"
        self.report.walk(response.json(), where)


async def assert_wire_format(response: httpx.Response) -> None:
    """An httpx ``response`` hook that fails the request's test on the first broken rule."""
    if "json" in response.headers.get("content-type", "") and await response.aread():
        problems = wire_problems(response.json())
        assert not problems, f"{response.request.method} {response.request.url.path}: {problems}"
