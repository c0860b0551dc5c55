"""Property-based run of schemathesis over the OpenAPI schema: every operation of the platform
API (`/api/v1/`) and the non-streaming OpenAI-compatible endpoints, with generated valid and
invalid inputs, through the real application. Whatever the input: no 5xx, every status code
is one the schema documents for that operation, and every response body — the errors' shapes
included — matches the schema documented for its status."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from apps.chat.models import Conversation, Message
from tests.api.conftest import Keyed

pytestmark = pytest.mark.django_db(transaction=True)

# Examples per operation; raise it for a deeper run (`SCHEMATHESIS_EXAMPLES=500 make test ...`).
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


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


def test_responses_conform_to_the_schema(api_schema: Any, world: Keyed) -> None:
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
            try:
                case.validate_response(response, checks=CHECKS)
            except BaseExceptionGroup as group:  # schemathesis' FailureGroup: one per failing check
                report = (
                    f"{case.method} {case.formatted_path} {case.body!r:.200} -> {response.status_code}: "
                    + "; ".join(
                        f"{type(failure).__name__}: {str(failure).splitlines()[0]}" for failure in group.exceptions
                    )
                )
                failures.append(report)
                raise AssertionError(report) from None

        with contextlib.suppress(AssertionError, ExceptionGroup):  # collected in `failures` (or flaky), reported below
            check()
    assert failures == []


def test_real_answers_conform_to_the_schema(api_schema: Any, world: Keyed) -> None:
    """The answers the random run may rarely reach (a 200 with every field, each format), sent
    on purpose: their bodies must match the documented schema too."""
    from apps.generation.models import AIModel, Provider
    from apps.media.catalog import audio_catalog_seed, image_catalog_seed
    from apps.media.models import GenerationJob

    image_catalog_seed(Provider, AIModel)
    audio_catalog_seed(Provider, AIModel)
    conversation = Conversation.objects.get(workspace=world.workspace)
    chat = {"model": "mock-chat", "messages": [{"role": "user", "content": "hello"}]}
    image = {"model": "mock-image", "prompt": "a boat", "size": "256x256"}
    job = {"kind": "image", "model": "mock-image", "parameters": {"prompt": "a boat", "size": "256x256"}}
    key = {"name": "Schema", "scopes": ["chat"], "daily_cap": "5"}
    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/v1/models", {}, 200),
        ("GET", "/v1/models/{model_id}", {"path_parameters": {"model_id": "mock-chat"}}, 200),
        ("GET", "/v1/models/{model_id}", {"path_parameters": {"model_id": "nope"}}, 404),
        ("POST", "/v1/chat/completions", {"body": chat}, 200),
        ("POST", "/v1/chat/completions", {"body": {**chat, "model": "mock\x00chat"}}, 400),
        ("POST", "/v1/embeddings", {"body": {"model": "mock-embed", "input": ["a", "b"]}}, 200),
        ("POST", "/v1/embeddings", {"body": {"model": "mock-embed", "input": "a", "encoding_format": "base64"}}, 200),
        ("POST", "/v1/images/generations", {"body": image}, 200),
        ("POST", "/v1/images/generations", {"body": {**image, "response_format": "b64_json"}}, 200),
        ("POST", "/v1/images/generations", {"body": {**image, "link_ttl": 1}}, 400),
        ("POST", "/v1/audio/speech", {"body": {"model": "mock-tts", "input": "Hello.", "voice": "alloy"}}, 200),
        ("POST", "/v1/audio/speech", {"body": {"input": "Hello.", "voice": "alloy"}}, 400),
        ("GET", "/api/v1/workspace/", {}, 200),
        ("GET", "/api/v1/credits/", {}, 200),
        ("GET", "/api/v1/credits/usage/", {}, 200),
        ("GET", "/api/v1/conversations/", {}, 200),
        ("GET", "/api/v1/conversations/", {"query": {"page": 9}}, 404),
        (
            "GET",
            "/api/v1/conversations/{conversation_id}/",
            {"path_parameters": {"conversation_id": conversation.pk}},
            200,
        ),
        ("GET", "/api/v1/api-keys/", {}, 200),
        ("POST", "/api/v1/api-keys/", {"body": key}, 201),
        ("POST", "/api/v1/api-keys/", {"body": {"name": "x"}}, 400),
        ("POST", "/api/v1/jobs/", {"body": job}, 202),
        ("GET", "/api/v1/jobs/", {}, 200),
    ]
    for method, path, kwargs, expected in calls:
        if "body" in kwargs:
            kwargs.setdefault("media_type", "application/json")
        case = api_schema[path][method].Case(**kwargs)
        response = case.call(headers={"Authorization": f"Bearer {world.raw}"})
        assert response.status_code == expected, f"{method} {path}: {response.text[:300]}"
        case.validate_response(response, checks=CHECKS)
    job_id = GenerationJob.objects.latest("pk").pk  # the one POST /api/v1/jobs/ made
    for method, path, expected in (
        ("GET", "/api/v1/jobs/{job_id}/", 200),
        ("POST", "/api/v1/jobs/{job_id}/cancel/", 409),  # it has already succeeded
    ):
        case = api_schema[path][method].Case(path_parameters={"job_id": job_id})
        response = case.call(headers={"Authorization": f"Bearer {world.raw}"})
        assert response.status_code == expected, response.text[:300]
        case.validate_response(response, checks=CHECKS)
