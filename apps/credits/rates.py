"""Rate cards: validation, versioned publishing and quoting a cost before a call.

Prices are credits (Decimal, at most 4 places). A card is never changed once published:
`rate_card_publish` supersedes the current version and inserts the next one, so a reservation
keeps pointing at the exact prices it was quoted with.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.credits.amounts import PLACES, cost_to_units, to_credits
from apps.credits.exceptions import InvalidRate, RateNotFound
from apps.credits.models import RateCard, Service

if TYPE_CHECKING:
    from apps.accounts.models import User

PRICE_FIELDS = ["input_per_1k", "output_per_1k", "cached_input_per_1k", "per_1k_characters", "per_minute", "per_unit"]
# What `rate_card_publish` accepts besides service and model.
CARD_FIELDS = frozenset([*PRICE_FIELDS, "per_image", "is_free"])
# DecimalField(max_digits=14, decimal_places=4): PostgreSQL refuses anything larger.
MAX_PRICE = Decimal(10) ** 10
NON_FIELD = "__all__"

# Prices each service must set (> 0 unless the model is free). A tuple means "at least one of".
REQUIRED: dict[str, list[str | tuple[str, ...]]] = {
    Service.TEXT: ["input_per_1k", "output_per_1k"],
    Service.EMBEDDINGS: ["input_per_1k"],
    Service.IMAGE: ["per_image"],
    Service.SPEECH: [("per_1k_characters", "per_minute")],
    Service.TRANSCRIPTION: ["per_minute"],
    Service.VOICE_CLONE: ["per_unit"],
}


def _label(name: str) -> str:
    if name == "per_image":
        return "Image prices"
    label = str(getattr(RateCard._meta.get_field(name), "verbose_name", name))
    return label[:1].upper() + label[1:]


def _price(value: Any, label: str) -> Decimal:
    """A price as an exact Decimal, or InvalidRate. Floats are refused for the decimal fields
    (binary fractions); JSON image prices arrive as floats from the admin form, so those are
    taken by their shortest text form (`str(4.5)` is "4.5"), which is exactly what was typed."""
    if isinstance(value, bool):
        raise InvalidRate(f"{label}: {value!r} is not a number.")
    try:
        result = Decimal(str(value))
    except ArithmeticError as exc:
        raise InvalidRate(f"{label}: {value!r} is not a number.") from exc
    if not result.is_finite():
        raise InvalidRate(f"{label}: {value!r} is not a finite number.")
    if result != result.quantize(PLACES):
        raise InvalidRate(f"{label}: at most 4 decimal places.")
    if abs(result) >= MAX_PRICE:
        raise InvalidRate(f"{label}: too large.")
    return result


def rate_card_errors(card: RateCard) -> dict[str, list[str]]:
    """Every problem with a card's prices, by field (`"__all__"` for the card as a whole):
    prices are exact, never negative, and zero only when the model is marked free; every price
    the service needs is set."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    def check(name: str, value: Any, label: str) -> Decimal | None:
        try:
            price = _price(value, label)
        except InvalidRate as exc:
            add(name, exc.message)
            return None
        if price < 0:
            add(name, f"{label} cannot be negative.")
        elif price == 0 and not card.is_free:
            add(name, f"{label} must be greater than zero unless the model is marked free.")
        return price

    for name in PRICE_FIELDS:
        value = getattr(card, name)
        if isinstance(value, float):
            add(name, f"{_label(name)}: give prices as text or Decimal, not float.")
        elif value is not None:
            check(name, value, _label(name))
    table = card.per_image
    if table and not isinstance(table, dict):
        add("per_image", 'Image prices must be an object such as {"1024x1024:standard": "4", "*": "4"}.')
    elif table:
        for key, value in table.items():
            if not str(key).strip():
                add("per_image", "Image price keys cannot be empty.")
            else:
                check("per_image", value, f"Image price {key!r}")
    for requirement in REQUIRED.get(card.service, []):
        names = requirement if isinstance(requirement, tuple) else (requirement,)
        if any(_is_set(getattr(card, name)) for name in names):
            continue
        if names == ("per_image",):
            add("per_image", "Set at least one image price.")
        elif len(names) == 1:
            add(names[0], f"{_label(names[0])} is required for this service.")
        else:
            add(NON_FIELD, f"Set {' or '.join(_label(n).lower() for n in names)} for this service.")
    return errors


def _is_set(value: Any) -> bool:
    return bool(value) if isinstance(value, dict) else value is not None


def rate_card_validate(card: RateCard) -> None:
    """Raise InvalidRate (all problems in one message) unless the card can be published."""
    errors = rate_card_errors(card)
    if errors:
        raise InvalidRate(" ".join(message for problems in errors.values() for message in problems))


def _normalised(prices: dict[str, Any]) -> dict[str, Any]:
    """Decimals for the price fields and `{"size:quality": "price"}` text for images (a JSON
    column cannot hold a Decimal, and lookups are case-insensitive). Assumes validated input."""
    out: dict[str, Any] = {}
    for name, value in prices.items():
        if name in PRICE_FIELDS and value is not None:
            out[name] = _price(value, name)
        elif name == "per_image":
            out[name] = {str(k).strip().lower(): str(_price(v, k)) for k, v in (value or {}).items()}
        else:
            out[name] = value
    return out


@transaction.atomic
def rate_card_publish(*, service: str, model: str, acting_user: User | None, **prices: Any) -> RateCard:
    """Publish prices for (service, model) as a new version; the previous one is superseded and
    stays attached to the charges that used it. `prices` are the RateCard price fields,
    `per_image` and `is_free`; anything else is refused."""
    if service not in Service.values:
        raise InvalidRate(f"Unknown service: {service}.")
    model = (model or "").strip()
    if not model:
        raise InvalidRate("Name the model.")
    unknown = sorted(set(prices) - CARD_FIELDS)
    if unknown:
        raise InvalidRate(f"Not a rate card price: {', '.join(unknown)}.")
    rate_card_validate(RateCard(service=service, model=model, **prices))
    prices = _normalised(prices)
    # Lock every version of this (service, model), oldest first so all publishers queue on
    # version 1 and none can hold a newer one while waiting: two publishers are serialised
    # instead of both superseding the same card. Then read the versions again, because a
    # version committed while we waited is invisible to the statement that waited. The very
    # first publish has no row to lock: the version constraint turns that race into a refusal.
    versions = RateCard.objects.filter(service=service, model=model)
    list(versions.select_for_update().order_by("version").values_list("pk", flat=True))
    latest = max(versions.values_list("version", flat=True), default=0)
    now = timezone.now()
    versions.filter(superseded_at__isnull=True).update(superseded_at=now)
    card = RateCard(service=service, model=model, version=latest + 1, created_by=acting_user, created_at=now, **prices)
    try:
        with transaction.atomic():
            card.save()
    except IntegrityError as exc:
        raise InvalidRate(f"Prices for {model} were published at the same moment; try again.") from exc
    if acting_user is not None:
        audit_record(
            actor=acting_user,
            action="credits.rate_publish",
            target=card,
            metadata={"service": service, "model": model, "version": card.version},
        )
    return card


def rate_card_current(*, service: str, model: str) -> RateCard:
    card = RateCard.objects.current().filter(service=service, model=model).first()
    if card is None:
        raise RateNotFound(f"No price is set for {model} ({service}).")
    return card


@dataclass(frozen=True)
class Quote:
    units: int
    rate_card: RateCard

    @property
    def credits(self) -> Decimal:
        return to_credits(self.units)


def _image_price(card: RateCard, size: str, quality: str) -> Decimal:
    """The most specific price: "size:quality", then "size", then "*:quality", then "*"."""
    table = {str(k).lower(): v for k, v in (card.per_image or {}).items()}
    size, quality = size.strip().lower(), quality.strip().lower()
    for key in (f"{size}:{quality}", size, f"*:{quality}", "*"):
        if key in table:
            return Decimal(str(table[key]))
    wanted = f"{size}:{quality}" if quality else size or "this size"
    raise RateNotFound(f"No image price for {wanted} on {card.model}.")


def _per_1k(price: Decimal | None, quantity: int) -> Decimal:
    return (price or Decimal(0)) * Decimal(quantity) / 1000


def _cost(
    card: RateCard,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int,
    images: int,
    size: str,
    quality: str,
    characters: int,
    seconds: Decimal,
    items: int,
) -> Decimal:
    if card.service in (Service.TEXT, Service.EMBEDDINGS):
        cached_price = card.cached_input_per_1k if card.cached_input_per_1k is not None else card.input_per_1k
        return (
            _per_1k(card.input_per_1k, input_tokens)
            + _per_1k(card.output_per_1k, output_tokens)
            + _per_1k(cached_price, cached_input_tokens)
        )
    if card.service == Service.IMAGE:
        return _image_price(card, size, quality) * images if images else Decimal(0)
    if card.service == Service.SPEECH:
        return _per_1k(card.per_1k_characters, characters) + _per_minute(card.per_minute, seconds)
    if card.service == Service.TRANSCRIPTION:
        return _per_minute(card.per_minute, seconds)
    return (card.per_unit or Decimal(0)) * items


def _per_minute(price: Decimal | None, seconds: Decimal) -> Decimal:
    return (price or Decimal(0)) * seconds / 60


def credits_quote(
    *,
    service: str,
    model: str,
    rate_card: RateCard | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_input_tokens: int = 0,
    images: int = 0,
    size: str = "",
    quality: str = "",
    characters: int = 0,
    audio_seconds: Decimal | int | float = 0,
    items: int = 0,
) -> Quote:
    """Cost of a call in units (rounded up), from the current rate card unless one is given
    (settling uses the card the reservation was quoted with).

    Text: `input_tokens` are the uncached input tokens; `cached_input_tokens` are billed at the
    cached price, or at the input price when the card sets none (never for free). Speech is
    billed per 1K characters and/or per minute of audio, whichever prices the card sets."""
    card = rate_card or rate_card_current(service=service, model=model)
    if service and card.service != service:
        raise InvalidRate(f"The rate card of {card.model} is for {card.get_service_display()}, not {service}.")
    quantities = [input_tokens, output_tokens, cached_input_tokens, images, characters, items]
    try:
        seconds = Decimal(str(audio_seconds))
    except ArithmeticError as exc:
        raise InvalidRate(f"Not a number of seconds: {audio_seconds!r}.") from exc
    if any(q < 0 for q in quantities) or not seconds.is_finite() or seconds < 0:
        raise InvalidRate("Quantities cannot be negative.")
    # Every step rounds up (and 60 digits keep products exact), so a division that does not
    # come out even can only overstate the cost, never understate it.
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.rounding = ROUND_CEILING
        cost = _cost(
            card, input_tokens, output_tokens, cached_input_tokens, images, size, quality, characters, seconds, items
        )
    return Quote(units=cost_to_units(cost), rate_card=card)


# ---------------------------------------------------------------------------- defaults

# Prices for a fresh install, in credits (1 credit is roughly one US cent of provider cost).
# The `mock-*` models are the built-in offline provider: cheap but never free, so billing is
# exercised end to end in development.
DEFAULT_RATE_CARDS: list[dict[str, Any]] = [
    {"service": Service.TEXT, "model": "mock-chat", "input_per_1k": "0.01", "output_per_1k": "0.02"},
    {"service": Service.EMBEDDINGS, "model": "mock-embed", "input_per_1k": "0.001"},
    {
        "service": Service.IMAGE,
        "model": "mock-image",
        "per_image": {"1024x1024:standard": "2", "1024x1024:hd": "4", "*:hd": "6", "*": "3"},
    },
    {
        "service": Service.IMAGE,
        "model": "dall-e-3",
        "per_image": {
            "1024x1024:standard": "4",
            "1792x1024:standard": "8",
            "1024x1792:standard": "8",
            "1024x1024:hd": "8",
            "1792x1024:hd": "12",
            "1024x1792:hd": "12",
        },
    },
    {
        "service": Service.IMAGE,
        "model": "dall-e-2",
        "per_image": {"256x256": "1.6", "512x512": "1.8", "1024x1024": "2"},
    },
    {"service": Service.SPEECH, "model": "mock-tts", "per_1k_characters": "1.5"},
    {"service": Service.TRANSCRIPTION, "model": "mock-whisper", "per_minute": "0.6"},
    {"service": Service.SPEECH, "model": "tts-1", "per_1k_characters": "1.5"},
    {"service": Service.SPEECH, "model": "tts-1-hd", "per_1k_characters": "3"},
    {"service": Service.TRANSCRIPTION, "model": "whisper-1", "per_minute": "0.6"},
    {"service": Service.VOICE_CLONE, "model": "mock-voice", "per_unit": "10"},
    {
        "service": Service.TEXT,
        "model": "gpt-4o-mini",
        "input_per_1k": "0.015",
        "cached_input_per_1k": "0.0075",
        "output_per_1k": "0.06",
    },
    {
        "service": Service.TEXT,
        "model": "gpt-4o",
        "input_per_1k": "0.25",
        "cached_input_per_1k": "0.125",
        "output_per_1k": "1",
    },
    {
        "service": Service.TEXT,
        "model": "claude-3-5-haiku",
        "input_per_1k": "0.08",
        "cached_input_per_1k": "0.008",
        "output_per_1k": "0.4",
    },
    {
        "service": Service.TEXT,
        "model": "claude-sonnet-4",
        "input_per_1k": "0.3",
        "cached_input_per_1k": "0.03",
        "output_per_1k": "1.5",
    },
    {"service": Service.TEXT, "model": "gemini-2.0-flash", "input_per_1k": "0.01", "output_per_1k": "0.04"},
    {"service": Service.TEXT, "model": "mistral-small", "input_per_1k": "0.02", "output_per_1k": "0.06"},
    {"service": Service.TEXT, "model": "llama3.1", "input_per_1k": "0.005", "output_per_1k": "0.005"},
]


def rate_cards_seed_defaults(*, acting_user: User | None = None) -> list[RateCard]:
    """Publish the default card of every model in `DEFAULT_RATE_CARDS` that has no current
    card yet. Safe to run again: prices staff have set are never replaced. Returns the cards
    published."""
    published = []
    priced = set(RateCard.objects.current().values_list("service", "model"))
    for default in DEFAULT_RATE_CARDS:
        spec = dict(default)
        service, model = spec.pop("service"), spec.pop("model")
        if (service, model) in priced:
            continue
        published.append(rate_card_publish(service=service, model=model, acting_user=acting_user, **spec))
    return published
