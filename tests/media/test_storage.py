"""Private files: the signed local download view, presigned S3 URLs against a local
moto_server, and upload validation by content."""

from __future__ import annotations

import io
import math
import struct
import time
import urllib.request
import wave
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from apps.generation.models import AIModel
from apps.media.exceptions import MediaError
from apps.media.models import MediaFile, MediaKind
from apps.media.storage import download_token, media_file_url, validate_upload
from tests.conftest import Team
from tests.media.conftest import fund, image_job

pytestmark = pytest.mark.django_db


def make_image(team: Team, model: AIModel, capture: Any, key: str = "img") -> MediaFile:
    fund(team.workspace, key=key)
    return MediaFile.objects.get(job=image_job(team, model, capture, key, prompt="storage test"), kind=MediaKind.IMAGE)


# ---------------------------------------------------------------------------- local signed view


def test_member_downloads_with_a_valid_token(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image(alpha, image_model, django_capture_on_commit_callbacks)
    url = media_file_url(image, ttl=60, user=alpha.owner)
    response = client_for(alpha.owner, alpha.workspace).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content) == image.file.open("rb").read()


def test_download_attachment(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image(alpha, image_model, django_capture_on_commit_callbacks)
    response = client_for(alpha.member, alpha.workspace).get(media_file_url(image, user=alpha.member, download=True))
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")


def test_expired_or_forged_token_is_404(
    alpha: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image(alpha, image_model, django_capture_on_commit_callbacks)
    client = client_for(alpha.owner, alpha.workspace)
    expired = download_token(media_file=image, ttl=-1, user=alpha.owner)
    assert client.get(f"/studio/files/{expired}/").status_code == 404
    token = download_token(media_file=image, ttl=60, user=alpha.owner)
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    assert client.get(f"/studio/files/{forged}/").status_code == 404
    assert client.get("/studio/files/not-a-token/").status_code == 404


@pytest.mark.outsider("media:download")
def test_other_workspace_member_and_anonymous_get_404(
    alpha: Team, beta: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image(alpha, image_model, django_capture_on_commit_callbacks)
    url = media_file_url(image, ttl=60, user=alpha.owner)
    assert client_for(beta.owner, beta.workspace).get(url).status_code == 404
    assert Client().get(url).status_code == 404


def test_unbound_token_for_api_clients_needs_no_session(
    alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image(alpha, image_model, django_capture_on_commit_callbacks)
    response = Client().get(media_file_url(image, ttl=60))
    assert response.status_code == 200


# ---------------------------------------------------------------------------- S3 (moto_server)


def test_presigned_s3_url_downloads_the_right_bytes(
    s3: str, alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image(alpha, image_model, django_capture_on_commit_callbacks)
    stored = image.file.open("rb").read()
    assert stored.startswith(b"\x89PNG")
    url = media_file_url(image, ttl=60, download=True)
    assert "Signature=" in url or "X-Amz-Signature=" in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == stored
        assert response.headers["Content-Disposition"].startswith("attachment")
    # Without the signature the bucket refuses: files are private.
    bare = url.split("?", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(bare, timeout=10)
    assert exc.value.code == 403


def test_presigned_url_lives_for_the_ttl_asked(
    s3: str, alpha: Team, image_model: AIModel, django_capture_on_commit_callbacks: Any
) -> None:
    # moto_server does not enforce expiry, so the signed lifetime is checked in the URL itself.
    from urllib.parse import parse_qs, urlparse

    image = make_image(alpha, image_model, django_capture_on_commit_callbacks)
    query = parse_qs(urlparse(media_file_url(image, ttl=42)).query)
    if "X-Amz-Expires" in query:
        assert query["X-Amz-Expires"] == ["42"]
    else:
        assert abs(int(query["Expires"][0]) - (time.time() + 42)) < 5


def test_outsider_cannot_get_a_url_for_another_workspaces_file(
    s3: str, alpha: Team, beta: Team, image_model: AIModel, client_for: Any, django_capture_on_commit_callbacks: Any
) -> None:
    image = make_image(alpha, image_model, django_capture_on_commit_callbacks)
    client = client_for(beta.owner, beta.workspace)
    assert client.get(f"/studio/jobs/{image.job_id}/").status_code == 404
    assert client.get(f"/api/v1/jobs/{image.job_id}/").status_code == 404
    own = client_for(alpha.owner, alpha.workspace).get(f"/api/v1/jobs/{image.job_id}/").json()
    url = own["results"][0]["url"]
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == image.file.open("rb").read()


# ---------------------------------------------------------------------------- uploads


def png_bytes(size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(rate * seconds))
        )
        w.writeframes(frames)
    return out.getvalue()


def upload(data: bytes, name: str = "file.bin") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data)


def test_valid_image_and_audio_uploads() -> None:
    info = validate_upload(upload(png_bytes((40, 30)), "x.png"), kinds={"image"}, max_bytes=1_000_000)
    assert (info.kind, info.content_type, info.width, info.height) == ("image", "image/png", 40, 30)
    audio = validate_upload(upload(wav_bytes(1.5), "x.wav"), kinds={"audio"}, max_bytes=1_000_000)
    assert audio.kind == "audio"
    assert audio.content_type == "audio/wav"
    assert audio.duration == pytest.approx(1.5, abs=0.01)


def test_wrong_type_by_content_is_refused_whatever_the_name() -> None:
    with pytest.raises(MediaError, match="not a supported audio") as exc:
        validate_upload(upload(png_bytes(), "song.mp3"), kinds={"audio"}, max_bytes=1_000_000)
    assert exc.value.status_code == 400
    with pytest.raises(MediaError, match="not a supported image"):
        validate_upload(upload(b"%PDF-1.7 not an image", "x.png"), kinds={"image"}, max_bytes=1_000_000)


def test_too_large_upload_is_413() -> None:
    with pytest.raises(MediaError, match="too large") as exc:
        validate_upload(upload(wav_bytes(1.0)), kinds={"audio"}, max_bytes=1000)
    assert exc.value.status_code == 413


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_corrupt_files_are_refused(kind: str) -> None:
    data = png_bytes((64, 64))[:60] if kind == "image" else wav_bytes(1.0)[:44] + b""
    if kind == "audio":
        data = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20  # a header and nothing playable
    with pytest.raises(MediaError, match="corrupt") as exc:
        validate_upload(upload(data), kinds={kind}, max_bytes=1_000_000)
    assert exc.value.status_code == 400


def test_empty_upload_is_refused() -> None:
    with pytest.raises(MediaError, match="empty"):
        validate_upload(upload(b""), kinds={"image"}, max_bytes=1000)
