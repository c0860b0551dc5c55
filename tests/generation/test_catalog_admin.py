"""The model catalog in the admin: seeded defaults, encrypted provider keys never shown back,
audited configuration changes, fallback chains."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.generation import crypto
from apps.generation.models import AIModel, ModelFallback, Provider
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-test-0123456789abcdefWXYZ"


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory.create(email="root@example.com", is_staff=True, is_superuser=True))
    return client


def test_default_catalog_is_seeded_with_mock_enabled_and_hosted_providers_off():
    assert set(AIModel.objects.available().values_list("model_id", flat=True)) == {
        "mock-chat",
        "mock-embed",
        "mock-image",
        "mock-tts",
        "mock-voice",
        "mock-whisper",
    }
    assert AIModel.objects.filter(model_id__in=["gpt-4o", "claude-sonnet-4", "gemini-2.0-flash"]).count() == 3
    chain = [link.fallback.model_id for link in ModelFallback.objects.filter(model__model_id="gpt-4o")]
    assert chain == ["claude-sonnet-4", "gpt-4o-mini"]


def test_provider_key_is_encrypted_at_rest_and_never_rendered(staff_client: Client):
    provider = Provider.objects.get(kind="openai")
    url = f"/admin/generation/provider/{provider.pk}/change/"
    response = staff_client.post(
        url,
        {
            "name": provider.name,
            "kind": "openai",
            "base_url": "",
            "enabled": "on",
            "timeout_seconds": "60",
            "options": "{}",
            "api_key": SECRET,
        },
    )
    assert response.status_code == 302
    provider.refresh_from_db()
    assert SECRET not in provider.api_key_encrypted
    assert provider.api_key == SECRET
    assert provider.api_key_hint == "••••WXYZ"
    page = staff_client.get(url).content.decode()
    assert SECRET not in page
    assert provider.api_key_encrypted not in page
    [event] = AuditEvent.objects.filter(action="generation.provider_change")
    assert "api_key" in event.metadata["fields"]
    assert SECRET not in str(event.metadata)


def test_empty_key_field_keeps_the_stored_key_and_clear_removes_it(staff_client: Client):
    provider = Provider.objects.get(kind="anthropic")
    provider.set_api_key(SECRET)
    provider.save()
    url = f"/admin/generation/provider/{provider.pk}/change/"
    base = {"name": provider.name, "kind": "anthropic", "base_url": "", "timeout_seconds": "60", "options": "{}"}
    staff_client.post(url, {**base, "enabled": "on"})
    provider.refresh_from_db()
    assert provider.api_key == SECRET
    staff_client.post(url, {**base, "clear_api_key": "on"})
    provider.refresh_from_db()
    assert provider.api_key_encrypted == ""
    assert not provider.enabled


def test_environment_key_is_used_when_none_is_stored(monkeypatch):
    provider = Provider.objects.get(kind="mistral")
    assert not provider.is_configured
    monkeypatch.setenv("MISTRAL_API_KEY", "env-key")
    assert provider.api_key == "env-key"
    assert provider.is_configured
    assert provider.config().api_key == "env-key"


def test_a_key_encrypted_with_another_secret_reads_as_empty(settings):
    token = crypto.encrypt("abc")
    settings.FIELD_ENCRYPTION_KEY = "rotated"
    assert crypto.decrypt(token) == ""


def test_model_target_carries_provider_config():
    model = AIModel.objects.get(model_id="mock-chat")
    target = model.target()
    assert target.provider.kind == "mock"
    assert target.upstream_model == "mock-chat"
    assert target.label == "mock-chat"


def test_model_change_is_audited(staff_client: Client):
    model = AIModel.objects.get(model_id="gpt-4o-mini")
    response = staff_client.post(
        "/admin/generation/aimodel/",
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(model.pk),
            "form-0-enabled": "",
            "form-0-position": "5",
            "_save": "Save",
        },
    )
    assert response.status_code == 302
    model.refresh_from_db()
    assert (model.enabled, model.position) == (False, 5)
    assert AuditEvent.objects.filter(action="generation.model_change", target_id=str(model.pk)).exists()


def test_fallback_to_itself_is_refused_by_the_database():
    from django.db import IntegrityError, transaction

    model = AIModel.objects.get(model_id="gpt-4o")
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelFallback.objects.create(model=model, fallback=model, position=9)
