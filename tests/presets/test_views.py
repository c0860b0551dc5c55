"""The preset pages: list and filters, create with variables edited row by row, use: the values
checked next to their fields, the prompt handed to a new chat (with the preset's defaults) or the
image studio; another workspace's presets answer 404."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.chat.models import Conversation
from apps.generation.models import AIModel
from apps.presets import services
from apps.presets.library import presets_seed_library
from apps.presets.models import Preset
from tests.conftest import Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(client_for: Any, alpha: Team) -> Any:
    return client_for(alpha.member, alpha.workspace)


def preset(team: Team, **fields: Any) -> Preset:
    values = {"name": "Pitch", "template": "Pitch {{product}} to {{audience}}", **fields}
    return services.preset_create(workspace=team.workspace, user=team.member, **values)


def test_the_list_shows_mine_the_workspaces_and_the_library(client: Any, alpha: Team, beta: Team) -> None:
    assert b'data-testid="no-presets"' in client.get(reverse("presets:list")).content
    presets_seed_library()
    preset(alpha)
    services.preset_create(workspace=beta.workspace, user=beta.member, name="Beta's", template="x")
    page = client.get(reverse("presets:list"))
    names = [p.name for p, _ in page.context["presets"]]
    assert "Pitch" in names
    assert "Blog post" in names
    assert "Beta's" not in names
    mine = client.get(reverse("presets:list"), {"scope": "personal"})
    assert [(p.name, editable) for p, editable in mine.context["presets"]] == [("Pitch", True)]
    code = client.get(reverse("presets:list"), {"category": "code"})
    assert {p.category for p, _ in code.context["presets"]} == {"code"}
    assert client.get(reverse("presets:list"), {"scope": "everything"}).status_code == 400


def test_the_list_pins_its_queries(client_for: Any, alpha: Team) -> None:
    admin = client_for(alpha.admin, alpha.workspace)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin.get(reverse("presets:list")).status_code == 200
        return len(ctx.captured_queries)

    services.preset_create(workspace=alpha.workspace, user=alpha.admin, name="One", template="x", scope="workspace")
    few = count()
    for n in range(30):
        services.preset_create(
            workspace=alpha.workspace, user=alpha.admin, name=f"P{n}", template="x", scope="workspace"
        )
    assert count() <= few


def test_create_a_preset_with_typed_variables(client: Any, alpha: Team) -> None:
    data = {
        "name": "Tweet",
        "category": "marketing",
        "output": "chat",
        "template": "Write a {{tone}} tweet about {{topic}}",
    }
    refreshed = client.post(reverse("presets:new"), {**data, "refresh": "1"})
    assert refreshed.status_code == 200
    assert [row["name"] for row in refreshed.context["rows"]] == ["tone", "topic"]
    response = client.post(
        reverse("presets:new"),
        {
            **data,
            "var-tone-type": "select",
            "var-tone-label": "Tone",
            "var-tone-options": "warm\nbold",
            "var-tone-required": "on",
            "var-topic-type": "short",
            "var-topic-label": "Topic",
            "var-topic-required": "on",
        },
    )
    created = Preset.objects.get(name="Tweet")
    assert response["Location"] == reverse("presets:use", args=[created.pk])
    assert created.scope == "personal"
    assert created.variables[0] == {
        "name": "tone",
        "label": "Tone",
        "type": "select",
        "required": True,
        "options": ["warm", "bold"],
    }
    bad = client.post(reverse("presets:new"), {**data, "var-tone-type": "select", "var-tone-options": ""})
    assert bad.status_code == 400
    assert "needs 1 to 50 options" in bad.content.decode()


def test_using_a_preset_starts_a_chat_with_its_defaults_and_prompt(
    client: Any, alpha: Team, mock_model: AIModel, rates: None
) -> None:
    used = preset(alpha, system_prompt="You sell well.", temperature="0.4", default_model=mock_model)
    page = client.get(reverse("presets:use", args=[used.pk]))
    assert page.status_code == 200
    missing = client.post(reverse("chat:from_preset", args=[used.pk]), {"product": "tea"})
    assert missing.status_code == 400
    assert "This is required." in missing.content.decode()
    assert not Conversation.objects.exists()

    response = client.post(reverse("chat:from_preset", args=[used.pk]), {"product": "tea", "audience": "students"})
    conversation = Conversation.objects.get()
    assert (conversation.model, conversation.system_prompt, str(conversation.temperature), conversation.title) == (
        mock_model,
        "You sell well.",
        "0.40",
        "Pitch",
    )
    location = urlsplit(response["Location"])
    assert location.path == reverse("chat:detail", args=[conversation.pk])
    assert parse_qs(location.query)["prompt"] == ["Pitch tea to students"]
    chat_page = client.get(response["Location"])
    assert b">Pitch tea to students</textarea>" in chat_page.content
    used.refresh_from_db()
    assert used.usage_count == 1


def test_an_image_preset_opens_the_studio_with_its_prompt(client: Any, alpha: Team) -> None:
    presets_seed_library()
    photo = Preset.objects.get(scope="library", name="Product photo")
    response = client.post(
        reverse("media:images_from_preset", args=[photo.pk]), {"product": "a red mug", "background": "white"}
    )
    location = urlsplit(response["Location"])
    assert location.path == reverse("media:images")
    assert parse_qs(location.query)["prompt"][0].startswith("Studio product photo of a red mug on a white background")


def test_favourite_edit_and_delete(client: Any, client_for: Any, alpha: Team) -> None:
    mine = preset(alpha)
    client.post(reverse("presets:favourite", args=[mine.pk]), {"favourite": "1"})
    assert client.get(reverse("presets:list"), {"favourites": "on"}).context["presets"][0][0].pk == mine.pk
    admin = client_for(alpha.admin, alpha.workspace)
    assert admin.get(reverse("presets:edit", args=[mine.pk])).status_code == 404  # not theirs to see
    assert client.get(reverse("presets:edit", args=[mine.pk])).status_code == 200
    assert client.post(reverse("presets:delete", args=[mine.pk])).status_code == 302
    assert not Preset.objects.exists()


def test_the_composer_picker_lists_fills_and_renders(client: Any, alpha: Team) -> None:
    mine = preset(alpha)
    presets_seed_library()
    picker = client.get(reverse("presets:picker"), {"q": "pitch"})
    assert picker.status_code == 200
    assert reverse("presets:fill", args=[mine.pk]).encode() in picker.content
    assert b"Blog post" not in picker.content
    fill = client.get(reverse("presets:fill", args=[mine.pk]))
    assert b'name="product"' in fill.content
    assert b'name="audience"' in fill.content
    refused = client.post(reverse("presets:render", args=[mine.pk]), {"product": "tea"})
    assert refused.status_code == 400
    assert refused.json()["error"]["errors"] == {"audience": "This is required."}
    rendered = client.post(reverse("presets:render", args=[mine.pk]), {"product": "tea", "audience": "cats"})
    assert rendered.json() == {
        "prompt": "Pitch tea to cats",
        "system_prompt": "",
        "model": None,
        "temperature": None,
        "output": "chat",
    }
    mine.refresh_from_db()
    assert mine.usage_count == 1


@pytest.mark.outsider(
    "presets:picker",
    "presets:fill",
    "presets:render",
    "presets:list",
    "presets:new",
    "presets:use",
    "presets:edit",
    "presets:favourite",
    "presets:delete",
    "chat:from_preset",
    "media:images_from_preset",
)
def test_another_workspaces_presets_are_404(client_for: Any, alpha: Team, beta: Team) -> None:
    theirs = preset(alpha, name="Secret pitch")
    bob = client_for(beta.member, beta.workspace)
    assert bob.get(reverse("presets:use", args=[theirs.pk])).status_code == 404
    assert bob.get(reverse("presets:edit", args=[theirs.pk])).status_code == 404
    assert bob.get(reverse("presets:fill", args=[theirs.pk])).status_code == 404
    assert b"Secret pitch" not in bob.get(reverse("presets:picker"), {"q": "secret"}).content
    for name in (
        "presets:edit",
        "presets:favourite",
        "presets:delete",
        "presets:render",
        "chat:from_preset",
        "media:images_from_preset",
    ):
        assert bob.post(reverse(name, args=[theirs.pk]), {"product": "x", "audience": "y"}).status_code == 404, name
    assert b"Secret pitch" not in bob.get(reverse("presets:list")).content
    assert (
        bob.post(
            reverse("presets:new"), {"name": "Bob's", "template": "hi", "category": "other", "output": "chat"}
        ).status_code
        == 302
    )
    assert Preset.objects.get(name="Bob's").workspace == beta.workspace
    theirs.refresh_from_db()
    assert (theirs.name, theirs.usage_count) == ("Secret pitch", 0)
