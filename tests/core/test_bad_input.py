"""NUL and control characters in the app's forms: one rule (`apps.core.validators`) for every
text that is saved — free text keeps tab, line feed and carriage return; identifiers refuse
every control character. The pages answer 400 with the reason and save nothing (PostgreSQL
would refuse the NUL with a 500)."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from apps.apikeys.models import ApiKey
from apps.chat.models import Conversation
from apps.core.validators import control_character, json_control_character, validate_identifier, validate_text
from apps.generation.models import AIModel
from apps.media.models import GenerationJob
from apps.workspaces.models import Workspace
from tests.conftest import Team
from tests.media.conftest import fund, image_model  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db

NUL_MESSAGE = "Contains NUL (U+0000), which is not allowed here."


# ---------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("value", "text_ok", "identifier_ok"),
    [
        ("plain words", True, True),
        ("tab\tline\nreturn\r", True, False),
        ("nul\x00", False, False),
        ("bell\x07", False, False),
        ("escape\x1b[0m", False, False),
        ("delete\x7f", True, False),
        ("c1\x85", True, False),
        ("lone \ud800 surrogate", False, False),
        ("émoji 🎉 and ünïcode", True, True),
    ],
)
def test_free_text_and_identifier_rules(value: str, text_ok: bool, identifier_ok: bool) -> None:
    assert (control_character(value) is None) is text_ok
    assert (control_character(value, identifier=True) is None) is identifier_ok
    for validator, ok in ((validate_text, text_ok), (validate_identifier, identifier_ok)):
        if ok:
            validator(value)
        else:
            with pytest.raises(Exception, match="not allowed here"):
                validator(value)


def test_nested_json_is_checked_keys_included() -> None:
    assert json_control_character({"a": ["fine\n", {"b": "x\x00"}]}) == ("a.1.b", NUL_MESSAGE)
    found = json_control_character({"a": {"bad\x01key": 1}})
    assert found is not None
    assert found[0] == "a"
    assert json_control_character({"a": [1, 2.5, None, True, "ok\t"]}) is None


# ---------------------------------------------------------------------------- the pages


def test_workspace_names_refuse_control_characters(alpha: Team, client_for: Any) -> None:
    client = client_for(alpha.owner, alpha.workspace)
    before = Workspace.objects.count()
    for name in ("Team\x00", "Te\x07am"):
        response = client.post(reverse("workspaces:create"), {"name": name})
        assert response.status_code == 400
        assert b"not allowed here" in response.content
    assert Workspace.objects.count() == before


def test_api_key_names_refuse_control_characters(alpha: Team, client_for: Any) -> None:
    client = client_for(alpha.owner, alpha.workspace)
    response = client.post(reverse("apikeys:create"), {"name": "Bot\x00", "scopes": ["chat"]})
    assert response.status_code == 400
    assert NUL_MESSAGE.encode() in response.content
    assert not ApiKey.objects.exists()


def test_chat_forms_refuse_control_characters_and_save_nothing(alpha: Team, client_for: Any) -> None:
    model = AIModel.objects.get(model_id="mock-chat")
    conversation = Conversation.objects.create(
        workspace=alpha.workspace, user=alpha.member, model=model, title="Kept", system_prompt="Kept"
    )
    client = client_for(alpha.member, alpha.workspace)
    rename = client.post(reverse("chat:rename", args=[conversation.pk]), {"title": "New\x01"})
    assert rename.status_code == 400
    settings = client.post(reverse("chat:settings", args=[conversation.pk]), {"system_prompt": "Be\x00"})
    assert settings.status_code == 400
    assert NUL_MESSAGE.encode() in settings.content
    conversation.refresh_from_db()
    assert (conversation.title, conversation.system_prompt) == ("Kept", "Kept")
    new = client.post(reverse("chat:list"), {"model": "mock-chat", "system_prompt": "\x00"})
    assert new.status_code == 400
    assert Conversation.objects.count() == 1
    assert client.get(reverse("chat:list"), {"q": "a\x00b"}).status_code == 400
    # Free text keeps its tabs and line breaks.
    kept = client.post(reverse("chat:settings", args=[conversation.pk]), {"system_prompt": "One.\r\n\tTwo."})
    assert kept.status_code == 302
    conversation.refresh_from_db()
    assert conversation.system_prompt == "One.\r\n\tTwo."


def test_studio_prompt_refuses_control_characters(alpha: Team, image_model: AIModel, client_for: Any) -> None:  # noqa: F811
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    form = {"model": "mock-image", "size": "256x256", "quality": "standard", "n": 1, "nonce": "n1"}
    response = client.post("/studio/images/", {**form, "prompt": "a\x00boat"})
    assert response.status_code == 400
    assert NUL_MESSAGE.encode() in response.content
    assert not GenerationJob.objects.exists()
