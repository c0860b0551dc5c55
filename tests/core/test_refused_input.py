"""Raw parameters that a view passes on to the database without a form (a lookup, an
idempotency key): input the database refuses is a 400, never a 500. On PostgreSQL a NUL byte in
text is refused by the driver; on SQLite the same requests find nothing or store the text."""

from __future__ import annotations

from typing import Any

import pytest

from apps.media.models import GenerationJob
from tests.conftest import Team
from tests.media.conftest import fund, image_model  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db

NUL = "bad\x00value"


@pytest.mark.parametrize(("url", "field"), [("/billing/subscribe/", "plan"), ("/billing/packs/buy/", "pack")])
def test_billing_lookups_with_a_nul_are_4xx(alpha: Team, client_for: Any, url: str, field: str) -> None:
    client = client_for(alpha.owner, alpha.workspace)
    response = client.post(url, {field: NUL, "interval": "month"})
    assert 400 <= response.status_code < 500


def test_studio_nonce_with_a_nul_is_4xx_and_makes_no_job(
    alpha: Team,
    image_model: Any,  # noqa: F811
    client_for: Any,
) -> None:
    fund(alpha.workspace)
    client = client_for(alpha.member, alpha.workspace)
    form = {"model": "mock-image", "prompt": "a tree", "size": "256x256", "quality": "standard", "n": 1}
    response = client.post("/studio/images/", {**form, "nonce": NUL})
    assert 400 <= response.status_code < 500
    assert not GenerationJob.objects.exists()


def test_query_parameters_with_a_nul_are_4xx(alpha: Team, client_for: Any) -> None:
    client = client_for(alpha.member, alpha.workspace)
    for url in ("/chat/?q=" + "%00", "/chat/?model=%00", "/studio/gallery/?kind=%00", "/credits/usage/?model=%00"):
        response = client.get(url)
        assert response.status_code < 500, url
