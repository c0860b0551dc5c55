from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.credits.rates import rate_cards_seed_defaults
from apps.generation.catalog import catalog_seed_defaults
from apps.generation.models import AIModel, ModelFallback, Provider
from apps.workspaces.models import Workspace
from tests.credits.helpers import assert_ledger_consistent
from tests.factories import WorkspaceFactory

# The charging-pipeline fixtures (see tests/generation/charging.py for the helpers).


@pytest.fixture
def rates(db: Any) -> None:
    rate_cards_seed_defaults()


@pytest.fixture
def workspace(rates: None) -> Workspace:
    return WorkspaceFactory.create(name="Pipe")


@pytest.fixture
def mock_model(db: Any) -> AIModel:
    catalog_seed_defaults(Provider, AIModel, ModelFallback)  # a flushed database lost the seeded rows
    model = AIModel.objects.select_related("provider").get(model_id="mock-chat")
    model.provider.options = {"latency_ms": 0}
    model.provider.save()
    return model


@pytest.fixture
def _ledger_stays_consistent(db: Any) -> Iterator[None]:
    yield
    assert_ledger_consistent()
