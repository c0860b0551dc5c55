from __future__ import annotations

from tests.generation.conftest import mock_model, rates  # noqa: F401  (fixtures)
