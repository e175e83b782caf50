"""Each test starts with fresh provider rate-limit buckets.

Buckets are shared per provider account for the life of the process (keyed by base URL
and key), and a fake server may get a port an earlier test's server had: without this,
a test could inherit another test's sends, stamped on that test's virtual clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from finsync.providers.ratelimit import SHARED_BUCKETS


@pytest.fixture(autouse=True)
def _fresh_rate_limit_buckets() -> Iterator[None]:
    SHARED_BUCKETS.clear()
    yield
    SHARED_BUCKETS.clear()
