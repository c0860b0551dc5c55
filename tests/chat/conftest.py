"""The chat tests run turns through the engine: its fixtures (the mock model, the rate cards)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

from apps.generation.tokens import count_message_tokens
from tests.generation.conftest import mock_model, rates  # noqa: F401  (fixtures)


@pytest.fixture(scope="session", autouse=True)
def _tokenizer_loaded() -> None:
    """The first answer of a process imports litellm to count its prompt (seconds, tens of seconds
    on a busy machine): done once here, so the first socket test of a run is not the one that
    misses its frame time-outs waiting for that import."""
    count_message_tokens("gpt-4o-mini", [{"role": "user", "content": "warm up"}])


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> Iterator[None]:
    """Each test drives its sockets on an event loop of its own (`async_to_sync`), which is gone
    when it ends; a deployed process has one loop for good. channels_redis keeps per-loop state
    in the process's layer (receive locks, a per-channel clean-up lock released by a callback a
    closed loop never runs): left behind, it breaks the next loop's receives ("bound to a
    different event loop"), the e2e server's included. Each test gets a new layer."""
    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
    yield
    channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
