"""`POST /v1/images/generations` through the official `openai` SDK on the real ASGI app."""

from __future__ import annotations

import base64
import io
from typing import Any

import openai
import pytest

from apps.credits.models import CreditAccount, Reservation
from apps.credits.rates import credits_quote
from apps.generation.models import AIModel
from apps.media.models import GenerationJob, JobStatus
from tests.api.conftest import asgi_client, make_key, run, sdk, sdk_error
from tests.conftest import Team
from tests.credits.helpers import assert_ledger_consistent
from tests.media.conftest import FUNDS, fund, reservation_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def raw_key(alpha: Team, image_model: AIModel) -> str:
    fund(alpha.workspace)
    return make_key(alpha)[1]


def available(team: Team) -> int:
    return CreditAccount.objects.get(workspace=team.workspace).available_units


def test_sdk_generates_images_as_urls(alpha: Team, raw_key: str) -> None:
    async def scenario() -> Any:
        client = sdk(raw_key)
        result = await client.images.generate(model="mock-image", prompt="a lighthouse", n=2, size="256x256")
        async with asgi_client() as http:
            downloads = [await http.get(item.url) for item in result.data]
        return result, downloads

    result, downloads = run(scenario)
    assert len(result.data) == 2
    assert result.data[0].revised_prompt == "a lighthouse"
    assert all(r.status_code == 200 and r.content.startswith(b"\x89PNG") for r in downloads)
    quote = credits_quote(service="image", model="mock-image", images=2, size="256x256", quality="standard")
    assert available(alpha) == FUNDS - quote.units
    job = GenerationJob.objects.get()
    assert (job.status, job.api_key_id is not None) == (JobStatus.SUCCEEDED, True)
    assert_ledger_consistent()


def test_sdk_b64_json(alpha: Team, raw_key: str) -> None:
    async def scenario() -> Any:
        return await sdk(raw_key).images.generate(
            model="mock-image",
            prompt="a cat",
            size="512x512",
            quality="hd",
            style="natural",
            response_format="b64_json",
        )

    result = run(scenario)
    data = base64.b64decode(result.data[0].b64_json)
    assert data.startswith(b"\x89PNG")
    from PIL import Image

    assert Image.open(io.BytesIO(data)).size == (512, 512)


def test_invalid_size_is_400_with_param(alpha: Team, raw_key: str) -> None:
    async def scenario() -> Any:
        return await sdk(raw_key).images.generate(model="mock-image", prompt="x", size="999x999")

    with pytest.raises(openai.BadRequestError) as exc:
        run(scenario)
    assert exc.value.status_code == 400
    assert sdk_error(exc.value)["param"] == "size"
    assert "999x999" in sdk_error(exc.value)["message"]
    assert not Reservation.objects.exists()


def test_missing_prompt_and_bad_response_format(alpha: Team, raw_key: str) -> None:
    async def post(body: dict[str, Any]) -> Any:
        async with asgi_client() as http:
            return await http.post("/v1/images/generations", json=body, headers={"Authorization": f"Bearer {raw_key}"})

    def call(body: dict[str, Any]) -> Any:
        async def scenario() -> Any:
            return await post(body)

        return run(scenario)

    missing = call({"model": "mock-image"})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "prompt"
    bad = call({"model": "mock-image", "prompt": "x", "response_format": "gif"})
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "response_format")
    chat = call({"model": "mock-chat", "prompt": "x"})
    assert (chat.status_code, chat.json()["error"]["code"]) == (400, "model_not_supported")
    unknown = call({"model": "nope", "prompt": "x"})
    assert unknown.status_code == 404


def test_key_without_images_scope_is_403(alpha: Team, image_model: AIModel) -> None:
    fund(alpha.workspace)
    _, raw = make_key(alpha, scopes=["chat"])

    async def scenario() -> Any:
        return await sdk(raw).images.generate(model="mock-image", prompt="x")

    with pytest.raises(openai.PermissionDeniedError) as exc:
        run(scenario)
    assert exc.value.status_code == 403


def test_insufficient_credits_is_402(alpha: Team, image_model: AIModel) -> None:
    _, raw = make_key(alpha)

    async def scenario() -> Any:
        return await sdk(raw).images.generate(model="mock-image", prompt="x")

    with pytest.raises(openai.APIStatusError) as exc:
        run(scenario)
    assert exc.value.status_code == 402
    assert sdk_error(exc.value)["code"] == "insufficient_credits"
    assert not GenerationJob.objects.exists()


def test_provider_failure_is_503_and_nothing_charged(alpha: Team, raw_key: str) -> None:
    from tests.media.conftest import set_mock_options

    set_mock_options(fail="before:400")

    async def scenario() -> Any:
        return await sdk(raw_key).images.generate(model="mock-image", prompt="x")

    with pytest.raises(openai.InternalServerError) as exc:
        run(scenario)
    assert exc.value.status_code == 503
    assert available(alpha) == FUNDS
    assert_ledger_consistent()


def test_missing_key_is_401() -> None:
    async def scenario() -> Any:
        async with asgi_client() as http:
            return await http.post("/v1/images/generations", json={"prompt": "x"})

    response = run(scenario)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


def test_job_not_done_in_time_is_504_and_keeps_its_hold(
    alpha: Team, raw_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.api import openai_media
    from apps.media import services

    monkeypatch.setattr(services, "_enqueue", lambda job_id: None)  # no worker takes the job
    monkeypatch.setattr(openai_media, "_wait_seconds", lambda: 0.3)

    async def scenario() -> Any:
        return await sdk(raw_key).images.generate(model="mock-image", prompt="x")

    with pytest.raises(openai.APIStatusError) as exc:
        run(scenario)
    assert exc.value.status_code == 504
    job = GenerationJob.objects.get()
    assert f"job {job.pk}" in sdk_error(exc.value)["message"]
    assert job.status == JobStatus.QUEUED  # still there for the worker (or the sweeper)
    assert reservation_of(job).status == Reservation.Status.HELD


@pytest.mark.outsider("openai:images_generations")
def test_a_revoked_key_generates_nothing_on_the_workspaces_credits(alpha: Team, raw_key: str) -> None:
    import functools

    from apps.apikeys.models import ApiKey
    from apps.apikeys.services import apikey_revoke

    apikey_revoke(key=ApiKey.objects.get(workspace=alpha.workspace), acting_user=alpha.owner)

    async def scenario(raw: str | None) -> Any:
        headers = {"Authorization": f"Bearer {raw}"} if raw else {}
        async with asgi_client() as http:
            return await http.post(
                "/v1/images/generations", json={"model": "mock-image", "prompt": "x"}, headers=headers
            )

    for raw, code in [(raw_key, "invalid_api_key"), ("ak_wrong", "invalid_api_key"), (None, "missing_api_key")]:
        response = run(functools.partial(scenario, raw))
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code
        assert "data" not in response.json()
    assert not GenerationJob.objects.exists()
    assert not Reservation.objects.exists()
    assert available(alpha) == FUNDS
