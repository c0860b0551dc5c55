"""Rate limiting: requests and tokens per minute, per API key, per workspace member and per
workspace, shared by every process through the `limits` storage (see `storage.py`).

Strategy: sliding window counter (`limits.strategies.SlidingWindowCounterRateLimiter`) for both
kinds, one minute long.

- A moving window is exact but stores one entry per unit of cost: the Redis script LPUSHes
  `cost` timestamps, so a 200,000-token estimate pushes 200,000 list items, and a 2,000,000 TPM
  limit keeps lists that long per workspace. Unusable for tokens.
- A fixed window is O(1) but lets a client spend its limit at 0:59 and again at 1:00.
- The sliding window counter keeps two counters (this minute, the previous one) and weighs the
  previous one by how much of it still overlaps the last 60 seconds. A hit is one Lua script
  with INCRBY: O(1) whatever the cost, atomic across processes, and smooth (the approximation
  assumes the previous minute's traffic was even).

Counting one request against several windows (key, member, workspace x requests, tokens):

1. read every window (one round trip each); if any would refuse, refuse and count nothing;
2. otherwise hit them in order (key, user, workspace; requests before tokens) with the
   library's conditional, atomic hit. A hit refused there lost a race with a concurrent request
   since step 1: the windows this request already hit get their cost back (a negative hit) and
   the request is refused.

So no window ever admits more than its limit, and a refused request leaves the other budgets as
they were. Costs of the race path: for the milliseconds before a refund a concurrent request may
see a window fuller than it is (it errs toward refusing); and a refund landing just after that
window rolled over goes to the new minute (a handful of requests' worth of extra room, once).

Tokens: a request needs at least one token of headroom, so an exhausted token budget refuses
even a request estimated at 0 tokens. `ratelimit_record_tokens` adds usage after the fact
without refusing anything (a window may go over its limit; the next requests wait). Only
additions are recorded: an estimate higher than the actual usage is not given back.

Storage failures fail open (see `storage.py`): the decision is `allowed` with `degraded=True`.
These functions are synchronous (they may query the database); call them through
`sync_to_async` from async code.

A workspace's own limits (`WorkspaceRateLimit`) are set by staff through
`ratelimit_override_save` and `ratelimit_override_delete`, which write the audit rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from limits import RateLimitItemPerMinute
from limits.strategies import SlidingWindowCounterRateLimiter

from apps.audit.services import audit_record
from apps.ratelimits.decisions import Kind, RateLimitDecision, WindowState
from apps.ratelimits.defaults import LIMIT_FIELDS
from apps.ratelimits.exceptions import RateLimited
from apps.ratelimits.models import WorkspaceRateLimit
from apps.ratelimits.selectors import Limits, Subject, ratelimit_limits
from apps.ratelimits.storage import RateLimitStorage, with_storage
from apps.ratelimits.windows import WindowSnapshot, whole_seconds_after

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.workspaces.models import Workspace

WINDOW_SECONDS = 60
# A limit no recording can reach: used to add (or give back) cost unconditionally.
_UNBOUNDED = 10**15


class _PerMinute(RateLimitItemPerMinute):
    """A per-minute item whose storage key leaves the amount out (the library's own key embeds
    it): changing a limit in the admin keeps what was already counted instead of starting the
    workspace from zero."""

    def key_for(self, *identifiers: bytes | str | int | float) -> str:
        return "/".join(str(part) for part in identifiers)


@dataclass(frozen=True)
class _Window:
    subject: Subject
    subject_id: str
    kind: Kind
    limit: int
    cost: int  # what an admitted request adds
    need: int  # the headroom a request needs to be admitted

    @property
    def item(self) -> _PerMinute:
        return _PerMinute(self.limit)

    @property
    def identifiers(self) -> tuple[str, str, str]:
        return (self.kind, self.subject, self.subject_id)

    @property
    def key(self) -> str:
        return self.item.key_for(*self.identifiers)


# ---------------------------------------------------------------------------- public API


def ratelimit_check(
    *,
    workspace: Workspace,
    user: User | None = None,
    api_key: Any = None,
    tokens: int = 0,
    limits: Limits | None = None,
) -> RateLimitDecision:
    """Count one request and `tokens` estimated tokens against every limited window, or refuse
    the request (counting nothing) if any window would go over. `limits`, when given (e.g. from
    an earlier `ratelimit_limits`), is used as is instead of being looked up."""
    if limits is None:
        limits = ratelimit_limits(workspace=workspace, user=user, api_key=api_key)
    windows = _windows(limits, tokens=max(0, int(tokens)))
    if not windows:
        return RateLimitDecision(allowed=True)
    decision = with_storage(lambda storage: _check(storage, windows))
    return decision if decision is not None else RateLimitDecision(allowed=True, degraded=True)


def ratelimit_enforce(
    *,
    workspace: Workspace,
    user: User | None = None,
    api_key: Any = None,
    tokens: int = 0,
    limits: Limits | None = None,
) -> RateLimitDecision:
    """`ratelimit_check`, raising `RateLimited` when the request is refused."""
    decision = ratelimit_check(workspace=workspace, user=user, api_key=api_key, tokens=tokens, limits=limits)
    if not decision.allowed:
        raise RateLimited(decision)
    return decision


def ratelimit_record_tokens(
    *,
    workspace: Workspace,
    user: User | None = None,
    api_key: Any = None,
    tokens: int,
    limits: Limits | None = None,
) -> None:
    """Add `tokens` used beyond the estimate (e.g. the output tokens) to the tokens windows,
    refusing nothing: a window may go over its limit, and then the next requests wait.
    Zero or negative amounts are ignored."""
    if tokens <= 0:
        return
    if limits is None:
        limits = ratelimit_limits(workspace=workspace, user=user, api_key=api_key)
    windows = [w for w in _windows(limits, tokens=int(tokens)) if w.kind == "tokens"]
    if windows:
        with_storage(lambda storage: _add(storage, windows, sign=1))


# ---------------------------------------------------------------------------- workspace overrides

# What an override stores, named like the admin form's fields (`workspace`: its id).
OVERRIDE_FIELDS: tuple[str, ...] = ("workspace", *LIMIT_FIELDS, "note")


def _override_values(override: WorkspaceRateLimit) -> dict[str, Any]:
    return {field: getattr(override, "workspace_id" if field == "workspace" else field) for field in OVERRIDE_FIELDS}


@transaction.atomic(savepoint=False)  # inside the admin's save transaction
def ratelimit_override_save(*, override: WorkspaceRateLimit, acting_user: User | None) -> WorkspaceRateLimit:
    """Store a workspace's own limits (staff, in the back office). The audit row records each
    field that changed, from → to (a new override: from its defaults)."""
    created = override._state.adding
    stored = None if created else WorkspaceRateLimit.objects.filter(pk=override.pk).first()
    before = _override_values(stored if stored is not None else WorkspaceRateLimit())
    override.save()
    after = _override_values(override)
    audit_record(
        actor=acting_user,
        action="ratelimits.override_create" if created else "ratelimits.override_change",
        target=override,
        workspace=override.workspace,
        metadata={
            field: {"from": before[field], "to": value} for field, value in after.items() if value != before[field]
        },
    )
    return override


@transaction.atomic
def ratelimit_override_delete(*, override: WorkspaceRateLimit, acting_user: User | None) -> None:
    """Remove a workspace's own limits: the site defaults and its plan's apply again. The audit
    row keeps the limits it had."""
    audit_record(
        actor=acting_user,
        action="ratelimits.override_delete",
        target=override,
        workspace=override.workspace,
        metadata={field: getattr(override, field) for field in LIMIT_FIELDS},
    )
    override.delete()


# ---------------------------------------------------------------------------- internals


def _windows(limits: Limits, *, tokens: int) -> list[_Window]:
    windows = []
    for s in limits.subjects:
        if s.rpm:
            windows.append(_Window(s.subject, s.id, "requests", s.rpm, cost=1, need=1))
        if s.tpm:
            windows.append(_Window(s.subject, s.id, "tokens", s.tpm, cost=tokens, need=max(tokens, 1)))
    return windows


def _snapshot(storage: RateLimitStorage, window: _Window) -> WindowSnapshot:
    return WindowSnapshot.from_storage(storage.get_sliding_window(window.key, WINDOW_SECONDS), WINDOW_SECONDS)


def _add(storage: RateLimitStorage, windows: list[_Window], *, sign: int) -> None:
    for window in windows:
        storage.acquire_sliding_window_entry(window.key, _UNBOUNDED, WINDOW_SECONDS, sign * window.cost)


def _check(storage: RateLimitStorage, windows: list[_Window]) -> RateLimitDecision:
    snapshots = {window: _snapshot(storage, window) for window in windows}
    refused = [w for w in windows if not snapshots[w].fits(w.limit, w.need)]
    if refused:
        return _refusal(refused, snapshots)

    limiter = SlidingWindowCounterRateLimiter(storage)
    counted: list[_Window] = []
    for window in windows:
        if window.cost == 0:
            continue
        if not limiter.hit(window.item, *window.identifiers, cost=window.cost):
            # A concurrent request took the room since the snapshot: give back what this one took.
            _add(storage, counted, sign=-1)
            snapshots[window] = _snapshot(storage, window)
            return _refusal([window], snapshots)
        counted.append(window)
    return RateLimitDecision(
        allowed=True,
        windows=tuple(_state(w, snapshots[w], spent=w.cost) for w in windows),
    )


def _refusal(refused: list[_Window], snapshots: dict[_Window, WindowSnapshot]) -> RateLimitDecision:
    waits = {w: snapshots[w].seconds_until_fits(w.limit, w.need) for w in refused}
    too_large = [w for w in refused if waits[w] is None]
    if too_large:
        # Waiting will not help; the caller should shrink the request (or raise the limit).
        worst, retry_after = too_large[0], WINDOW_SECONDS
    else:
        worst = max(refused, key=lambda w: waits[w] or 0.0)
        retry_after = whole_seconds_after(waits[worst] or 0.0)
    states = {w: _state(w, snapshot) for w, snapshot in snapshots.items()}
    return RateLimitDecision(
        allowed=False,
        retry_after=retry_after,
        exceeded=states[worst],
        windows=tuple(states.values()),
        request_too_large=bool(too_large),
    )


def _state(window: _Window, snapshot: WindowSnapshot, *, spent: int = 0) -> WindowState:
    if spent:
        snapshot = snapshot.after_hit(spent)
    return WindowState(
        subject=window.subject,
        kind=window.kind,
        limit=window.limit,
        remaining=snapshot.remaining(window.limit),
        reset_seconds=math.ceil(snapshot.seconds_until_full(window.limit)),
    )
