"""The chat tests run turns through the engine: its fixtures (the mock model, the rate cards)."""

from __future__ import annotations

from tests.generation.conftest import mock_model, rates  # noqa: F401  (fixtures)
