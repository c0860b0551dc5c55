"""The notifications socket, driven through the real ASGI application (origin check, session
auth, routing) with the configured channel layer: in-memory by default, Redis with REDIS_URL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from aikeedo.asgi import application
from apps.core.consumers import user_group

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/ws/notifications/"
ORIGIN = (b"origin", b"http://testserver")


def _headers_for(client_for: Callable[..., Any], user: Any) -> list[tuple[bytes, bytes]]:
    client = client_for(user)
    return [(b"cookie", f"sessionid={client.session.session_key}".encode()), ORIGIN]


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


@pytest.mark.outsider("ws/notifications/")
def test_anonymous_connection_is_refused():
    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, PATH, headers=[ORIGIN])
        connected, code = await communicator.connect()
        assert not connected
        assert code == 4401

    _run(scenario)


def test_stale_session_cookie_is_refused(outsider):
    async def scenario() -> None:
        headers = [(b"cookie", b"sessionid=does-not-exist"), ORIGIN]
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, _ = await communicator.connect()
        assert not connected

    _run(scenario)


def test_foreign_origin_is_refused_even_when_signed_in(outsider, client_for):
    headers = [_headers_for(client_for, outsider)[0], (b"origin", b"https://evil.example")]

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, _ = await communicator.connect()
        assert not connected

    _run(scenario)


def test_suspended_user_is_refused(outsider, client_for):
    headers = _headers_for(client_for, outsider)
    outsider.is_active = False
    outsider.save(update_fields=["is_active"])

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, _ = await communicator.connect()
        assert not connected

    _run(scenario)


def test_signed_in_user_gets_hello_pong_and_their_notifications(alpha, client_for):
    user = alpha.member
    headers = _headers_for(client_for, user)

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        try:
            assert await communicator.receive_json_from(timeout=3) == {"type": "hello", "user": user.pk}

            await communicator.send_json_to({"type": "ping"})
            assert await communicator.receive_json_from(timeout=3) == {"type": "pong"}

            layer = get_channel_layer()
            assert layer is not None
            await layer.group_send(f"user.{user.pk}", {"type": "notify", "payload": {"text": "Credits low"}})
            assert await communicator.receive_json_from(timeout=3) == {
                "type": "notification",
                "payload": {"text": "Credits low"},
            }
        finally:
            await communicator.disconnect()

    _run(scenario)


@pytest.mark.outsider("ws/notifications/")
def test_notifications_reach_only_their_user(alpha, client_for):
    headers = _headers_for(client_for, alpha.member)

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        try:
            await communicator.receive_json_from(timeout=3)  # hello
            layer = get_channel_layer()
            assert layer is not None
            await layer.group_send(user_group(alpha.owner.pk), {"type": "notify", "payload": {"text": "not yours"}})
            assert await communicator.receive_nothing(timeout=0.3)
        finally:
            await communicator.disconnect()

    _run(scenario)


def test_disconnect_leaves_the_user_group(alpha, client_for):
    user = alpha.member
    headers = _headers_for(client_for, user)

    async def scenario() -> None:
        layer = get_channel_layer()
        assert layer is not None
        first = WebsocketCommunicator(application, PATH, headers=headers)
        second = WebsocketCommunicator(application, PATH, headers=headers)
        assert (await first.connect())[0]
        assert (await second.connect())[0]
        try:
            await first.receive_json_from(timeout=3)
            await second.receive_json_from(timeout=3)
            await first.disconnect()

            await layer.group_send(user_group(user.pk), {"type": "notify", "payload": {"n": 1}})
            # The open tab still receives; the closed one was removed from the group.
            assert (await second.receive_json_from(timeout=3))["payload"] == {"n": 1}
        finally:
            await second.disconnect()

    _run(scenario)


def test_malformed_frames_are_ignored_and_the_socket_stays_open(alpha, client_for):
    headers = _headers_for(client_for, alpha.member)

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        assert (await communicator.connect())[0]
        try:
            await communicator.receive_json_from(timeout=3)  # hello
            await communicator.send_to(text_data="{not json")
            await communicator.send_to(bytes_data=b"\x00\x01")
            await communicator.send_json_to(["ping"])
            await communicator.send_json_to({"type": "ping"})
            assert await communicator.receive_json_from(timeout=3) == {"type": "pong"}
        finally:
            await communicator.disconnect()

    _run(scenario)


def test_suspension_closes_the_users_open_pages(alpha, client_for):
    from channels.db import database_sync_to_async

    from apps.accounts.services import user_suspend
    from apps.core.realtime import ACCESS_REVOKED_CLOSE_CODE

    headers = _headers_for(client_for, alpha.member)
    codes = []

    async def scenario() -> None:
        communicator = WebsocketCommunicator(application, PATH, headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        await communicator.receive_json_from(timeout=3)  # hello
        await database_sync_to_async(user_suspend)(user=alpha.member, reason="abuse", acting_user=alpha.owner)
        while True:
            output = await communicator.receive_output(timeout=3)
            if output["type"] == "websocket.close":
                codes.append(output.get("code"))
                return

    _run(scenario)
    assert codes == [ACCESS_REVOKED_CLOSE_CODE]
