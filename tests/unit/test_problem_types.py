"""Every domain error answers a documented problem type, found through its class hierarchy.

Problem ``type`` URIs are a contract with clients: a new ``FinsyncError`` subclass anywhere
(a provider package included) must resolve to a status and a type that docs/api.md lists.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import finsync
from finsync.api.errors import STATUS, TYPE_BASE, problem_type, status_of
from finsync.domain import errors as e

DOCS = Path(__file__).parents[2] / "docs" / "api.md"
SLUG = re.compile(r"[a-z]+(-[a-z]+)*")


def _import_everything() -> None:
    """Subclasses exist only once their module is imported: import every module of finsync."""
    for module in pkgutil.walk_packages(finsync.__path__, "finsync."):
        if ".migrations." not in module.name:
            importlib.import_module(module.name)


def _subclasses(cls: type[e.FinsyncError]) -> Iterator[type[e.FinsyncError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


_import_everything()
ALL = [e.FinsyncError, *dict.fromkeys(_subclasses(e.FinsyncError))]


def _documented() -> dict[str, int]:
    section = DOCS.read_text().split("### Problem types", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^\| `([a-z-]+)` \| (\d{3}) \|", section, re.M)}


def test_the_walk_sees_errors_of_every_layer() -> None:
    modules = {cls.__module__ for cls in ALL}
    assert {"finsync.domain.errors", "finsync.providers.http", "finsync.providers.ofx.model"} <= modules


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_every_error_class_has_a_documented_problem_type(cls: type[e.FinsyncError]) -> None:
    assert SLUG.fullmatch(cls.code), f"{cls.__name__}.code {cls.code!r} is not a slug"
    assert problem_type(cls) == TYPE_BASE + cls.code
    documented = _documented()
    assert cls.code in documented, f"docs/api.md lists no problem type {cls.code!r} ({cls.__name__})"
    assert documented[cls.code] == status_of(cls), f"{cls.__name__}: docs/api.md gives another status"
    if cls is not e.FinsyncError:  # only the base is the catch-all 500
        assert status_of(cls) != STATUS[e.FinsyncError] or cls in STATUS, (
            f"{cls.__name__} falls through to 500: give it (or its parent) a status in api/errors.py"
        )


def test_one_type_means_one_kind_of_error() -> None:
    """A code is defined by one class; classes sharing it inherit it and answer its status."""
    owners: dict[str, type[e.FinsyncError]] = {}
    for cls in ALL:
        if "code" in vars(cls):
            assert cls.code not in owners, f"{cls.__name__} reuses {owners[cls.code].__name__}'s code"
            owners[cls.code] = cls
    for cls in ALL:
        assert status_of(cls) == status_of(owners[cls.code]), f"{cls.__name__} changes its type's status"


def test_docs_list_no_type_that_nothing_raises() -> None:
    assert set(_documented()) == {cls.code for cls in ALL}


def test_the_nearest_ancestor_decides_not_the_order() -> None:
    from finsync.providers.http import AccessRevoked

    assert status_of(e.NotFound) == 404
    assert status_of(e.RateLimited) == 429
    assert status_of(e.FileTooLarge) == 413  # its own entry beats ImportRejected's 422
    assert status_of(e.MalformedFile) == 422
    assert status_of(e.ConsentDenied) == 422
    assert status_of(AccessRevoked) == 422
    assert problem_type(AccessRevoked).endswith("/provider-auth")
