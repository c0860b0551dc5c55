"""A local fake of the Stripe REST API, for the real `stripe` SDK to talk to.

It stores objects per resource (`customers`, `checkout/sessions`, `billing_portal/sessions`,
`subscriptions`, `payment_intents`, `payment_methods`, `products`, `prices`, `invoices`,
`charges`, `events`), decodes Stripe's form encoding (`line_items[0][price]=...`) into nested
params, honours `Idempotency-Key` (the same key on the same path answers the first response),
and records every request so tests can assert what was sent. Tests seed objects with `put()`.

Behaviour on demand: a payment intent whose `payment_method` is `pm_card_declined` answers 402
`card_error`; `fail_next(status)` makes the next request answer that HTTP error.

localstripe covers customers/subscriptions but has no Checkout Sessions or portal sessions;
this fake covers exactly the calls the billing app makes. Runs in a background thread on
127.0.0.1 with an ephemeral port.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

PREFIXES = {
    "customers": "cus",
    "checkout/sessions": "cs_test",
    "billing_portal/sessions": "bps",
    "subscriptions": "sub",
    "payment_intents": "pi",
    "payment_methods": "pm",
    "products": "prod",
    "prices": "price",
    "invoices": "in",
    "charges": "ch",
    "events": "evt",
}
OBJECT_NAMES = {
    "customers": "customer",
    "checkout/sessions": "checkout.session",
    "billing_portal/sessions": "billing_portal.session",
    "subscriptions": "subscription",
    "payment_intents": "payment_intent",
    "payment_methods": "payment_method",
    "products": "product",
    "prices": "price",
    "invoices": "invoice",
    "charges": "charge",
    "events": "event",
}


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracketed form keys into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+|\[\]", key)
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = None if last else parts[i + 1]
            container: Any = [] if nxt is not None and (nxt.isdigit() or nxt == "[]") else {}
            if isinstance(node, list):
                index = len(node) if part == "[]" else int(part)
                while len(node) <= index:
                    node.append(None)
                if last:
                    node[index] = value
                else:
                    if node[index] is None:
                        node[index] = container
                    node = node[index]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, container)
    return root


def _merge(target: dict[str, Any], params: dict[str, Any]) -> None:
    for key, value in params.items():
        if key == "items" and isinstance(value, list) and isinstance(target.get(key), dict):
            # A subscription update names items by id and sets their price: Stripe keeps the
            # list object and swaps the price on the item.
            items = target[key].setdefault("data", [])
            for change in value:
                item = next((i for i in items if i.get("id") == change.get("id")), None)
                if item is None:
                    item = {"id": change.get("id") or f"si_{len(items) + 1}"}
                    items.append(item)
                if "price" in change:
                    item["price"] = {"id": change["price"], "object": "price"}
            continue
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class FakeStripe:
    host: str = "127.0.0.1"
    port: int = 0
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    _idempotent: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    # ------------------------------------------------------------------------ control

    def start(self) -> FakeStripe:
        self._thread = threading.Thread(target=self._run, name="fake-stripe", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Stripe did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def reset(self) -> None:
        self.objects.clear()
        self.requests.clear()
        self.failures.clear()
        self._idempotent.clear()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Seed an object (it gets an id and `object` name if it has none)."""
        obj = dict(obj)
        obj.setdefault("id", self._new_id(resource))
        obj.setdefault("object", OBJECT_NAMES.get(resource, resource))
        self.objects.setdefault(resource, {})[obj["id"]] = obj
        return obj

    def get(self, resource: str, object_id: str) -> dict[str, Any]:
        return self.objects[resource][object_id]

    def all(self, resource: str) -> list[dict[str, Any]]:
        return list(self.objects.get(resource, {}).values())

    def fail_next(self, status: int = 500) -> None:
        self.failures.append(status)

    def calls(self, method: str, path_prefix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    # ------------------------------------------------------------------------ server

    def _new_id(self, resource: str) -> str:
        return f"{PREFIXES.get(resource, 'obj')}_{next(self._ids):06d}"

    def _split(self, path: str) -> tuple[str, str | None, str | None]:
        """(resource, id, action) from `/v1/<resource>[/<id>[/<action>]]`."""
        rest = path.removeprefix("/v1/").strip("/")
        for resource in sorted(PREFIXES, key=len, reverse=True):
            if rest == resource:
                return resource, None, None
            if rest.startswith(resource + "/"):
                tail = rest[len(resource) + 1 :].split("/")
                if tail[0] == "search":
                    return resource, None, "search"
                return resource, tail[0], tail[1] if len(tail) > 1 else None
        return rest, None, None

    def _defaults(self, resource: str, obj: dict[str, Any], params: dict[str, Any]) -> None:
        now = int(time.time())
        obj.setdefault("created", now)
        obj.setdefault("livemode", False)
        obj.setdefault("metadata", {})
        if resource == "checkout/sessions":
            obj.setdefault("url", f"https://checkout.stripe.test/c/pay/{obj['id']}")
            obj.setdefault("status", "open")
            obj.setdefault("payment_status", "unpaid")
        elif resource == "billing_portal/sessions":
            obj.setdefault("url", f"https://billing.stripe.test/p/session/{obj['id']}")
        elif resource == "payment_intents":
            obj.setdefault("status", "succeeded" if params.get("confirm") == "true" else "requires_confirmation")
            obj["amount"] = int(params.get("amount", 0))
            if obj["status"] == "succeeded":
                obj.setdefault("amount_received", obj["amount"])
        elif resource == "prices":
            obj["unit_amount"] = int(params.get("unit_amount", 0))
            obj.setdefault("active", True)
        elif resource == "products":
            obj.setdefault("active", True)

    def _error(self, status: int, message: str, type_: str = "invalid_request_error", code: str = "") -> web.Response:
        body = {"error": {"type": type_, "message": message, **({"code": code} if code else {})}}
        return web.json_response(body, status=status)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        params = decode_form(parse_qsl(body, keep_blank_values=True)) if body else {}
        if request.method == "GET":
            params = decode_form(list(request.query.items()))
        self.requests.append(Recorded(request.method, request.path, params, dict(request.headers)))
        if self.failures:
            status = self.failures.pop(0)
            return self._error(status, "Injected failure", "api_error")
        key = request.headers.get("Idempotency-Key")
        if key and request.method == "POST" and (request.path, key) in self._idempotent:
            status, payload = self._idempotent[(request.path, key)]
            return web.json_response(payload, status=status)
        status, payload = self._dispatch(request.method, request.path, params)
        if key and request.method == "POST":
            self._idempotent[(request.path, key)] = (status, payload)
        return web.json_response(payload, status=status)

    def _dispatch(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        resource, object_id, action = self._split(path)
        if resource == "account":  # the platform account of the key (dj-stripe asks for it)
            return 200, {
                "id": "acct_fake",
                "object": "account",
                "type": "standard",
                "country": "US",
                "default_currency": "usd",
                "email": "billing@aikeedo.test",
                "charges_enabled": True,
                "payouts_enabled": True,
                "details_submitted": True,
                "settings": {"dashboard": {"display_name": "Aikeedo"}},
                "business_profile": {"name": "Aikeedo"},
                "metadata": {},
                "created": 1_700_000_000,
            }
        store = self.objects.setdefault(resource, {})
        if method == "POST" and object_id is None:
            if resource == "payment_intents" and params.get("payment_method") == "pm_card_declined":
                return 402, {
                    "error": {
                        "type": "card_error",
                        "code": "card_declined",
                        "decline_code": "generic_decline",
                        "message": "Your card was declined.",
                    }
                }
            obj = {"id": self._new_id(resource), "object": OBJECT_NAMES.get(resource, resource), **params}
            self._defaults(resource, obj, params)
            store[obj["id"]] = obj
            return 200, obj
        if object_id is not None and object_id not in store:
            return 404, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "resource_missing",
                    "message": f"No such {resource}: '{object_id}'",
                }
            }
        if method == "GET" and object_id is not None:
            return 200, store[object_id]
        if method == "POST" and object_id is not None:
            _merge(store[object_id], params)
            return 200, store[object_id]
        if method == "DELETE" and object_id is not None:
            store.pop(object_id)
            return 200, {"id": object_id, "object": OBJECT_NAMES.get(resource, resource), "deleted": True}
        if method == "GET":
            filters = {k: v for k, v in params.items() if isinstance(v, str) and k not in ("limit", "query")}
            filters.pop("starting_after", None)
            items = [o for o in store.values() if all(str(o.get(k)) == v for k, v in filters.items())]
            return 200, {
                "object": "search_result" if action == "search" else "list",
                "data": items,
                "has_more": False,
                "url": path,
            }
        return 400, {"error": {"type": "invalid_request_error", "message": f"Unsupported {method} {path}"}}

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, self.host, self.port)
        self._loop.run_until_complete(site.start())
        server = site._server
        assert isinstance(server, asyncio.Server)  # the default event loop's server: it has `sockets`
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()


def json_dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))
