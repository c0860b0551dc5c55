"""Rate cards: quoting every service (rounded up to the unit), versioned publishing that never
changes a card a charge used, validation refusals and the default cards."""

from __future__ import annotations

import io
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from apps.audit.models import AuditEvent
from apps.credits.exceptions import InvalidRate, RateNotFound
from apps.credits.models import RateCard, Service
from apps.credits.rates import (
    DEFAULT_RATE_CARDS,
    credits_quote,
    rate_card_current,
    rate_card_errors,
    rate_card_publish,
    rate_card_validate,
    rate_cards_seed_defaults,
)
from apps.credits.services import credits_grant, credits_reserve, credits_settle
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


def publish(service: str, model: str, **prices: Any) -> RateCard:
    return rate_card_publish(service=service, model=model, acting_user=None, **prices)


def quote(service: str, model: str, **usage: Any) -> int:
    return credits_quote(service=service, model=model, **usage).units


# ---------------------------------------------------------------------------- quoting


def test_text_charges_input_and_output_per_1k_rounded_up_to_the_unit():
    publish(Service.TEXT, "gpt-4o-mini", input_per_1k="0.015", output_per_1k="0.06")

    # 0.015 * 1.234 + 0.06 * 0.567 = 0.05253 credits = 525.3 units → 526
    assert quote(Service.TEXT, "gpt-4o-mini", input_tokens=1234, output_tokens=567) == 526
    assert quote(Service.TEXT, "gpt-4o-mini", input_tokens=1000) == 150
    assert quote(Service.TEXT, "gpt-4o-mini") == 0


def test_a_tiny_cost_is_never_rounded_down_to_nothing():
    publish(Service.TEXT, "cheap", input_per_1k="0.0001", output_per_1k="0.0001")

    assert quote(Service.TEXT, "cheap", input_tokens=1) == 1  # 0.001 units


def test_cached_input_tokens_use_the_cached_price():
    publish(Service.TEXT, "gpt-4o", input_per_1k="0.25", cached_input_per_1k="0.125", output_per_1k="1")

    units = quote(Service.TEXT, "gpt-4o", input_tokens=1000, cached_input_tokens=2000, output_tokens=500)

    assert units == 2500 + 2500 + 5000


def test_cached_input_tokens_cost_the_input_price_when_the_card_sets_no_cached_price():
    publish(Service.TEXT, "no-cache-price", input_per_1k="0.2", output_per_1k="0.4")

    assert quote(Service.TEXT, "no-cache-price", cached_input_tokens=1000) == 2000


def test_embeddings_charge_input_tokens():
    publish(Service.EMBEDDINGS, "embed", input_per_1k="0.001")

    assert quote(Service.EMBEDDINGS, "embed", input_tokens=8000) == 80
    assert quote(Service.EMBEDDINGS, "embed", input_tokens=1) == 1


def test_image_price_by_size_and_quality_with_fallbacks():
    publish(
        Service.IMAGE,
        "img",
        per_image={"1024x1024:standard": "4", "1024x1024:HD": "8", "512x512": "1.5", "*:hd": "12", "*": "6"},
    )

    assert quote(Service.IMAGE, "img", images=1, size="1024x1024", quality="standard") == 40_000
    assert quote(Service.IMAGE, "img", images=2, size="1024x1024", quality="hd") == 160_000
    assert quote(Service.IMAGE, "img", images=1, size="1024X1024", quality="HD") == 80_000  # case-insensitive
    assert quote(Service.IMAGE, "img", images=3, size="512x512", quality="hd") == 45_000  # size beats *:quality
    assert quote(Service.IMAGE, "img", images=1, size="1792x1024", quality="hd") == 120_000  # any size, hd
    assert quote(Service.IMAGE, "img", images=1, size="1792x1024", quality="standard") == 60_000  # "*"
    assert quote(Service.IMAGE, "img", images=0, size="1024x1024", quality="hd") == 0


def test_image_without_a_matching_price_or_fallback_is_refused():
    publish(Service.IMAGE, "strict", per_image={"1024x1024:standard": "4"})

    with pytest.raises(RateNotFound, match="1792x1024:hd"):
        credits_quote(service=Service.IMAGE, model="strict", images=1, size="1792x1024", quality="hd")


def test_speech_per_1k_characters():
    publish(Service.SPEECH, "tts", per_1k_characters="1.5")

    assert quote(Service.SPEECH, "tts", characters=2500) == 37_500
    assert quote(Service.SPEECH, "tts", characters=1) == 15


def test_speech_per_minute_of_audio():
    publish(Service.SPEECH, "tts-minutes", per_minute="3")

    assert quote(Service.SPEECH, "tts-minutes", audio_seconds=30) == 15_000


def test_transcription_per_minute_with_fractional_seconds():
    publish(Service.TRANSCRIPTION, "whisper", per_minute="0.6")

    assert quote(Service.TRANSCRIPTION, "whisper", audio_seconds=Decimal("90.5")) == 9050
    assert quote(Service.TRANSCRIPTION, "whisper", audio_seconds=12.5) == 1250  # a float is taken as written
    assert quote(Service.TRANSCRIPTION, "whisper", audio_seconds=Decimal("0.01")) == 1


def test_transcription_rounds_a_repeating_fraction_up():
    publish(Service.TRANSCRIPTION, "per-minute", per_minute="1")

    # 1/60 credit = 166.66… units
    assert quote(Service.TRANSCRIPTION, "per-minute", audio_seconds=1) == 167


def test_a_cost_just_above_a_unit_is_not_rounded_down_by_decimal_precision():
    publish(Service.TRANSCRIPTION, "per-minute", per_minute="1")

    # 1.0000000000000000000000000000000166… credits: more digits than Decimal's default 28.
    assert (
        quote(Service.TRANSCRIPTION, "per-minute", audio_seconds=Decimal("60.000000000000000000000000000001")) == 10_001
    )


def test_voice_clone_per_item():
    publish(Service.VOICE_CLONE, "clone", per_unit="10")

    assert quote(Service.VOICE_CLONE, "clone", items=2) == 200_000


def test_quote_credits_are_exact_decimals():
    publish(Service.VOICE_CLONE, "clone", per_unit="2.5")

    result = credits_quote(service=Service.VOICE_CLONE, model="clone", items=3)

    assert result.credits == Decimal("7.5000")


def test_negative_quantities_are_refused():
    publish(Service.TEXT, "m", input_per_1k="1", output_per_1k="1")
    publish(Service.TRANSCRIPTION, "w", per_minute="1")

    with pytest.raises(InvalidRate):
        credits_quote(service=Service.TEXT, model="m", input_tokens=-1)
    with pytest.raises(InvalidRate):
        credits_quote(service=Service.TRANSCRIPTION, model="w", audio_seconds=Decimal("-0.5"))


def test_quoting_a_model_without_a_card_is_refused():
    with pytest.raises(RateNotFound, match="unknown-model"):
        credits_quote(service=Service.TEXT, model="unknown-model", input_tokens=10)


def test_a_given_card_must_be_for_the_quoted_service():
    card = publish(Service.TEXT, "m", input_per_1k="1", output_per_1k="1")

    with pytest.raises(InvalidRate, match="not image"):
        credits_quote(service=Service.IMAGE, model="m", rate_card=card, images=1)


# ---------------------------------------------------------------------------- publishing


def test_publishing_supersedes_the_current_version():
    first = publish(Service.TEXT, "gpt-4o", input_per_1k="0.25", output_per_1k="1")

    second = publish(Service.TEXT, "gpt-4o", input_per_1k="0.3", output_per_1k="1.2")

    first.refresh_from_db()
    assert (first.version, second.version) == (1, 2)
    assert first.superseded_at is not None
    assert second.superseded_at is None
    assert rate_card_current(service=Service.TEXT, model="gpt-4o") == second
    assert first.input_per_1k == Decimal("0.25")  # the old row keeps its prices


def test_a_charge_keeps_the_card_it_was_quoted_with():
    old = publish(Service.TEXT, "gpt-4o", input_per_1k="1", output_per_1k="2")
    workspace = WorkspaceFactory.create()
    credits_grant(workspace=workspace, amount="100", source="purchased", idempotency_key="g")
    estimate = credits_quote(service=Service.TEXT, model="gpt-4o", input_tokens=1000, output_tokens=1000)
    reservation = credits_reserve(
        workspace=workspace,
        units=estimate.units,
        idempotency_key="call-1",
        service=Service.TEXT,
        model="gpt-4o",
        rate_card=estimate.rate_card,
    )

    publish(Service.TEXT, "gpt-4o", input_per_1k="5", output_per_1k="10")
    reservation.refresh_from_db()
    actual = credits_quote(
        service=Service.TEXT, model="gpt-4o", rate_card=reservation.rate_card, input_tokens=500, output_tokens=500
    )
    settled = credits_settle(reservation=reservation, actual_units=actual.units)

    assert reservation.rate_card_id == old.pk
    assert settled.charged_units == 15_000  # 0.5 + 1 credits at the old prices
    assert quote(Service.TEXT, "gpt-4o", input_tokens=500, output_tokens=500) == 75_000  # new prices


def test_the_published_card_quotes_straight_away():
    card = publish(Service.TEXT, "fresh", input_per_1k="0.5", output_per_1k="1")

    assert card.input_per_1k == Decimal("0.5")
    assert credits_quote(service=Service.TEXT, model="fresh", rate_card=card, input_tokens=2000).units == 10_000


def test_image_prices_are_stored_as_exact_text():
    card = publish(Service.IMAGE, "img", per_image={" 1024x1024:HD ": Decimal("8.5"), "*": 4})

    card.refresh_from_db()
    assert card.per_image == {"1024x1024:hd": "8.5", "*": "4"}


def test_versions_continue_after_every_version_was_retired():
    publish(Service.TEXT, "m", input_per_1k="1", output_per_1k="1")
    publish(Service.TEXT, "m", input_per_1k="2", output_per_1k="2")
    RateCard.objects.filter(model="m").update(superseded_at="2020-01-01T00:00:00Z")

    card = publish(Service.TEXT, "m", input_per_1k="3", output_per_1k="3")

    assert card.version == 3
    assert RateCard.objects.current().filter(model="m").get() == card


def test_publishing_is_audited_with_the_acting_user():
    staff = UserFactory.create(is_staff=True)

    card = rate_card_publish(service=Service.TEXT, model="m", acting_user=staff, input_per_1k="1", output_per_1k="1")

    event = AuditEvent.objects.get(action="credits.rate_publish")
    assert (event.actor, event.target_id) == (staff, str(card.pk))
    assert event.metadata == {"service": "text", "model": "m", "version": 1}


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("service", "prices", "message"),
    [
        (Service.TEXT, {"input_per_1k": "0", "output_per_1k": "1"}, "greater than zero"),
        (Service.TEXT, {"input_per_1k": "-1", "output_per_1k": "1"}, "cannot be negative"),
        (Service.TEXT, {"input_per_1k": "1"}, "output tokens is required"),
        (Service.TEXT, {"input_per_1k": "1", "output_per_1k": "1", "cached_input_per_1k": "0"}, "greater than zero"),
        (Service.TEXT, {"input_per_1k": "0.00001", "output_per_1k": "1"}, "4 decimal places"),
        (Service.TEXT, {"input_per_1k": 0.5, "output_per_1k": "1"}, "not float"),
        (Service.TEXT, {"input_per_1k": "abc", "output_per_1k": "1"}, "not a number"),
        (Service.TEXT, {"input_per_1k": "1e12", "output_per_1k": "1"}, "too large"),
        (Service.EMBEDDINGS, {}, "input tokens is required"),
        (Service.IMAGE, {}, "at least one image price"),
        (Service.IMAGE, {"per_image": {"1024x1024": "0"}}, "greater than zero"),
        (Service.IMAGE, {"per_image": {"1024x1024": "-2"}}, "cannot be negative"),
        (Service.IMAGE, {"per_image": ["4"]}, "must be an object"),
        (Service.IMAGE, {"per_image": {"": "4"}}, "cannot be empty"),
        (Service.SPEECH, {}, "per 1k characters or credits per minute"),
        (Service.TRANSCRIPTION, {"per_minute": "0"}, "greater than zero"),
        (Service.VOICE_CLONE, {}, "per item is required"),
    ],
)
def test_publishing_refuses_invalid_prices(service, prices, message):
    publish(Service.TEXT, "keep", input_per_1k="1", output_per_1k="1")

    with pytest.raises(InvalidRate, match=message):
        publish(service, "m", **prices)

    assert not RateCard.objects.filter(model="m").exists()
    assert RateCard.objects.current().filter(model="keep").count() == 1


def test_a_free_model_may_have_zero_prices_but_not_negative_ones():
    card = publish(Service.TEXT, "free-model", is_free=True, input_per_1k="0", output_per_1k="0")

    assert quote(Service.TEXT, "free-model", input_tokens=5000, output_tokens=5000) == 0
    assert card.is_free
    with pytest.raises(InvalidRate, match="cannot be negative"):
        publish(Service.TEXT, "free-model", is_free=True, input_per_1k="-1", output_per_1k="0")


def test_an_invalid_update_leaves_the_current_card_in_place():
    current = publish(Service.TEXT, "m", input_per_1k="1", output_per_1k="1")

    with pytest.raises(InvalidRate):
        publish(Service.TEXT, "m", input_per_1k="0", output_per_1k="1")

    assert rate_card_current(service=Service.TEXT, model="m") == current


def test_publishing_refuses_fields_that_are_not_prices():
    with pytest.raises(InvalidRate, match="superseded_at, version"):
        publish(Service.TEXT, "m", input_per_1k="1", output_per_1k="1", version=7, superseded_at=None)


def test_publishing_refuses_an_unknown_service_or_an_empty_model():
    with pytest.raises(InvalidRate, match="Unknown service"):
        publish("telepathy", "m", per_unit="1")
    with pytest.raises(InvalidRate, match="Name the model"):
        publish(Service.VOICE_CLONE, "  ", per_unit="1")


def test_errors_are_reported_by_field():
    card = RateCard(service=Service.TEXT, model="m", input_per_1k=Decimal("-1"))

    errors = rate_card_errors(card)

    assert set(errors) == {"input_per_1k", "output_per_1k"}
    with pytest.raises(InvalidRate, match=r"cannot be negative.*is required"):
        rate_card_validate(card)


# ---------------------------------------------------------------------------- defaults


def test_default_cards_cover_the_built_in_models():
    published = rate_cards_seed_defaults()

    current = {(c.service, c.model) for c in RateCard.objects.current()}
    assert len(published) == len(DEFAULT_RATE_CARDS)
    assert {
        (Service.TEXT, "mock-chat"),
        (Service.EMBEDDINGS, "mock-embed"),
        (Service.IMAGE, "mock-image"),
        (Service.SPEECH, "mock-tts"),
        (Service.TRANSCRIPTION, "mock-whisper"),
        (Service.VOICE_CLONE, "mock-voice"),
    } <= current
    # Every model in the default catalog can be charged for.
    from apps.generation.models import AIModel

    for model in AIModel.objects.all():
        if model.supports_chat:
            assert (Service.TEXT, model.model_id) in current, model.model_id
        if model.supports_embeddings:
            assert (Service.EMBEDDINGS, model.model_id) in current, model.model_id
    assert quote(Service.TEXT, "mock-chat", input_tokens=100, output_tokens=100) > 0
    assert quote(Service.EMBEDDINGS, "mock-embed", input_tokens=100) > 0
    assert quote(Service.IMAGE, "mock-image", images=1, size="256x256", quality="") > 0
    assert quote(Service.SPEECH, "mock-tts", characters=100) > 0
    assert quote(Service.TRANSCRIPTION, "mock-whisper", audio_seconds=10) > 0
    assert quote(Service.VOICE_CLONE, "mock-voice", items=1) > 0
    assert quote(Service.TEXT, "gpt-4o", input_tokens=1000) > quote(Service.TEXT, "gpt-4o-mini", input_tokens=1000)


def test_seeding_defaults_again_changes_nothing_and_keeps_prices_staff_set():
    rate_cards_seed_defaults()
    staff_card = publish(Service.TEXT, "gpt-4o", input_per_1k="9", output_per_1k="9")
    count = RateCard.objects.count()

    again = rate_cards_seed_defaults()

    assert again == []
    assert RateCard.objects.count() == count
    assert rate_card_current(service=Service.TEXT, model="gpt-4o") == staff_card


def test_seed_demo_publishes_the_default_cards_once():
    first = io.StringIO()
    call_command("seed_demo", stdout=first)
    count = RateCard.objects.count()
    again = io.StringIO()
    call_command("seed_demo", stdout=again)

    assert count == len(DEFAULT_RATE_CARDS)
    assert f"default prices published for {count} model(s)" in first.getvalue()
    assert RateCard.objects.count() == count
    assert "rate cards" not in again.getvalue()


# ---------------------------------------------------------------------------- concurrency


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks")
@pytest.mark.django_db(transaction=True)
def test_concurrent_publishes_number_versions_without_gaps_and_leave_one_current():
    publish(Service.TEXT, "hot", input_per_1k="1", output_per_1k="1")
    workers, rounds = 6, 3
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            # Later rounds start while other publishers hold locks on the versions they saw.
            for round_ in range(rounds):
                publish(Service.TEXT, "hot", input_per_1k=f"{i + 2}.{round_}", output_per_1k="1")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    versions = sorted(RateCard.objects.filter(model="hot").values_list("version", flat=True))
    assert versions == list(range(1, workers * rounds + 2))
    assert RateCard.objects.current().filter(model="hot").count() == 1
