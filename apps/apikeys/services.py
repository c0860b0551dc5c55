"""Every write to API keys, and the checks the API runs on each request: authenticate the key,
then its scope, model and spending cap. Views, the admin, the command and the API call these.

`acting_user=None` is the system (management commands): no role check, and the audit row names
no actor. People act through their workspace role (owners and admins manage keys), staff
through the admin with `as_staff=True`."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, models, transaction
from django.db.models import F, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.apikeys.exceptions import (
    ApiKeyCapReached,
    ApiKeyError,
    ApiKeyInvalid,
    ApiKeyModelDenied,
    ApiKeyPlanDenied,
    ApiKeyScopeDenied,
)
from apps.apikeys.models import KEY_LENGTH, KEY_PREFIX, PREFIX_LENGTH, ApiKey, Scope
from apps.audit.services import audit_record
from apps.workspaces.roles import Perm
from apps.workspaces.selectors import workspace_entitlements
from apps.workspaces.services import require_perm

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.credits.models import RateCard, Reservation
    from apps.workspaces.models import Workspace

logger = logging.getLogger(__name__)

MAX_NAME_LENGTH = 100
# A cap above 10^14 credits is a typo, and would not fit the sums of a BigInteger column.
MAX_CAP_UNITS = 10**18
MAX_PER_MINUTE = 2**31 - 1  # PositiveIntegerField
MAX_ALLOWED_MODELS = 100
# `last_used_at` is written at most this often per key: a busy key must not write on every call.
TOUCH_INTERVAL = timedelta(minutes=1)
# What `credits_reserve(related=key)` stores in `Reservation.related_type`.
RELATED_TYPE = ApiKey._meta.label_lower


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)


# ---------------------------------------------------------------------------- validation


def _clean_name(name: str) -> str:
    # One line: the name appears in lists, the admin and command output.
    name = " ".join(str(name or "").split())
    if not name:
        raise ApiKeyError("Give the key a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise ApiKeyError(f"The name can have at most {MAX_NAME_LENGTH} characters.")
    return name


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    if isinstance(scopes, str):
        raise ApiKeyError("Give the scopes as a list.")
    given = set()
    for scope in scopes or []:
        if scope not in Scope.values:
            raise ApiKeyError(f"Unknown scope: {str(scope)[:50]}.")
        given.add(scope)
    if not given:
        raise ApiKeyError("Choose at least one scope.")
    return [scope for scope in Scope.values if scope in given]  # declaration order


def _clean_cap(label: str, units: int | None) -> int | None:
    if units is None:
        return None
    if isinstance(units, bool) or not isinstance(units, int):
        raise ApiKeyError(f"The {label} cap must be a whole number of credit units.")
    if units <= 0:
        raise ApiKeyError(f"The {label} cap must be greater than zero, or empty for no cap.")
    if units > MAX_CAP_UNITS:
        raise ApiKeyError(f"The {label} cap is too large.")
    return units


def _clean_per_minute(label: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_PER_MINUTE:
        raise ApiKeyError(f"The {label} limit must be a whole number greater than zero.")
    return value


def _clean_models(model_ids: Iterable[str] | None) -> list[str]:
    from apps.generation.models import AIModel

    if isinstance(model_ids, str):
        raise ApiKeyError("Give the allowed models as a list.")
    ids = list(dict.fromkeys(str(m).strip() for m in model_ids or [] if str(m).strip()))
    if len(ids) > MAX_ALLOWED_MODELS:
        raise ApiKeyError(f"Allow at most {MAX_ALLOWED_MODELS} models, or none for every model.")
    if ids:
        known = set(AIModel.objects.filter(model_id__in=ids).values_list("model_id", flat=True))
        unknown = [m for m in ids if m not in known]
        if unknown:
            raise ApiKeyError(f"Unknown model: {', '.join(m[:100] for m in unknown[:5])}.")
    return ids


def _clean_ip(ip: str | None) -> str | None:
    # Only addresses reach the column: PostgreSQL's inet type refuses anything else.
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


# ---------------------------------------------------------------------------- create & revoke


@transaction.atomic(durable=True)
def apikey_create(
    *,
    workspace: Workspace,
    acting_user: User | None,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None = None,
    daily_cap_units: int | None = None,
    monthly_cap_units: int | None = None,
    allowed_models: Iterable[str] | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw key, the only time the raw key exists: only
    its hash is stored. Owners and admins (manage_settings); `acting_user=None` is the system.
    Raises ApiKeyError (invalid value) or WorkspacePermissionDenied."""
    if acting_user is not None:
        require_perm(workspace=workspace, user=acting_user, perm=Perm.MANAGE_SETTINGS)
    elif workspace.deleted_at is not None:
        raise ApiKeyError("This workspace is deleted.")
    fields: dict[str, Any] = {
        "name": _clean_name(name),
        "scopes": _clean_scopes(scopes),
        "daily_cap_units": _clean_cap("daily", daily_cap_units),
        "monthly_cap_units": _clean_cap("monthly", monthly_cap_units),
        "allowed_models": _clean_models(allowed_models),
        "rpm_limit": _clean_per_minute("requests per minute", rpm_limit),
        "tpm_limit": _clean_per_minute("tokens per minute", tpm_limit),
    }
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ApiKeyError("The expiry must be in the future.")
    for _attempt in range(3):
        raw_key = _new_key()
        try:
            # A savepoint: a prefix collision (one in 2^54) must not spoil this transaction.
            with transaction.atomic():
                key = ApiKey.objects.create(
                    workspace=workspace,
                    prefix=raw_key[:PREFIX_LENGTH],
                    key_hash=hash_key(raw_key),
                    expires_at=expires_at,
                    created_by=acting_user,
                    created_at=now,
                    **fields,
                )
            break
        except IntegrityError:
            continue
    else:  # pragma: no cover - three collisions in a row means a broken random source
        raise ApiKeyError("Could not create a unique key; try again.")
    audit_record(
        actor=acting_user,
        action="apikey.create",
        target=key,
        workspace=workspace,
        metadata={
            "prefix": key.prefix,  # never the key itself
            "name": key.name,
            "scopes": key.scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "daily_cap_units": key.daily_cap_units,
            "monthly_cap_units": key.monthly_cap_units,
            "allowed_models": key.allowed_models,
            "rpm_limit": key.rpm_limit,
            "tpm_limit": key.tpm_limit,
        },
    )
    return key, raw_key


@transaction.atomic(durable=True)
def apikey_revoke(*, key: ApiKey, acting_user: User | None, as_staff: bool = False) -> ApiKey:
    """Revoke the key; it stops working with the next request (authentication reads the
    database every time). Idempotent: revoking a revoked key changes nothing and writes no
    audit row. Owners and admins of the key's workspace; staff with `as_staff` (the admin);
    `acting_user=None` is the system."""
    if as_staff:
        if acting_user is None or not acting_user.is_staff:
            raise ApiKeyError("Only staff can revoke another workspace's keys.", status_code=403)
    elif acting_user is not None:
        require_perm(workspace=key.workspace, user=acting_user, perm=Perm.MANAGE_SETTINGS)
    now = timezone.now()
    # Conditional: of two revokes at once exactly one changes the row and writes the audit row.
    changed = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_by=acting_user)
    if not changed:
        key.refresh_from_db(fields=["revoked_at", "revoked_by"])
        return key
    key.revoked_at = now
    key.revoked_by = acting_user
    audit_record(
        actor=acting_user,
        action="apikey.revoke",
        target=key,
        workspace=key.workspace,
        metadata={"prefix": key.prefix, "name": key.name, **({"via": "admin"} if as_staff else {})},
    )
    return key


# ---------------------------------------------------------------------------- authentication


def _refuse(reason: str, prefix: str) -> ApiKeyInvalid:
    # The caller sees one generic message; the reason goes to the logs only.
    logger.info("API key refused (%s): %s…", reason, prefix)
    return ApiKeyInvalid(reason)


def apikey_authenticate(*, raw_key: str, ip: str | None = None) -> ApiKey:
    """The active key for `raw_key` (with its workspace and creator loaded), or ApiKeyInvalid:
    unknown, revoked, expired, creator suspended or inactive, workspace deleted. One query;
    plus, at most once a minute per key, a conditional update of `last_used_at`/`last_used_ip`."""
    if not isinstance(raw_key, str) or len(raw_key) != KEY_LENGTH or not raw_key.startswith(KEY_PREFIX):
        raise _refuse("malformed", "")
    prefix = raw_key[:PREFIX_LENGTH]
    try:
        key = ApiKey.objects.select_related("workspace", "created_by", "workspace__entitlements").get(
            key_hash=hash_key(raw_key)
        )
    except ApiKey.DoesNotExist:
        raise _refuse("unknown", prefix) from None
    now = timezone.now()
    if key.revoked_at is not None:
        raise _refuse("revoked", prefix)
    if key.expires_at is not None and key.expires_at <= now:
        raise _refuse("expired", prefix)
    if key.workspace.deleted_at is not None:
        raise _refuse("workspace deleted", prefix)
    creator = key.created_by
    if creator is not None and (not creator.is_active or creator.suspended_at is not None):
        raise _refuse("creator suspended or inactive", prefix)
    entitlements = workspace_entitlements(key.workspace)
    if not entitlements.api_access:
        raise ApiKeyPlanDenied(entitlements.plan_name)
    _touch(key, now=now, ip=_clean_ip(ip))
    return key


def _touch(key: ApiKey, *, now: datetime, ip: str | None) -> None:
    stale = now - TOUCH_INTERVAL
    if key.last_used_at is not None and key.last_used_at > stale:
        return  # used within the minute: no write at all
    # Conditional, so concurrent first requests of a minute write once between them.
    ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale), pk=key.pk).update(
        last_used_at=now, last_used_ip=ip
    )
    key.last_used_at = now
    key.last_used_ip = ip


# ---------------------------------------------------------------------------- per-request checks


def apikey_check_scope(*, key: ApiKey, scope: str) -> None:
    if not key.has_scope(scope):
        raise ApiKeyScopeDenied(scope)


def apikey_check_model(*, key: ApiKey, model_id: str) -> None:
    if not key.allows_model(model_id):
        raise ApiKeyModelDenied(model_id)


def _period_starts(now: datetime) -> tuple[datetime, datetime]:
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day_start, day_start.replace(day=1)


def apikey_spent_units(*, key: ApiKey, now: datetime | None = None) -> tuple[int, int]:
    """Credits units spent through this key today and this month (UTC): held reservations
    count their hold, settled ones their charge, released ones nothing. One query."""
    from apps.credits.models import Reservation

    day_start, month_start = _period_starts(now or timezone.now())
    spent = models.Case(
        models.When(status=Reservation.Status.SETTLED, then=F("charged_units")),
        models.When(status=Reservation.Status.HELD, then=F("amount_units")),
        default=Value(0),
        output_field=models.BigIntegerField(),
    )
    totals = (
        Reservation.objects.filter(
            workspace_id=key.workspace_id,
            related_type=RELATED_TYPE,
            related_id=str(key.pk),
            created_at__gte=month_start,
        )
        .order_by()
        .aggregate(
            day=Coalesce(Sum(spent, filter=Q(created_at__gte=day_start)), Value(0)),
            month=Coalesce(Sum(spent), Value(0)),
        )
    )
    return int(totals["day"]), int(totals["month"])


def apikey_check_spending_cap(*, key: ApiKey, units: int, now: datetime | None = None) -> None:
    """Raise ApiKeyCapReached if spending `units` more through this key would take today's or
    this month's (UTC) spend past the key's cap. No query when the key has no cap.

    On its own this is a check, not a reservation: two calls racing through it can together
    pass a cap. `apikey_reserve` checks and reserves under the key's row lock."""
    if key.daily_cap_units is None and key.monthly_cap_units is None:
        return
    day, month = apikey_spent_units(key=key, now=now)
    for cap, limit, spent in (("daily", key.daily_cap_units, day), ("monthly", key.monthly_cap_units, month)):
        if limit is not None and spent + units > limit:
            raise ApiKeyCapReached(cap=cap, limit_units=limit, spent_units=spent, requested_units=units)


@transaction.atomic
def apikey_reserve(
    *,
    key: ApiKey,
    units: int,
    idempotency_key: str,
    user: User | None = None,
    service: str = "",
    model: str = "",
    rate_card: RateCard | None = None,
) -> Reservation:
    """Check the key's spending cap and hold `units` of its workspace's credits for one call,
    recorded against the key (`related=key`), as one step: the key's row lock makes parallel
    calls through one key check their cap one after another, so together they cannot pass it.
    Raises ApiKeyCapReached, or what `credits_reserve` raises. A replayed idempotency key
    returns the existing reservation."""
    from apps.credits.models import Reservation
    from apps.credits.services import credits_reserve

    def reserve() -> Reservation:
        return credits_reserve(
            workspace=key.workspace_id,  # type: ignore[arg-type]  # an id is accepted
            units=units,
            idempotency_key=idempotency_key,
            user=user,
            service=service,
            model=model,
            rate_card=rate_card,
            related=key,
        )

    if Reservation.objects.filter(idempotency_key=idempotency_key).exists():
        return reserve()  # a replay holds nothing more
    if key.daily_cap_units is not None or key.monthly_cap_units is not None:
        # Lock order: the key row, then (inside credits_reserve) the workspace's account row.
        # The race it prevents: two calls through one key both passing the cap check.
        ApiKey.objects.select_for_update().filter(pk=key.pk).values_list("pk", flat=True).first()
        apikey_check_spending_cap(key=key, units=units)
    return reserve()
