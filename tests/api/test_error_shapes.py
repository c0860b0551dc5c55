"""Every error under `/v1/` is JSON in OpenAI's shape and every error under `/api/` is JSON in
the platform's shape — unknown URLs, wrong methods, bodies over the limit, broken multipart
bodies, refused content types and a bug (a logged 500) included — while the site's own pages
keep their HTML errors."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.test import Client

from apps.credits.models import CreditAccount, Reservation
from apps.media.models import GenerationJob
from tests.api.conftest import FUNDS, Keyed, asgi_client, openai_error, platform_error, run
from tests.conftest import Team

HELLO = [{"role": "user", "content": "hi"}]
MB = 1024 * 1024


def v1(raw: str | None, method: str, path: str, *, content: bytes | None = None, **kwargs: Any) -> Any:
    """A request to the ASGI application (the /v1 views are async)."""

    async def scenario() -> Any:
        headers = dict(kwargs.pop("headers", {}))
        if raw is not None:
            headers["Authorization"] = f"Bearer {raw}"
        async with asgi_client() as client:
            return await client.request(method, path, content=content, headers=headers, **kwargs)

    return run(scenario)


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def nothing_charged(keyed: Keyed) -> None:
    account = CreditAccount.objects.get(workspace=keyed.workspace)
    assert (account.balance_units, account.held_units) == (FUNDS, 0)
    assert not Reservation.objects.exists()
    assert not GenerationJob.objects.exists()


# ---------------------------------------------------------------------------- unknown URLs and methods


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/nothing", "/api/v1/nothing/", "/api/v2/credits/", "/api/v1/jobs/abc/"])
def test_unknown_platform_urls_are_json_404(path: str) -> None:
    body = platform_error(Client().get(path), 404, "unknown_url")
    assert path in body["detail"]
    platform_error(Client().post(path, {}), 404, "unknown_url")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/v1/nothing", "/v1/images/nothing", "/v1/audio/nothing", "/v1/images/"])
def test_unknown_v1_urls_are_json_404(keyed: Keyed, path: str) -> None:
    error = openai_error(v1(keyed.raw, "GET", path), 404, "unknown_url")
    assert error["type"] == "invalid_request_error"


@pytest.mark.django_db
def test_site_pages_keep_their_html_404() -> None:
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_unknown_api_url_is_json_even_with_debug_pages_on(settings: Any) -> None:
    settings.DEBUG = True  # Django would answer its technical 404 page
    platform_error(Client().get("/api/v1/nothing/"), 404)


@pytest.mark.django_db
def test_wrong_method_on_the_platform_api_is_405(keyed: Keyed) -> None:
    body = platform_error(Client().put("/api/v1/credits/", headers=bearer(keyed.raw)), 405, "method_not_allowed")
    assert "PUT" in body["detail"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/chat/completions"), ("DELETE", "/v1/images/generations"), ("GET", "/v1/audio/speech")],
)
def test_wrong_method_on_v1_is_405(keyed: Keyed, method: str, path: str) -> None:
    openai_error(v1(keyed.raw, method, path), 405, "method_not_allowed")


@pytest.mark.django_db
def test_platform_errors_stay_json_when_the_client_asks_for_html(keyed: Keyed) -> None:
    # DRF's browsable API would render an HTML page for a browser's Accept header.
    platform_error(Client().get("/api/v1/credits/", headers={"Accept": "text/html"}), 401)
    platform_error(Client().put("/api/v1/credits/", headers={"Accept": "text/html", **bearer(keyed.raw)}), 405)


@pytest.mark.django_db
def test_unauthenticated_and_unacceptable(keyed: Keyed) -> None:
    refused = platform_error(Client().get("/api/v1/credits/"), 401, "not_authenticated")
    assert refused["param"] is None
    assert Client().get("/api/v1/credits/")["WWW-Authenticate"].startswith("Bearer")
    platform_error(Client().get("/api/v1/credits/", headers={"Authorization": "Bearer ak_nope"}), 401)
    platform_error(Client().get("/api/v1/credits/", headers={"Accept": "application/xml", **bearer(keyed.raw)}), 406)


@pytest.mark.django_db
def test_validation_errors_name_the_first_field_and_list_them_all(keyed: Keyed) -> None:
    response = Client().post("/api/v1/api-keys/", {}, content_type="application/json", headers=bearer(keyed.raw))
    error = platform_error(response, 400, "required", "name")
    assert error["detail"] == "name: This field is required."
    assert set(error["errors"]) == {"name", "scopes"}
    bad_scope = Client().post(
        "/api/v1/api-keys/",
        {"name": "x", "scopes": ["chat", "root"]},
        content_type="application/json",
        headers=bearer(keyed.raw),
    )
    assert platform_error(bad_scope, 400, "invalid_choice", "scopes.1")["errors"] == {
        "scopes.1": ['"root" is not a valid choice.']
    }
    query = platform_error(Client().get("/api/v1/credits/usage/?start=yesterday", headers=bearer(keyed.raw)), 400)
    assert query["param"] == "start"


@pytest.mark.django_db
def test_domain_errors_keep_their_status_and_message(keyed: Keyed) -> None:
    body = {"kind": "image", "model": "no-such-model", "parameters": {"prompt": "x"}}
    response = Client().post("/api/v1/jobs/", body, content_type="application/json", headers=bearer(keyed.raw))
    platform_error(response, 404, "not_found")
    other = Client().get("/api/v1/conversations/999999/", headers=bearer(keyed.raw))
    assert platform_error(other, 404, "not_found")["detail"] == "No Conversation matches the given query."


# ---------------------------------------------------------------------------- bodies over the limit


@pytest.mark.django_db(transaction=True)
def test_v1_bodies_over_the_limit_are_the_same_413(keyed: Keyed) -> None:
    """8 to 10 MB bodies were refused by the view (413); larger ones by Django (an HTML 400)."""
    answers = []
    for size in (9 * MB, 11 * MB):
        content = b'{"model": "mock-chat", "messages": [], "pad": "' + b"x" * size + b'"}'
        response = v1(
            keyed.raw, "POST", "/v1/chat/completions", content=content, headers={"Content-Type": "application/json"}
        )
        answers.append(openai_error(response, 413, "too_large"))
    assert answers[0] == answers[1]
    assert "8 MB" in answers[0]["message"]
    nothing_charged(keyed)


@pytest.mark.django_db(transaction=True)
def test_v1_body_over_the_limit_without_a_content_length_is_413(keyed: Keyed) -> None:
    async def chunks() -> Any:
        for _ in range(11):
            yield b" " * MB

    async def scenario() -> Any:
        async with asgi_client() as client:
            return await client.post(
                "/v1/embeddings",
                content=chunks(),
                headers={"Authorization": f"Bearer {keyed.raw}", "Content-Type": "application/json"},
            )

    openai_error(run(scenario), 413, "too_large")


@pytest.mark.django_db
def test_platform_bodies_over_the_limit_are_413(keyed: Keyed) -> None:
    content = b'{"name": "' + b"x" * (11 * MB) + b'"}'
    response = Client().post("/api/v1/api-keys/", content, content_type="application/json", headers=bearer(keyed.raw))
    assert "10 MB" in platform_error(response, 413, "too_large")["detail"]
    form = Client().post(
        "/api/v1/api-keys/",
        b"name=" + b"x" * (11 * MB),
        content_type="application/x-www-form-urlencoded",
        headers=bearer(keyed.raw),
    )
    platform_error(form, 413, "too_large")


@pytest.mark.django_db
def test_multipart_text_fields_over_the_limit_are_413(keyed: Keyed) -> None:
    # Files may be larger (the plan's upload limit decides); form fields may not.
    response = Client().post(
        "/api/v1/jobs/", {"kind": "transcription", "model": "x" * (11 * MB)}, headers=bearer(keyed.raw)
    )
    platform_error(response, 413, "too_large")


@pytest.mark.django_db(transaction=True)
def test_v1_multipart_text_fields_over_the_limit_are_413(keyed: Keyed) -> None:
    response = v1(
        keyed.raw,
        "POST",
        "/v1/audio/transcriptions",
        data={"prompt": "x" * (11 * MB)},
        files={"file": ("a.wav", b"RIFF")},
    )
    openai_error(response, 413, "too_large")


# ---------------------------------------------------------------------------- broken bodies


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("multipart/form-data", b""),  # no boundary
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=xyz", b""),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data\r\n\r\nbroken"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/audio/transcriptions", "/v1/audio/speech"])
def test_broken_multipart_bodies_on_v1_are_json_400(keyed: Keyed, path: str, content_type: str, content: bytes) -> None:
    response = v1(keyed.raw, "POST", path, content=content, headers={"Content-Type": content_type})
    openai_error(response, 400)
    nothing_charged(keyed)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("multipart/form-data", b"--x\r\n"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nbroken"),
        ("application/json", b"{broken"),
    ],
)
def test_broken_bodies_on_the_platform_api_are_json_400(keyed: Keyed, content_type: str, content: bytes) -> None:
    response = Client().post("/api/v1/jobs/", content, content_type=content_type, headers=bearer(keyed.raw))
    platform_error(response, 400)


@pytest.mark.django_db
def test_too_many_fields_is_400(keyed: Keyed, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"f{i}": "x" for i in range(10)}
    response = Client().post("/api/v1/jobs/", {"kind": "transcription", **fields}, headers=bearer(keyed.raw))
    platform_error(response, 400, "too_many_fields")


@pytest.mark.django_db(transaction=True)
def test_too_many_fields_on_v1_is_400(keyed: Keyed, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    fields = {f"f{i}": "x" for i in range(10)}
    response = v1(keyed.raw, "POST", "/v1/audio/transcriptions", data=fields, files={"file": ("a.wav", b"RIFF")})
    openai_error(response, 400, "too_many_fields")


@pytest.mark.django_db
def test_unsupported_content_type_is_415(keyed: Keyed) -> None:
    response = Client().post("/api/v1/api-keys/", b"name", content_type="text/plain", headers=bearer(keyed.raw))
    platform_error(response, 415, "unsupported_media_type")


# ---------------------------------------------------------------------------- bugs: a logged 500 in the shape


@pytest.mark.django_db(transaction=True)
def test_a_bug_in_a_v1_view_is_a_json_500_logged_with_its_traceback(
    keyed: Keyed, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from apps.api import openai

    def broken(request: Any) -> Any:
        raise RuntimeError("boom in models")

    monkeypatch.setattr(openai, "_models_for", broken)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        error = openai_error(v1(keyed.raw, "GET", "/v1/models"), 500, "server_error")
    assert error["type"] == "server_error"
    assert "boom" not in error["message"]  # the details are in the log, not the answer
    [record] = [r for r in caplog.records if r.name == "django.request" and r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert "boom in models" in str(record.exc_info[1])


@pytest.mark.django_db
def test_a_bug_in_a_platform_view_is_a_json_500_logged_with_its_traceback(
    keyed: Keyed, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from apps.api import platform

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("boom in credits")

    monkeypatch.setattr(platform, "credits_balance", broken)
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        body = platform_error(client.get("/api/v1/credits/", headers=bearer(keyed.raw)), 500, "server_error")
    assert "boom" not in body["detail"]
    [record] = [r for r in caplog.records if r.name == "django.request" and r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert "boom in credits" in str(record.exc_info[1])


@pytest.mark.django_db
def test_a_bug_outside_the_views_is_a_json_500_under_the_api_only(
    alpha: Team, client_for: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.workspaces import middleware

    def broken(request: Any) -> Any:
        raise RuntimeError("boom in a middleware")

    monkeypatch.setattr(middleware, "resolve_membership", broken)
    client = client_for(alpha.member, alpha.workspace)
    client.raise_request_exception = False
    platform_error(client.get("/api/v1/credits/"), 500, "server_error")
    page = client.get("/dashboard/")
    assert page.status_code == 500
    assert page["Content-Type"].startswith("text/html")
