"""The job progress socket through the real ASGI app: members see the job's events from
start to finish; anonymous users, outsiders and other workspaces are refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from aikeedo.asgi import application
from apps.generation.models import AIModel
from apps.media.models import GenerationJob, JobKind
from apps.media.services import job_create, job_run
from tests.api.conftest import run
from tests.conftest import Team
from tests.media.conftest import fund

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")
TIMEOUT = 5


@pytest.fixture
def queued_job(alpha: Team, image_model: AIModel, monkeypatch: pytest.MonkeyPatch) -> GenerationJob:
    from apps.media import services

    fund(alpha.workspace)
    monkeypatch.setattr(services, "_enqueue", lambda job_id: None)  # run it ourselves, below
    return job_create(
        workspace=alpha.workspace,
        user=alpha.member,
        kind=JobKind.IMAGE,
        model=image_model,
        parameters={"prompt": "socket", "size": "256x256", "n": 2},
        idempotency_key="socket",
    )


def headers_for(client_for: Callable[..., Any], user: Any) -> list[tuple[bytes, bytes]]:
    client = client_for(user)
    return [(b"cookie", f"sessionid={client.session.session_key}".encode()), ORIGIN]


def test_member_follows_the_job_to_the_end(
    alpha: Team, queued_job: GenerationJob, client_for: Callable[..., Any]
) -> None:
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> list[dict[str, Any]]:
        communicator = WebsocketCommunicator(application, f"/ws/jobs/{queued_job.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        first = await communicator.receive_json_from(timeout=TIMEOUT)
        assert (first["type"], first["status"]) == ("job.progress", "queued")
        await database_sync_to_async(job_run)(job_id=queued_job.pk)
        events: list[dict[str, Any]] = []
        while not events or events[-1]["status"] != "succeeded":
            events.append(await communicator.receive_json_from(timeout=TIMEOUT))
        await communicator.disconnect()
        return events

    events = run(scenario)
    assert events[0]["status"] == "running"
    progress = [e["progress"] for e in events if e["status"] == "running"]
    assert progress == sorted(progress)
    assert progress[-1] > 60
    assert events[-1]["progress"] == 100


@pytest.mark.outsider("ws/jobs/<int:job_id>/")
def test_anonymous_outsiders_and_unknown_jobs_are_refused(
    beta: Team, outsider: Any, queued_job: GenerationJob, client_for: Callable[..., Any]
) -> None:
    headers = [headers_for(client_for, user) for user in (outsider, beta.owner)]

    async def scenario() -> None:
        anonymous = WebsocketCommunicator(application, f"/ws/jobs/{queued_job.pk}/", headers=[ORIGIN])
        assert await anonymous.connect() == (False, 4401)
        for user_headers in headers:
            communicator = WebsocketCommunicator(application, f"/ws/jobs/{queued_job.pk}/", headers=user_headers)
            assert await communicator.connect() == (False, 4404)
        unknown = WebsocketCommunicator(application, "/ws/jobs/999999/", headers=headers[1])
        assert await unknown.connect() == (False, 4404)

    run(scenario)


async def _closed_with(communicator: WebsocketCommunicator) -> int | None:
    while True:
        output = await communicator.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            return output.get("code")


def test_removal_from_the_workspace_closes_the_job_socket(
    alpha: Team, queued_job: GenerationJob, client_for: Callable[..., Any]
) -> None:
    from apps.core.realtime import ACCESS_REVOKED_CLOSE_CODE
    from apps.workspaces.services import workspace_member_remove

    headers = headers_for(client_for, alpha.member)

    async def scenario() -> int | None:
        communicator = WebsocketCommunicator(application, f"/ws/jobs/{queued_job.pk}/", headers=headers)
        assert (await communicator.connect())[0]
        await communicator.receive_json_from(timeout=TIMEOUT)
        await database_sync_to_async(workspace_member_remove)(
            membership=alpha.member_membership, acting_user=alpha.owner
        )
        return await _closed_with(communicator)

    assert run(scenario) == ACCESS_REVOKED_CLOSE_CODE


def test_the_job_socket_rechecks_access_on_its_own(
    alpha: Team, queued_job: GenerationJob, client_for: Callable[..., Any], settings: Any
) -> None:
    """Suspended without a channel-layer message: the socket's periodic re-check closes it."""
    from apps.accounts.models import User
    from apps.core.realtime import ACCESS_REVOKED_CLOSE_CODE

    settings.STREAM_ACCESS_RECHECK_SECONDS = 0.05
    headers = headers_for(client_for, alpha.member)

    async def scenario() -> int | None:
        communicator = WebsocketCommunicator(application, f"/ws/jobs/{queued_job.pk}/", headers=headers)
        assert (await communicator.connect())[0]
        await communicator.receive_json_from(timeout=TIMEOUT)
        await database_sync_to_async(User.objects.filter(pk=alpha.member.pk).update)(is_active=False)
        return await _closed_with(communicator)

    assert run(scenario) == ACCESS_REVOKED_CLOSE_CODE
