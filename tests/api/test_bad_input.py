"""Bad input on both APIs is a 400 naming the field — never a 500 — and nothing is charged,
held or stored for it: NUL and control characters in text that is stored (PostgreSQL refuses
NUL in text and `\\u0000` in jsonb: these fail on PostgreSQL without the checks), JSON nested
too deep (Python's parser recurses once per level), `model` missing where OpenAI's spec
requires it, and download-link lifetimes out of bounds."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlparse

import pytest
from django.test import Client

from apps.credits.models import CreditAccount, Reservation
from apps.generation.models import AIModel, Provider
from apps.media.catalog import audio_catalog_seed, image_catalog_seed
from apps.media.models import GenerationJob, MediaFile
from apps.media.storage import download_token_read
from tests.api.conftest import FUNDS, Keyed, asgi_client, openai_error, platform_error, run, sdk, sdk_error
from tests.fakes.audio import wav_bytes

HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture
def media(keyed: Keyed) -> Keyed:
    image_catalog_seed(Provider, AIModel)
    audio_catalog_seed(Provider, AIModel)
    return keyed


def post(raw: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
    async def scenario() -> Any:
        async with asgi_client() as client:
            return await client.post(path, headers={"Authorization": f"Bearer {raw}", **(headers or {})}, **kwargs)

    return run(scenario)


def nothing_charged(keyed: Keyed) -> None:
    account = CreditAccount.objects.get(workspace=keyed.workspace)
    assert (account.balance_units, account.held_units) == (FUNDS, 0)
    assert not Reservation.objects.exists()
    assert not GenerationJob.objects.exists()
    assert not MediaFile.objects.exists()


def nested(depth: int) -> Any:
    """A JSON value `depth` levels deep: [[[…]]]."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deep_body(depth: int) -> bytes:
    """`{"model": …, "pad": [[[…]]]}` nested `depth` levels in all; written by hand, since
    `json.dumps` itself recurses once per level."""
    return b'{"model": "mock-chat", "pad": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


# ---------------------------------------------------------------------------- NUL and control characters on /v1

SPEECH = {"model": "mock-tts", "input": "Hello there.", "voice": "alloy"}
IMAGE = {"model": "mock-image", "prompt": "a boat", "size": "256x256"}
V1_BAD_TEXT = [
    ("/v1/audio/speech", {**SPEECH, "model": "mock-tts\x00"}, "model"),
    ("/v1/audio/speech", {**SPEECH, "model": "mock\x7ftts"}, "model"),
    ("/v1/audio/speech", {**SPEECH, "input": "Hello\x00there"}, "input"),
    ("/v1/audio/speech", {**SPEECH, "input": "Hello\x1b[31m there"}, "input"),
    ("/v1/audio/speech", {**SPEECH, "voice": "al\x00loy"}, "voice"),
    ("/v1/audio/speech", {**SPEECH, "voice": "alloy\t"}, "voice"),
    ("/v1/audio/speech", {**SPEECH, "instructions": "Calm\x00"}, "instructions"),
    ("/v1/audio/speech", {**SPEECH, "response_format": "wav\x00"}, "response_format"),
    ("/v1/images/generations", {**IMAGE, "model": "mock-image\x00"}, "model"),
    ("/v1/images/generations", {**IMAGE, "model": "\x00"}, "model"),
    ("/v1/images/generations", {**IMAGE, "prompt": "a\x00boat"}, "prompt"),
    ("/v1/images/generations", {**IMAGE, "prompt": "a\x08boat"}, "prompt"),
    ("/v1/images/generations", {**IMAGE, "size": "256x256\x00"}, "size"),
    ("/v1/images/generations", {**IMAGE, "style": ["vivid\x00"]}, "style"),
    ("/v1/images/generations", {**IMAGE, "user": "u\x00"}, "user"),
    ("/v1/chat/completions", {"model": "mock-chat\x00", "messages": HELLO}, "model"),
    ("/v1/chat/completions", {"model": "mock-chat\x01", "messages": HELLO}, "model"),
    ("/v1/chat/completions", {"model": "mock-chat", "messages": HELLO, "user": "me\x00"}, "user"),
    ("/v1/embeddings", {"model": "mock-embed\x00", "input": "x"}, "model"),
    ("/v1/embeddings", {"model": "mock\nembed", "input": "x"}, "model"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("path", "body", "param"), V1_BAD_TEXT)
def test_control_characters_on_v1_are_400_naming_the_field(
    media: Keyed, path: str, body: dict[str, Any], param: str
) -> None:
    error = openai_error(post(media.raw, path, json=body), 400)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    nothing_charged(media)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("fields", "param"),
    [({"model": "mock-whisper\x00"}, "model"), ({"language": "en\x00"}, "language"), ({"prompt": "a\x00b"}, "prompt")],
)
def test_control_characters_in_a_transcription_are_400(media: Keyed, fields: dict[str, str], param: str) -> None:
    data = {"model": "mock-whisper", **fields}
    response = post(media.raw, "/v1/audio/transcriptions", data=data, files={"file": ("a.wav", wav_bytes(1))})
    assert openai_error(response, 400)["param"] == param
    nothing_charged(media)


@pytest.mark.django_db(transaction=True)
def test_free_text_keeps_tabs_and_line_breaks(media: Keyed) -> None:
    text = "First line,\r\n\tthen an indented one.\nDone."
    response = post(media.raw, "/v1/audio/speech", json={**SPEECH, "input": text})
    assert response.status_code == 200, response.text
    assert GenerationJob.objects.get().parameters["text"] == text
    image = post(media.raw, "/v1/images/generations", json={**IMAGE, "prompt": "a boat,\n\tat dawn"})
    assert image.status_code == 200, image.text


@pytest.mark.django_db(transaction=True)
def test_the_sdk_sees_a_nul_in_the_model_as_a_bad_request(media: Keyed) -> None:
    import openai

    async def speech() -> Any:
        return await sdk(media.raw).audio.speech.create(model="mock-tts\x00", input="hi", voice="alloy")

    with pytest.raises(openai.BadRequestError) as exc:
        run(speech)
    assert sdk_error(exc.value)["param"] == "model"

    async def image() -> Any:
        return await sdk(media.raw).images.generate(model="mock-image\x00", prompt="x")

    with pytest.raises(openai.BadRequestError):
        run(image)
    nothing_charged(media)


# ---------------------------------------------------------------------------- `model`, as OpenAI's spec requires it


@pytest.mark.django_db(transaction=True)
def test_speech_and_transcriptions_require_a_model(media: Keyed) -> None:
    without = {k: v for k, v in SPEECH.items() if k != "model"}
    for body in (without, {**without, "model": ""}, {**without, "model": None}):
        error = openai_error(post(media.raw, "/v1/audio/speech", json=body), 400, "missing_required_parameter")
        assert error["param"] == "model"
    response = post(media.raw, "/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(1))})
    assert openai_error(response, 400, "missing_required_parameter")["param"] == "model"
    nothing_charged(media)


@pytest.mark.django_db(transaction=True)
def test_images_and_the_rest_follow_the_spec_on_model(media: Keyed) -> None:
    # Optional for images (OpenAI picks a default model), required for chat and embeddings.
    image = post(media.raw, "/v1/images/generations", json={"prompt": "a boat", "size": "256x256"})
    assert image.status_code == 200, image.text
    chat = openai_error(post(media.raw, "/v1/chat/completions", json={"messages": HELLO}), 400)
    embed = openai_error(post(media.raw, "/v1/embeddings", json={"input": "x"}), 400)
    assert (chat["param"], embed["param"]) == ("model", "model")


# ---------------------------------------------------------------------------- JSON nested too deep

JSON_ENDPOINTS = ["/v1/chat/completions", "/v1/embeddings", "/v1/images/generations", "/v1/audio/speech"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/v1/embeddings", "/v1/images/generations", "/v1/audio/speech"]
)
@pytest.mark.parametrize("depth", [65, 100_000])
def test_json_nested_too_deep_on_v1_is_400(media: Keyed, path: str, depth: int) -> None:
    response = post(media.raw, path, content=deep_body(depth), headers={"Content-Type": "application/json"})
    openai_error(response, 400, "json_too_deep")
    nothing_charged(media)


@pytest.mark.django_db(transaction=True)
def test_json_nested_to_the_limit_is_parsed(media: Keyed) -> None:
    body = json.dumps({"model": "mock-chat", "messages": HELLO, "metadata": nested(63)})
    response = post(media.raw, "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    # Brackets inside strings do not nest.
    text = json.dumps({"model": "mock-chat", "messages": [{"role": "user", "content": "[{" * 500 + '"\\'}]})
    response = post(media.raw, "/v1/chat/completions", content=text, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [65, 100_000])
def test_json_nested_too_deep_on_the_platform_api_is_400(keyed: Keyed, depth: int) -> None:
    bearer = {"Authorization": f"Bearer {keyed.raw}"}
    for path in ("/api/v1/api-keys/", "/api/v1/jobs/"):
        response = Client().post(path, deep_body(depth), content_type="application/json", headers=bearer)
        platform_error(response, 400, "json_too_deep")
    text = '{"pad": ' + "[" * depth + "]" * depth + "}"
    multipart = Client().post(
        "/api/v1/jobs/", {"kind": "transcription", "model": "mock-whisper", "parameters": text}, headers=bearer
    )
    assert platform_error(multipart, 400, "json_too_deep")["param"] == "parameters"
    assert not GenerationJob.objects.exists()


# ---------------------------------------------------------------------------- the platform API


@pytest.mark.django_db
def test_control_characters_on_the_platform_api_are_400(keyed: Keyed) -> None:
    image_catalog_seed(Provider, AIModel)
    bearer = {"Authorization": f"Bearer {keyed.raw}"}
    client = Client()

    def create_key(name: str, models: list[str] | None = None) -> Any:
        body = {"name": name, "scopes": ["chat"], "allowed_models": models or []}
        return client.post("/api/v1/api-keys/", body, content_type="application/json", headers=bearer)

    platform_error(create_key("bad\x00name"), 400, "control_characters", "name")
    platform_error(create_key("bad\x1bname"), 400, "control_characters", "name")
    platform_error(create_key("fine", ["mock-chat\x00"]), 400, "control_characters", "allowed_models.0")
    assert create_key("tab\tis fine").status_code == 201

    def create_job(**changes: Any) -> Any:
        body = {"kind": "image", "model": "mock-image", "parameters": {"prompt": "a boat", "size": "256x256"}}
        body.update(changes)
        return client.post("/api/v1/jobs/", body, content_type="application/json", headers=bearer)

    platform_error(create_job(model="mock-image\x00"), 400, "control_characters", "model")
    platform_error(create_job(idempotency_key="k\x00"), 400, "control_characters", "idempotency_key")
    prompt = platform_error(create_job(parameters={"prompt": "a\x00boat"}), 400, "control_characters", "parameters")
    assert "prompt" in prompt["detail"]
    platform_error(create_job(parameters={"a\x00": "x"}), 400, "control_characters", "parameters")
    platform_error(create_job(parameters={"prompt": ["x", {"y": "\x00"}]}), 400, "control_characters")
    upload = client.post(
        "/api/v1/jobs/",
        {"kind": "transcription", "model": "mock-whisper", "parameters": '{"prompt": "a\\u0000b"}'},
        headers=bearer,
    )
    platform_error(upload, 400, "control_characters", "parameters")
    assert not GenerationJob.objects.exists()
    platform_error(client.get("/api/v1/conversations/", {"q": "a\x00b"}, headers=bearer), 400, param="q")
    platform_error(client.get("/api/v1/credits/usage/", {"model": "m\x00"}, headers=bearer), 400, param="model")


# ---------------------------------------------------------------------------- download links' life


def token_life(url: str) -> float:
    token = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
    payload = download_token_read(token)
    assert payload is not None
    return payload["e"] - time.time()


@pytest.mark.django_db(transaction=True)
def test_image_links_live_as_long_as_asked(media: Keyed) -> None:
    default = post(media.raw, "/v1/images/generations", json=IMAGE).json()
    assert 3590 < token_life(default["data"][0]["url"]) <= 3600
    short = post(media.raw, "/v1/images/generations", json={**IMAGE, "link_ttl": 30}).json()
    assert 25 < token_life(short["data"][0]["url"]) <= 30


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ttl", [9, 0, -5, 3601, "soon", 1.5, True, [30]])
def test_image_link_life_out_of_bounds_is_400(media: Keyed, ttl: Any) -> None:
    response = post(media.raw, "/v1/images/generations", json={**IMAGE, "link_ttl": ttl})
    assert openai_error(response, 400)["param"] == "link_ttl"
    nothing_charged(media)
