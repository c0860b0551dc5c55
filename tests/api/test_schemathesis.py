"""Property-based run of schemathesis over the OpenAPI schema: every operation of the platform
API (`/api/v1/`) and the non-streaming OpenAI-compatible endpoints, with generated valid and
invalid inputs, through the real application — no 5xx, whatever the input."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings

from apps.generation.models import Conversation, Message
from tests.api.conftest import Keyed

pytestmark = pytest.mark.django_db(transaction=True)

# Examples per operation; raise it for a deeper run (`SCHEMATHESIS_EXAMPLES=500 make test ...`).
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))


@pytest.fixture
def api_schema() -> Any:
    from drf_spectacular.generators import SchemaGenerator

    generated = SchemaGenerator(urlconf="apps.api.schema_urls").get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(json.loads(json.dumps(generated, default=str)))
    schema.app = get_wsgi_application()
    return schema


@pytest.fixture
def world(keyed: Keyed) -> Keyed:
    """A conversation with messages, so that ids hit real rows now and then."""
    conversation = Conversation.objects.create(workspace=keyed.workspace, title="Fuzz")
    Message.objects.create(workspace=keyed.workspace, conversation=conversation, role="user", content="hello")
    return keyed


def test_no_server_errors(api_schema: Any, world: Keyed) -> None:
    # Each operation as a Hypothesis strategy (schemathesis' pytest loader does not run on this
    # pytest), generated examples sent through the WSGI application.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    failures: list[str] = []

    for operation in operations:

        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            if isinstance(case.body, dict):
                if case.body.get("stream") is True:
                    case.body["stream"] = False  # the streaming response has its own tests
                    case.body.pop("stream_options", None)
                if "model" in case.body:  # reach past the model lookup to the other fields
                    case.body["model"] = "mock-embed" if case.path.endswith("embeddings") else "mock-chat"
            response = case.call(headers={"Authorization": f"Bearer {world.raw}"})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r} -> {response.status_code}")
            assert response.status_code < 500, response.text[:500]

        with contextlib.suppress(AssertionError):  # collected in `failures`, reported below
            check()
    assert failures == []
