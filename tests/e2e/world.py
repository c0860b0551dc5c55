"""Rows the browser tests start from, made through the services (as a real sign-up, a staff
grant or a finished job would make them).

Each browser test runs on a flushed database (`transactional_db`), which also loses the rows the
migrations seeded: `seed_catalog()` puts the built-in mock models, their prices and the plans
back."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass
from typing import Any

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.apikeys.models import ApiKey
from apps.apikeys.services import apikey_create
from apps.billing.models import Plan
from apps.billing.seed import billing_seed_catalogue
from apps.billing.services import billing_plan_assign
from apps.chat.models import Conversation, Message
from apps.chat.services import conversation_create
from apps.credits.rates import rate_cards_seed_defaults
from apps.credits.services import credits_grant
from apps.generation.catalog import catalog_seed_defaults
from apps.generation.models import AIModel, ModelFallback, Provider
from apps.media.catalog import audio_catalog_seed, image_catalog_seed, voice_catalog_seed
from apps.media.models import GenerationJob, JobKind, JobStatus
from apps.media.services import job_create
from apps.presets.models import Preset
from apps.presets.services import preset_create
from apps.workspaces.models import Workspace
from apps.workspaces.roles import Role
from apps.workspaces.services import workspace_create, workspace_member_invite
from tests.factories import PASSWORD, MembershipFactory

FUNDS = "1000"  # credits


def seed_catalog(**mock_options: Any) -> None:
    """The built-in catalog (the offline mock provider and its chat, image and audio models),
    default prices and plans; `mock_options` configure the mock (e.g. `latency_ms`)."""
    catalog_seed_defaults(Provider, AIModel, ModelFallback)
    image_catalog_seed(Provider, AIModel)
    audio_catalog_seed(Provider, AIModel)
    voice_catalog_seed(Provider, AIModel)
    rate_cards_seed_defaults()
    billing_seed_catalogue()
    set_mock(**mock_options)


def set_mock(**options: Any) -> None:
    """Configure the mock provider; read at each call, so it applies to the next answer."""
    Provider.objects.filter(kind="mock").update(options={"latency_ms": 0, **options})


@dataclass
class Person:
    user: User
    workspace: Workspace  # their personal workspace, funded


def person(email: str, name: str) -> Person:
    """A verified user as after sign-up (personal workspace included), with credits and every
    feature (the Professional plan: the API, voice cloning). Needs `seed_catalog()` first."""
    user = user_create(email=email, password=PASSWORD, verified=True, display_name=name)
    workspace = Workspace.objects.for_user(user).get(is_personal=True)
    equip(workspace)
    return Person(user=user, workspace=workspace)


def equip(workspace: Workspace) -> None:
    fund(workspace)
    billing_plan_assign(workspace=workspace, plan=Plan.objects.get(code="professional"), acting_user=None)


def fund(workspace: Workspace, amount: str = FUNDS) -> None:
    credits_grant(
        workspace=workspace, amount=amount, source="purchased", idempotency_key=f"e2e-fund-{workspace.pk}-{amount}"
    )


def team(owner: User, name: str) -> Workspace:
    workspace = workspace_create(acting_user=owner, name=name)
    equip(workspace)
    return workspace


def add_member(workspace: Workspace, user: User, role: str = Role.MEMBER) -> None:
    MembershipFactory.create(workspace=workspace, user=user, role=role)


def invite(workspace: Workspace, owner: User, email: str) -> None:
    workspace_member_invite(workspace=workspace, email=email, role=Role.MEMBER, acting_user=owner)


def conversation(owner: User, workspace: Workspace, *, title: str = "Trip planning") -> Conversation:
    """A conversation with one finished exchange (as the chat page would have stored it)."""
    model = AIModel.objects.get(model_id="mock-chat")
    chat = conversation_create(workspace=workspace, user=owner, model=model, title=title)
    Message.objects.create(
        workspace=workspace, conversation=chat, role=Message.Role.USER, content="Plan three days in Lisbon"
    )
    Message.objects.create(
        workspace=workspace,
        conversation=chat,
        role=Message.Role.ASSISTANT,
        content="Day 1: **Alfama** and the castle.\n\n```python\nprint('a code block, wider than a phone')\n```",
        model_label="Mock chat",
    )
    return chat


def image_job(owner: User, workspace: Workspace, prompt: str = "a lighthouse at dusk") -> GenerationJob:
    """A finished image job of the mock model (Celery runs eagerly in tests, on commit)."""
    job = job_create(
        workspace=workspace,
        user=owner,
        kind=JobKind.IMAGE,
        model=AIModel.objects.get(model_id="mock-image"),
        parameters={"prompt": prompt, "size": "256x256"},
        idempotency_key=f"e2e-image-{workspace.pk}-{prompt}",
    )
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    return job


def preset(owner: User, workspace: Workspace, **fields: Any) -> Preset:
    """A personal preset of `owner` in `workspace` (`name` and `template` at least)."""
    return preset_create(workspace=workspace, user=owner, **fields)


def personal_workspace(user: User) -> Workspace:
    return Workspace.objects.for_user(user).get(is_personal=True)


def api_key(owner: User, workspace: Workspace, name: str = "Support bot") -> ApiKey:
    key, _raw = apikey_create(workspace=workspace, acting_user=owner, name=name, scopes=["chat"])
    return key


def wav_bytes(seconds: float = 2.0, rate: int = 8000) -> bytes:
    """A silent mono 16-bit WAV file: real audio for the transcription studio."""
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x00\x00" * int(seconds * rate))
    return out.getvalue()


@dataclass
class Site:
    """A workspace in use: its owner, a teammate, a pending invitation, a conversation, a
    finished image job and an API key, so list pages show rows and object pages exist."""

    owner: User
    workspace: Workspace
    conversation: Conversation
    job: GenerationJob


def site() -> Site:
    seed_catalog()
    alice = person("alice@example.com", "Alice Example")
    bob = person("bob@example.com", "Bob Example")
    add_member(alice.workspace, bob.user)
    invite(alice.workspace, alice.user, "carol@example.com")
    api_key(alice.user, alice.workspace)
    return Site(
        owner=alice.user,
        workspace=alice.workspace,
        conversation=conversation(alice.user, alice.workspace),
        job=image_job(alice.user, alice.workspace),
    )
