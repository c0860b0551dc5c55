"""`/api/v1/documents/` and `/api/v1/presets/`: CRUD with the platform API's error shape, the
stale update answering 409 `version_conflict`, the `documents_read` / `documents_write` scopes,
the library in the preset list, rendering with checked variables, and another workspace's ids
answering 404."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.documents import services as documents
from apps.documents.models import Document
from apps.presets.library import presets_seed_library
from apps.presets.models import Preset
from tests.api.conftest import make_key
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def api(team: Team, scopes: list[str] | None = None) -> tuple[Client, dict[str, str]]:
    _, raw = make_key(team, scopes=scopes or ["documents_write"])
    return Client(), {"Authorization": f"Bearer {raw}"}


def test_document_crud_versions_restore_and_export(alpha: Team) -> None:
    client, auth = api(alpha)
    created = client.post(
        "/api/v1/documents/",
        {"title": "Plan", "body": "# One\n\nfirst", "folder": "Drafts", "tags": ["q3"]},
        content_type="application/json",
        headers=auth,
    )
    assert created.status_code == 201, created.content
    document = created.json()
    assert {k: document[k] for k in ("title", "body", "folder", "tags", "version")} == {
        "title": "Plan",
        "body": "# One\n\nfirst",
        "folder": "Drafts",
        "tags": ["q3"],
        "version": 1,
    }
    assert document["owner"] == "alpha-owner@example.com"
    url = f"/api/v1/documents/{document['id']}/"
    updated = client.patch(url, {"base_version": 1, "body": "second"}, content_type="application/json", headers=auth)
    assert (updated.status_code, updated.json()["version"], updated.json()["body"]) == (200, 2, "second")

    stale = client.patch(url, {"base_version": 1, "body": "lost"}, content_type="application/json", headers=auth)
    assert stale.status_code == 409
    error = stale.json()
    assert (error["code"], error["param"]) == ("version_conflict", "base_version")
    assert (error["current_version"], error["base_version"]) == (2, 1)
    assert Document.objects.get().body == "second"

    versions = client.get(url + "versions/", headers=auth).json()
    assert [v["number"] for v in versions["results"]] == [2, 1]
    restored = client.post(url + "restore/", {"version": 1}, content_type="application/json", headers=auth)
    assert (restored.json()["version"], restored.json()["body"]) == (3, "# One\n\nfirst")

    markdown = client.get(url + "export/?format=md", headers=auth)
    assert markdown["Content-Type"].startswith("text/markdown")
    assert markdown.content.decode() == "# Plan\n\n# One\n\nfirst\n"
    html = client.get(url + "export/?format=html", headers=auth)
    assert "<h1>One</h1>" in html.content.decode()
    assert client.get(url + "export/?format=pdfx", headers=auth).status_code == 400

    listed = client.get("/api/v1/documents/?q=first&folder=Drafts&tag=q3", headers=auth).json()
    assert [d["title"] for d in listed["results"]] == ["Plan"]
    assert "body" not in listed["results"][0]
    assert client.get("/api/v1/documents/?folder=Nope", headers=auth).json()["results"] == []

    assert client.delete(url, headers=auth).status_code == 204
    assert client.get("/api/v1/documents/", headers=auth).json()["results"] == []
    assert [d["title"] for d in client.get("/api/v1/documents/?trashed=true", headers=auth).json()["results"]] == [
        "Plan"
    ]


def test_bad_input_is_a_400_in_the_platform_shape(alpha: Team) -> None:
    client, auth = api(alpha)
    blank = client.post("/api/v1/documents/", {"title": "   "}, content_type="application/json", headers=auth)
    assert blank.status_code == 400
    assert blank.json()["param"] == "title"
    document = documents.document_create(workspace=alpha.workspace, user=alpha.owner, title="x")
    missing = client.patch(
        f"/api/v1/documents/{document.pk}/", {"body": "y"}, content_type="application/json", headers=auth
    )
    assert missing.status_code == 400
    assert missing.json()["param"] == "base_version"


def test_scopes_read_and_write(alpha: Team) -> None:
    reader, read_auth = api(alpha, ["documents_read"])
    assert reader.get("/api/v1/documents/", headers=read_auth).status_code == 200
    assert reader.get("/api/v1/presets/", headers=read_auth).status_code == 200
    refused = reader.post("/api/v1/documents/", {"title": "x"}, content_type="application/json", headers=read_auth)
    assert refused.status_code == 403
    other, other_auth = api(alpha, ["platform_write"])
    assert other.get("/api/v1/documents/", headers=other_auth).status_code == 403
    assert not Document.objects.exists()


def test_presets_list_create_update_render_delete(alpha: Team) -> None:
    presets_seed_library()
    client, auth = api(alpha)
    created = client.post(
        "/api/v1/presets/",
        {
            "name": "Pitch",
            "template": "Pitch {{product}} in {{words}} words",
            "variables": [{"name": "words", "type": "number", "min": 5, "max": 50}],
            "output": "chat",
        },
        content_type="application/json",
        headers=auth,
    )
    assert created.status_code == 201, created.content
    preset = created.json()
    assert preset["scope"] == "personal"
    assert [v["name"] for v in preset["variables"]] == ["product", "words"]
    listed = client.get("/api/v1/presets/?page_size=100", headers=auth).json()
    scopes = {p["scope"] for p in listed["results"]}
    assert scopes == {"personal", "library"}
    library = client.get("/api/v1/presets/?scope=library", headers=auth).json()
    assert library["count"] >= 20

    url = f"/api/v1/presets/{preset['id']}/"
    bad = client.post(url + "render/", {"values": {"words": "500"}}, content_type="application/json", headers=auth)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_preset_values"
    assert bad.json()["errors"] == {"product": "This is required.", "words": "At most 50."}
    good = client.post(
        url + "render/", {"values": {"product": "tea", "words": "10"}}, content_type="application/json", headers=auth
    )
    assert good.json()["prompt"] == "Pitch tea in 10 words"
    assert Preset.objects.get(pk=preset["id"]).usage_count == 1

    patched = client.patch(url, {"name": "Pitch v2"}, content_type="application/json", headers=auth)
    assert patched.json()["name"] == "Pitch v2"
    library_id = library["results"][0]["id"]
    refused = client.patch(
        f"/api/v1/presets/{library_id}/", {"name": "x"}, content_type="application/json", headers=auth
    )
    assert refused.status_code == 403
    assert client.delete(url, headers=auth).status_code == 204


@pytest.mark.outsider(
    "api:documents",
    "api:document",
    "api:document_versions",
    "api:document_restore",
    "api:document_export",
    "api:presets",
    "api:preset",
    "api:preset_render",
)
def test_another_workspace_gets_404(alpha: Team, beta: Team) -> None:
    document = documents.document_create(workspace=alpha.workspace, user=alpha.owner, title="Secret", body="s")
    preset = Preset.objects.create(
        scope="personal", workspace=alpha.workspace, owner=alpha.owner, name="Secret", template="x"
    )
    client, auth = api(beta)
    for path in ("", "versions/", "export/"):
        assert client.get(f"/api/v1/documents/{document.pk}/{path}", headers=auth).status_code == 404
    assert (
        client.patch(
            f"/api/v1/documents/{document.pk}/",
            {"base_version": 1, "body": "x"},
            content_type="application/json",
            headers=auth,
        ).status_code
        == 404
    )
    assert client.delete(f"/api/v1/documents/{document.pk}/", headers=auth).status_code == 404
    assert (
        client.post(
            f"/api/v1/documents/{document.pk}/restore/", {"version": 1}, content_type="application/json", headers=auth
        ).status_code
        == 404
    )
    assert client.get(f"/api/v1/presets/{preset.pk}/", headers=auth).status_code == 404
    assert (
        client.post(
            f"/api/v1/presets/{preset.pk}/render/", {}, content_type="application/json", headers=auth
        ).status_code
        == 404
    )
    assert client.delete(f"/api/v1/presets/{preset.pk}/", headers=auth).status_code == 404
    assert client.get("/api/v1/documents/", headers=auth).json()["results"] == []
    assert "Secret" not in str(client.get("/api/v1/presets/", headers=auth).json())
    assert reverse("api:documents") == "/api/v1/documents/"
    document.refresh_from_db()
    assert (document.body, document.deleted_at) == ("s", None)
