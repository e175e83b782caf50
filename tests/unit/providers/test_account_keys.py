"""Every syncing provider says what its stable account key is (accounts are matched by it)."""

from __future__ import annotations

import pytest

from finsync.domain.enums import AuthType
from finsync.providers.registry import builtin_providers

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "meta", [m for m in builtin_providers() if m.auth_type is not AuthType.FILE], ids=lambda m: m.slug
)
def test_syncing_providers_declare_their_stable_account_key(meta: object) -> None:
    key = getattr(meta, "account_key", "")
    assert isinstance(key, str)
    assert 10 <= len(key) <= 200
