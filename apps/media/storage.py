"""Files of the media jobs: saving generated images (original + preview + thumbnail), private
download URLs, and checking uploads by their content.

Storage is Django's default storage: S3 (django-storages) when `AWS_*` are set, local media
otherwise. Nothing is public. `media_file_url` gives a short-lived presigned URL on S3, or a
signed link to `media:download` locally (see `download_token`).
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from apps.media.exceptions import MediaError
from apps.media.models import GenerationJob, MediaFile, MediaKind

if TYPE_CHECKING:
    from apps.accounts.models import User

PREVIEW_MAX = 1024
THUMBNAIL_MAX = 256
DEFAULT_URL_TTL = 300  # seconds
MIN_URL_TTL = 10  # the shortest life a caller may ask its links for (`url_ttl`)
TOKEN_SALT = "media.download"  # noqa: S105 (a namespace, not a secret)

# ------------------------------------------------------------------------------ saving images


def _is_s3(storage: Any = None) -> bool:
    # `__class__` sees through the lazy `default_storage`; no boto3 import to find out.
    storage = storage if storage is not None else default_storage
    return any(cls.__name__ == "S3Storage" for cls in storage.__class__.__mro__)


def _scaled(image: Any, longest: int, fmt: str, quality: int) -> tuple[bytes, int, int]:
    from PIL import Image

    copy = image.copy()
    copy.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    if copy.mode not in ("RGB", "RGBA"):
        copy = copy.convert("RGBA" if "A" in copy.getbands() else "RGB")
    out = io.BytesIO()
    copy.save(out, format=fmt, quality=quality, method=4)
    return out.getvalue(), copy.width, copy.height


def image_files_create(
    *, job: GenerationJob, data: bytes, metadata: dict[str, Any], expires_at: datetime | None = None
) -> MediaFile:
    """Save one generated image as the original (PNG) with a web preview (WebP, ≤ 1024 px) and
    a thumbnail (WebP, ≤ 256 px) as its derivatives. Returns the original's row."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise MediaError("The provider returned data that is not an image.", status_code=502) from exc
    if image.format != "PNG":
        out = io.BytesIO()
        image.save(out, format="PNG")
        data = out.getvalue()
    original = _file_create(
        job=job,
        kind=MediaKind.IMAGE,
        data=data,
        ext=".png",
        content_type="image/png",
        width=image.width,
        height=image.height,
        metadata=metadata,
        expires_at=expires_at,
    )
    for kind, longest, quality in ((MediaKind.PREVIEW, PREVIEW_MAX, 82), (MediaKind.THUMBNAIL, THUMBNAIL_MAX, 75)):
        scaled, width, height = _scaled(image, longest, "WEBP", quality)
        _file_create(
            job=job,
            kind=kind,
            data=scaled,
            ext=".webp",
            content_type="image/webp",
            width=width,
            height=height,
            metadata={},
            parent=original,
            expires_at=expires_at,
        )
    return original


def _file_create(
    *,
    job: GenerationJob | None,
    kind: str,
    data: bytes,
    ext: str,
    content_type: str,
    metadata: dict[str, Any],
    width: int | None = None,
    height: int | None = None,
    parent: MediaFile | None = None,
    expires_at: datetime | None = None,
    workspace_id: int | None = None,
    duration: Decimal | None = None,
) -> MediaFile:
    owner = job.workspace_id if job is not None else workspace_id
    if owner is None:
        raise ValueError("A media file needs a job or a workspace.")
    row = MediaFile(
        workspace_id=owner,
        job=job,
        kind=kind,
        content_type=content_type,
        size=len(data),
        width=width,
        height=height,
        duration=duration,
        metadata=metadata,
        parent=parent,
        expires_at=expires_at,
    )
    # The file is written first, then the row: a crash in between leaves a file without a row
    # (never a row without its file), which only costs storage.
    row.file.save(f"file{ext}", ContentFile(data), save=False)
    row.save()
    return row


def audio_file_create(
    *,
    job: GenerationJob,
    data: bytes,
    fmt: str,
    content_type: str,
    duration: Decimal | None,
    metadata: dict[str, Any],
) -> MediaFile:
    """Save generated speech as a MediaFile of kind audio."""
    return _file_create(
        job=job,
        kind=MediaKind.AUDIO,
        data=data,
        ext=f".{fmt}",
        content_type=content_type,
        metadata=metadata,
        duration=duration,
    )


def transcript_file_create(*, job: GenerationJob, text: str, fmt: str, metadata: dict[str, Any]) -> MediaFile:
    """Save a transcript, in the format that was asked for, as a MediaFile of kind transcript."""
    from apps.generation.providers.audio import TRANSCRIPT_CONTENT_TYPES

    ext = {"json": ".json", "verbose_json": ".json", "text": ".txt", "srt": ".srt", "vtt": ".vtt"}[fmt]
    return _file_create(
        job=job,
        kind=MediaKind.TRANSCRIPT,
        data=text.encode(),
        ext=ext,
        content_type=TRANSCRIPT_CONTENT_TYPES[fmt],
        metadata=metadata,
    )


MB = 1024 * 1024
MAX_AUDIO_UPLOAD_BYTES = 25 * MB  # OpenAI's limit for transcriptions; plans may set a lower one


def audio_upload_create(
    *,
    workspace_id: int,
    file: IO[bytes],
    filename: str = "",
    max_bytes: int = MAX_AUDIO_UPLOAD_BYTES,
    plan_name: str = "",
) -> MediaFile:
    """Check an uploaded audio file by its content (size first, then `probe_audio`, which also
    measures its real duration) and store it as a MediaFile of kind upload, not yet attached
    to a job. Raises MediaError (413 `too_large`, naming `plan_name` when the limit is the
    plan's; 400 `invalid_file`) with a message for the person who uploaded it."""
    from apps.core.audio import AudioError, probe_audio

    size = getattr(file, "size", None)
    if size is None:
        file.seek(0, io.SEEK_END)
        size = file.tell()
    if size > max_bytes:
        whose = f"the {plan_name} plan's limit" if plan_name else "the limit"
        raise MediaError(
            f"The file is too large: {size / MB:.1f} MB ({whose} is {max_bytes / MB:g} MB).",
            status_code=413,
            param="file",
            code="too_large",
        )
    if size == 0:
        raise MediaError("The file is empty.", param="file", code="invalid_file")
    file.seek(0)
    data = file.read()
    try:
        info = probe_audio(data)
    except AudioError as exc:
        raise MediaError(exc.message, param="file", code="invalid_file") from exc
    name = (filename or "audio").rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:200]
    ext = ".ogg" if info.kind == "opus" else f".{info.kind}"
    return _file_create(
        job=None,
        workspace_id=workspace_id,
        kind=MediaKind.UPLOAD,
        data=data,
        ext=ext,
        content_type=info.content_type,
        metadata={"filename": name, "audio_kind": info.kind},
        duration=info.duration_seconds,
    )


def media_file_delete_stored(media_file: MediaFile) -> None:
    """Remove the stored bytes (a missing file is fine: deleting twice changes nothing)."""
    name = media_file.file.name
    if name:
        with contextlib.suppress(FileNotFoundError):
            media_file.file.storage.delete(name)


# ------------------------------------------------------------------------------ listing stored files

MEDIA_PREFIX = "ws"  # every MediaFile is stored under it (`media_upload_to`)


def stored_media_files(*, modified_before: datetime, storage: Any = None, page_size: int = 1000) -> Iterator[str]:
    """The names (as a FileField stores them) of the stored files under the media prefix that
    were last written before `modified_before`. S3 is listed page by page (`list_objects_v2`,
    `page_size` keys a request, with their modification times: no request per file); local
    storage is walked with `listdir`."""
    storage = storage if storage is not None else default_storage
    if _is_s3(storage):
        yield from _s3_files(storage, modified_before, page_size)
    else:
        yield from _local_files(storage, MEDIA_PREFIX, modified_before)


def _s3_files(storage: Any, modified_before: datetime, page_size: int) -> Iterator[str]:
    # Keys include the storage's `location`; FileField names do not.
    location = (storage.location or "").strip("/")
    root = f"{location}/" if location else ""
    paginator = storage.bucket.meta.client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=storage.bucket_name, Prefix=f"{root}{MEDIA_PREFIX}/", PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        for item in page.get("Contents", []):
            if item["LastModified"] < modified_before:
                yield item["Key"][len(root) :]


def _local_files(storage: Any, directory: str, modified_before: datetime) -> Iterator[str]:
    try:
        directories, files = storage.listdir(directory)
    except FileNotFoundError:
        return
    for name in sorted(directories):
        yield from _local_files(storage, f"{directory}/{name}", modified_before)
    for name in sorted(files):
        path = f"{directory}/{name}"
        with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
            if storage.get_modified_time(path) < modified_before:
                yield path


# ------------------------------------------------------------------------------ download URLs


def download_token(*, media_file: MediaFile, ttl: int, user: User | None) -> str:
    """A signed token for `media:download`, valid `ttl` seconds. Bound to `user` when given
    (then only a member of the file's workspace may use it — the web pages); unbound tokens
    (for API clients, which have no session) are bearer links, like an S3 presigned URL."""
    payload = {"f": media_file.pk, "w": media_file.workspace_id, "e": int(time.time()) + int(ttl)}
    if user is not None:
        payload["u"] = 1
    return signing.dumps(payload, salt=TOKEN_SALT, compress=False)


def download_token_read(token: str) -> dict[str, int] | None:
    """The payload of a valid, unexpired token; None otherwise."""
    try:
        payload = signing.loads(token, salt=TOKEN_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict) or int(payload.get("e", 0)) < time.time():
        return None
    return payload


def url_ttl(value: Any, *, maximum: int = DEFAULT_URL_TTL, name: str = "link_ttl") -> int:
    """The life in seconds a caller asked for its download links (a query or body value):
    whole seconds from MIN_URL_TTL to `maximum`, which is also the default. Anything else is
    a MediaError (400 naming `name`). API keys get bearer links (see `download_token`): a
    caller that only needs a link for a moment should not leave one valid for minutes."""
    if value is None or value == "":
        return maximum
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 9:
        number = int(value.strip())
    if number is None or not MIN_URL_TTL <= number <= maximum:
        raise MediaError(f"{name}: give whole seconds from {MIN_URL_TTL} to {maximum}.", param=name)
    return number


def media_file_url(
    media_file: MediaFile, *, ttl: int = DEFAULT_URL_TTL, user: User | None = None, download: bool = False
) -> str:
    """Where `media_file` can be fetched for the next `ttl` seconds: a presigned S3 URL, or a
    signed path to the local download view (make it absolute with `build_absolute_uri`)."""
    filename = media_file.file.name.rsplit("/", 1)[-1]
    storage = media_file.file.storage
    if _is_s3(storage):
        parameters = {"ResponseContentType": media_file.content_type}
        if download:
            parameters["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return str(storage.url(media_file.file.name, parameters=parameters, expire=ttl))
    path = reverse("media:download", args=[download_token(media_file=media_file, ttl=ttl, user=user)])
    return f"{path}?download=1" if download else path


# ------------------------------------------------------------------------------ uploads

IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
AUDIO_SIGNATURES: list[tuple[int, bytes, str]] = [
    (0, b"ID3", "audio/mpeg"),
    (0, b"\xff\xfb", "audio/mpeg"),
    (0, b"\xff\xf3", "audio/mpeg"),
    (0, b"\xff\xf2", "audio/mpeg"),
    (0, b"OggS", "audio/ogg"),
    (0, b"fLaC", "audio/flac"),
    (0, b"\x1a\x45\xdf\xa3", "audio/webm"),
    (4, b"ftyp", "audio/mp4"),
]


@dataclass(frozen=True)
class UploadInfo:
    kind: str  # "image" or "audio"
    content_type: str
    size: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None  # seconds, measured from the file


def _sniff(head: bytes) -> tuple[str, str] | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image", "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image", "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image", "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image", "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio", "audio/wav"
    for offset, magic, content_type in AUDIO_SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return "audio", content_type
    return None


def validate_upload(file: IO[bytes], *, kinds: set[str] | frozenset[str], max_bytes: int) -> UploadInfo:
    """Check an upload by what it contains, not its name: the type from its first bytes, then
    a full parse (Pillow for images, mutagen for audio, which also measures the duration).
    Raises MediaError: 413 when larger than `max_bytes`, 400 when of another type or corrupt."""
    limit_mb = max_bytes / (1024 * 1024)
    size = getattr(file, "size", None)
    if size is None:
        file.seek(0, io.SEEK_END)
        size = file.tell()
    if size > max_bytes:
        raise MediaError(f"The file is too large: the limit is {limit_mb:g} MB.", status_code=413, code="too_large")
    if size == 0:
        raise MediaError("The file is empty.", code="invalid_file")
    file.seek(0)
    head = file.read(32)
    file.seek(0)
    sniffed = _sniff(head)
    wanted = " or ".join(sorted(kinds))
    if sniffed is None or sniffed[0] not in kinds:
        raise MediaError(f"This file is not a supported {wanted} file (its content was checked).", code="invalid_file")
    kind, content_type = sniffed
    try:
        if kind == "image":
            return _check_image(file, size, content_type)
        return _check_audio(file, size, content_type)
    finally:
        file.seek(0)


def _check_image(file: IO[bytes], size: int, content_type: str) -> UploadInfo:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image.verify()
        file.seek(0)
        with Image.open(file) as image:
            image.load()  # verify() misses truncated pixel data
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError("The image is corrupt or truncated.", code="invalid_file") from exc
    return UploadInfo("image", content_type, size, width=width, height=height)


def _check_audio(file: IO[bytes], size: int, content_type: str) -> UploadInfo:
    import mutagen

    try:
        audio = mutagen.File(file)
    except Exception as exc:  # mutagen raises many kinds of errors for damaged files
        raise MediaError("The audio file is corrupt or unreadable.", code="invalid_file") from exc
    length = getattr(getattr(audio, "info", None), "length", None) if audio is not None else None
    if not length or length <= 0:
        raise MediaError("The audio file is corrupt or has no playable audio.", code="invalid_file")
    return UploadInfo("audio", content_type, size, duration=float(length))
