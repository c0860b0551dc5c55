"""The response cache: answers to deterministic chat requests (temperature 0, no tools), kept in
the shared cache (Redis when configured) for `RESPONSE_CACHE_TTL_SECONDS` and replayed as a
stream on the next identical request in the same workspace.

Opt-in: per workspace (`Workspace.response_cache`) or per request (`cache=True/False` wins
over the workspace's choice). A hit is charged `RESPONSE_CACHE_RATE_PERCENT` of what the same
usage would cost (0 by default: free), rounded up to a whole unit.

Keys are scoped to the workspace: one tenant must not learn, from a hit's speed or price,
what another tenant asked.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from apps.generation.providers.base import ChatRequest, Usage

logger = logging.getLogger(__name__)

KEY_PREFIX = "respcache:v1:"


@dataclass(frozen=True)
class CachedAnswer:
    deltas: list[str]
    usage: Usage
    model: str  # the catalog model that answered

    def to_json(self) -> dict[str, Any]:
        return {
            "deltas": self.deltas,
            "usage": [self.usage.input_tokens, self.usage.output_tokens, self.usage.cached_input_tokens],
            "model": self.model,
        }

    @classmethod
    def from_json(cls, data: Any) -> CachedAnswer | None:
        try:
            deltas = [str(d) for d in data["deltas"]]
            input_tokens, output_tokens, cached = (int(n) for n in data["usage"])
            return cls(deltas, Usage(input_tokens, output_tokens, cached, reported=True), str(data["model"]))
        except (KeyError, TypeError, ValueError):
            return None


def cacheable(request: ChatRequest) -> bool:
    """Only requests whose answer should not vary: temperature 0 and no tools."""
    return request.temperature is not None and float(request.temperature) == 0.0 and not request.tools


def cache_key(*, workspace_id: int, model_id: str, upstream_model: str, request: ChatRequest) -> str:
    material = {
        "workspace": workspace_id,
        "model": model_id,
        "upstream": upstream_model,
        "messages": request.messages,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "max_tokens": request.max_tokens,
        "stop": request.stop,
        "response_format": request.response_format,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()
    return KEY_PREFIX + digest


def cache_get(key: str) -> CachedAnswer | None:
    try:
        return CachedAnswer.from_json(cache.get(key))
    except Exception:  # an unreachable cache is a miss, never a failed generation
        logger.warning("response cache read failed", exc_info=True)
        return None


def cache_put(key: str, answer: CachedAnswer, *, ttl: int) -> None:
    if ttl <= 0 or not answer.deltas:
        return
    try:
        cache.set(key, answer.to_json(), timeout=ttl)
    except Exception:
        logger.warning("response cache write failed", exc_info=True)


def cache_price(units: int, percent: int) -> int:
    """`percent` of `units`, rounded up (a paid hit never rounds down to free)."""
    percent = max(0, min(int(percent), 100))
    return -(-units * percent // 100)
