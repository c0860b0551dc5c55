"""Rate cards: validation, versioned publishing and quoting a cost before a call."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.credits.amounts import cost_to_units, to_credits
from apps.credits.exceptions import InvalidRate, RateNotFound
from apps.credits.models import RateCard, Service

if TYPE_CHECKING:
    from apps.accounts.models import User

PRICE_FIELDS = ["input_per_1k", "output_per_1k", "cached_input_per_1k", "per_1k_characters", "per_minute", "per_unit"]

# Prices each service must set (> 0 unless the model is free).
REQUIRED: dict[str, list[str]] = {
    Service.TEXT: ["input_per_1k", "output_per_1k"],
    Service.EMBEDDINGS: ["input_per_1k"],
    Service.IMAGE: ["per_image"],
    Service.SPEECH: ["per_1k_characters"],
    Service.TRANSCRIPTION: ["per_minute"],
    Service.VOICE_CLONE: ["per_unit"],
}


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, float):
        raise InvalidRate(f"{name}: give prices as text or Decimal, not float.")
    try:
        result = Decimal(str(value))
    except ArithmeticError as exc:
        raise InvalidRate(f"{name}: {value!r} is not a number.") from exc
    if not result.is_finite():
        raise InvalidRate(f"{name}: {value!r} is not a finite number.")
    if result != result.quantize(Decimal("0.0001")):
        raise InvalidRate(f"{name}: at most 4 decimal places.")
    return result


def _label(name: str) -> str:
    return str(getattr(RateCard._meta.get_field(name), "verbose_name", name))


def rate_card_validate(card: RateCard) -> None:
    """Refuse zero or negative prices unless the model is marked free; every price the service
    needs must be set."""
    errors: list[str] = []
    for name in PRICE_FIELDS:
        value = getattr(card, name)
        if value is not None and _decimal(value, name) < 0:
            errors.append(f"{name} cannot be negative.")
    for size_quality, price in (card.per_image or {}).items():
        try:
            if _decimal(price, f"per_image[{size_quality}]") < 0:
                errors.append(f"per_image[{size_quality}] cannot be negative.")
        except InvalidRate as exc:
            errors.append(exc.message)
    for name in REQUIRED.get(card.service, []):
        if name == "per_image":
            prices = [_decimal(p, name) for p in (card.per_image or {}).values()] if not errors else []
            if not card.per_image:
                errors.append("Set at least one image price.")
            elif not card.is_free and any(p <= 0 for p in prices):
                errors.append("Image prices must be greater than zero unless the model is free.")
            continue
        value = getattr(card, name)
        if value is None:
            errors.append(f"{_label(name)} is required for this service.")
        elif not card.is_free and _decimal(value, name) <= 0:
            errors.append(f"{_label(name)} must be greater than zero unless the model is free.")
    if errors:
        raise InvalidRate(" ".join(errors))


@transaction.atomic
def rate_card_publish(*, service: str, model: str, acting_user: User | None, **prices: Any) -> RateCard:
    """Publish prices for (service, model) as a new version; the previous one is superseded and
    stays attached to the charges that used it."""
    if service not in Service.values:
        raise InvalidRate(f"Unknown service: {service}.")
    model = model.strip()
    if not model:
        raise InvalidRate("Name the model.")
    current = RateCard.objects.select_for_update().filter(service=service, model=model).current().first()
    card = RateCard(service=service, model=model, created_by=acting_user, **prices)
    rate_card_validate(card)
    if current is not None:
        current.superseded_at = timezone.now()
        current.save(update_fields=["superseded_at"])
        card.version = current.version + 1
    card.save()
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
    table = card.per_image or {}
    for key in (f"{size}:{quality}", size, "*"):
        if key in table:
            return Decimal(str(table[key]))
    raise RateNotFound(f"No image price for {size} {quality} on {card.model}.")


def _per_1k(price: Decimal | None, quantity: int) -> Decimal:
    return (price or Decimal(0)) * Decimal(quantity) / 1000


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
    audio_seconds: Decimal | int = 0,
    items: int = 0,
) -> Quote:
    """Cost of a call in units (rounded up), from the current rate card unless one is given
    (settling uses the card the reservation was quoted with)."""
    card = rate_card or rate_card_current(service=service, model=model)
    quantities = [input_tokens, output_tokens, cached_input_tokens, images, characters, items]
    if any(q < 0 for q in quantities) or Decimal(audio_seconds) < 0:
        raise InvalidRate("Quantities cannot be negative.")
    if card.service in (Service.TEXT, Service.EMBEDDINGS):
        cost = (
            _per_1k(card.input_per_1k, input_tokens)
            + _per_1k(card.output_per_1k, output_tokens)
            + _per_1k(card.cached_input_per_1k, cached_input_tokens)
        )
    elif card.service == Service.IMAGE:
        cost = _image_price(card, size, quality) * images if images else Decimal(0)
    elif card.service == Service.SPEECH:
        cost = _per_1k(card.per_1k_characters, characters)
    elif card.service == Service.TRANSCRIPTION:
        cost = (card.per_minute or Decimal(0)) * Decimal(audio_seconds) / 60
    else:
        cost = (card.per_unit or Decimal(0)) * items
    return Quote(units=cost_to_units(cost), rate_card=card)
