from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.upstream import FakeUpstream


@pytest.fixture(scope="module")
def upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server: FakeUpstream) -> FakeUpstream:
    """The module's fake upstream, with this test's requests only."""
    upstream_server.requests.clear()
    upstream_server.disconnects.clear()
    upstream_server.script.clear()
    return upstream_server
