"""Prompt presets: create, edit, publish to the workspace, delete, use (fill the template with
checked values, counted), favourite. The library is seeded and edited by staff (admin).

Who may do what, in a workspace:
- anyone with `Perm.USE` creates personal presets and uses every preset they can see (their own,
  the workspace's, the library's);
- only the owner of a personal preset edits or deletes it;
- owners and admins (`Perm.MANAGE_CONTENT`) publish presets to the workspace and edit or delete
  the workspace's presets. Publishing and deleting a workspace preset are audited."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.services import audit_record
from apps.presets.exceptions import PresetError
from apps.presets.models import MAX_TEMPLATE, Preset, PresetFavourite
from apps.presets.variables import clean_variables, fill
from apps.workspaces.roles import Perm
from apps.workspaces.services import has_perm, require_perm

if TYPE_CHECKING:
    from apps.accounts.models import User
    from apps.generation.models import AIModel
    from apps.workspaces.models import Workspace

EDITABLE = (
    "name",
    "description",
    "category",
    "tags",
    "icon",
    "template",
    "variables",
    "default_model",
    "temperature",
    "system_prompt",
    "output",
)
MAX_TAGS = 10


@dataclass(frozen=True)
class Rendered:
    """A preset filled in: the prompt, and the defaults it brings along."""

    preset: Preset
    prompt: str
    system_prompt: str
    model: AIModel | None
    temperature: Decimal | None
    output: str


def _may_manage(workspace: Workspace, user: User) -> bool:
    return has_perm(workspace=workspace, user=user, perm=Perm.MANAGE_CONTENT)


def _clean(fields: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise PresetError(f"Unknown field {sorted(unknown)[0]}.", param=sorted(unknown)[0])
    cleaned = dict(fields)
    if "name" in cleaned:
        name = " ".join(str(cleaned["name"] or "").split())
        if not name or len(name) > 100:
            raise PresetError("Give the preset a name of at most 100 characters.", param="name")
        cleaned["name"] = name
    if "description" in cleaned:
        cleaned["description"] = " ".join(str(cleaned["description"] or "").split())[:300]
    if "category" in cleaned and cleaned["category"] not in Preset.Category.values:
        raise PresetError("Pick one of the categories.", param="category")
    if "output" in cleaned and cleaned["output"] not in Preset.Output.values:
        raise PresetError("The output is chat, document or image.", param="output")
    if "icon" in cleaned:
        cleaned["icon"] = str(cleaned["icon"] or "").strip()[:8]
    if "tags" in cleaned:
        raw = cleaned["tags"]
        tags = raw.split(",") if isinstance(raw, str) else list(raw or [])
        names: list[str] = []
        for tag in tags:
            tag = " ".join(str(tag).split())[:40]
            if tag and tag.lower() not in (n.lower() for n in names):
                names.append(tag)
        if len(names) > MAX_TAGS:
            raise PresetError(f"At most {MAX_TAGS} tags.", param="tags")
        cleaned["tags"] = names
    if "template" in cleaned:
        template = str(cleaned["template"] or "").replace("\r\n", "\n").replace("\x00", "")
        if not template.strip():
            raise PresetError("Write the prompt template.", param="template")
        if len(template) > MAX_TEMPLATE:
            raise PresetError(f"The template is at most {MAX_TEMPLATE:,} characters.", param="template")
        cleaned["template"] = template
    if "system_prompt" in cleaned:
        cleaned["system_prompt"] = str(cleaned["system_prompt"] or "").replace("\x00", "")[:MAX_TEMPLATE]
    if "temperature" in cleaned and cleaned["temperature"] not in (None, ""):
        try:
            temperature = Decimal(str(cleaned["temperature"]))
        except InvalidOperation:
            raise PresetError("The temperature is a number from 0 to 2.", param="temperature") from None
        if not temperature.is_finite() or not Decimal(0) <= temperature <= Decimal(2):
            raise PresetError("The temperature is a number from 0 to 2.", param="temperature")
        cleaned["temperature"] = temperature.quantize(Decimal("0.01"))
    elif "temperature" in cleaned:
        cleaned["temperature"] = None
    return cleaned


def _apply(preset: Preset, fields: Mapping[str, Any]) -> None:
    cleaned = _clean(fields)
    for name, value in cleaned.items():
        setattr(preset, name, value)
    # The variables always match the template as saved.
    preset.variables = clean_variables(preset.template, cleaned.get("variables", preset.variables))


def may_edit(preset: Preset, user: User, *, manages: bool | None = None) -> bool:
    """Whether `user` may change or delete `preset` (pages show the buttons by it). A list page
    passes `manages` (the user's `Perm.MANAGE_CONTENT` in the workspace it shows) to ask once."""
    if preset.scope == Preset.Scope.LIBRARY or preset.workspace_id is None:
        return False
    if preset.scope == Preset.Scope.PERSONAL:
        return preset.owner_id == user.pk
    if manages is None:
        assert preset.workspace is not None
        return _may_manage(preset.workspace, user)
    return manages


def _require_edit(preset: Preset, user: User) -> None:
    if preset.scope == Preset.Scope.LIBRARY or preset.workspace is None:
        raise PresetError("Library presets are edited by staff.", param="preset", status_code=403)
    require_perm(workspace=preset.workspace, user=user, perm=Perm.USE)
    if preset.scope == Preset.Scope.PERSONAL and preset.owner_id != user.pk:
        raise PresetError("Only its owner can change a personal preset.", param="preset", status_code=403)
    if preset.scope == Preset.Scope.WORKSPACE and not _may_manage(preset.workspace, user):
        raise PresetError(
            "Only workspace owners and admins can change the workspace's presets.", param="preset", status_code=403
        )


@transaction.atomic(durable=True)
def preset_create(*, workspace: Workspace, user: User, scope: str = Preset.Scope.PERSONAL, **fields: Any) -> Preset:
    require_perm(workspace=workspace, user=user, perm=Perm.USE)
    if scope not in (Preset.Scope.PERSONAL, Preset.Scope.WORKSPACE):
        raise PresetError("A preset is personal or shared with the workspace.", param="scope")
    if scope == Preset.Scope.WORKSPACE and not _may_manage(workspace, user):
        raise PresetError(
            "Only workspace owners and admins can share presets with the workspace.", param="scope", status_code=403
        )
    preset = Preset(workspace=workspace, owner=user, scope=scope)
    if "name" not in fields or "template" not in fields:
        raise PresetError("A preset needs a name and a template.", param="name" if "name" not in fields else "template")
    _apply(preset, fields)
    preset.save()
    if scope == Preset.Scope.WORKSPACE:
        audit_record(actor=user, action="preset.publish", target=preset, workspace=workspace)
    return preset


@transaction.atomic(durable=True)
def preset_update(*, preset: Preset, user: User, **fields: Any) -> Preset:
    _require_edit(preset, user)
    _apply(preset, fields)
    preset.updated_at = timezone.now()
    preset.save()
    return preset


@transaction.atomic(durable=True)
def preset_publish(*, preset: Preset, user: User) -> Preset:
    """Share a personal preset with the whole workspace (owners and admins)."""
    _require_edit(preset, user)
    assert preset.workspace is not None
    if not _may_manage(preset.workspace, user):
        raise PresetError(
            "Only workspace owners and admins can share presets with the workspace.", param="scope", status_code=403
        )
    if preset.scope != Preset.Scope.WORKSPACE:
        preset.scope = Preset.Scope.WORKSPACE
        preset.updated_at = timezone.now()
        preset.save(update_fields=["scope", "updated_at"])
        audit_record(actor=user, action="preset.publish", target=preset, workspace=preset.workspace)
    return preset


@transaction.atomic(durable=True)
def preset_delete(*, preset: Preset, user: User) -> None:
    _require_edit(preset, user)
    if preset.scope == Preset.Scope.WORKSPACE:
        audit_record(
            actor=user,
            action="preset.delete",
            target=preset,
            workspace=preset.workspace,
            metadata={"name": preset.name},
        )
    preset.delete()


def preset_render(*, preset: Preset, values: Mapping[str, Any]) -> Rendered:
    """Fill the preset with `values` (checked against its variables; every problem reported at
    once), with its defaults. Nothing is recorded: see `preset_use`."""
    prompt = fill(preset.template, preset.variables, values)
    return Rendered(
        preset=preset,
        prompt=prompt,
        system_prompt=preset.system_prompt,
        model=preset.default_model,
        temperature=preset.temperature,
        output=preset.output,
    )


def preset_use(*, preset: Preset, user: User, workspace: Workspace, values: Mapping[str, Any]) -> Rendered:
    """Render the preset for `user` in `workspace` and count the use."""
    require_perm(workspace=workspace, user=user, perm=Perm.USE)
    rendered = preset_render(preset=preset, values=values)
    Preset.objects.filter(pk=preset.pk).update(usage_count=F("usage_count") + 1, last_used_at=timezone.now())
    return rendered


def preset_favourite(*, preset: Preset, user: User, favourite: bool) -> bool:
    """Mark or unmark the preset as one of the user's favourites; returns the new state."""
    if favourite:
        PresetFavourite.objects.get_or_create(user=user, preset=preset)
    else:
        PresetFavourite.objects.filter(user=user, preset=preset).delete()
    return favourite


# ---------------------------------------------------------------------------- the library (staff)


@transaction.atomic(durable=True)
def preset_library_save(*, preset: Preset, acting_user: User | None) -> Preset:
    """Save a library preset edited by staff (its variables checked against its template), audited."""
    preset.scope, preset.workspace, preset.owner = Preset.Scope.LIBRARY, None, None
    _apply(preset, {name: getattr(preset, name) for name in EDITABLE})
    created = preset.pk is None
    preset.updated_at = timezone.now()
    preset.save()
    audit_record(
        actor=acting_user,
        action="preset.library_create" if created else "preset.library_update",
        target=preset,
        metadata={"name": preset.name},
    )
    return preset


@transaction.atomic(durable=True)
def preset_library_delete(*, preset: Preset, acting_user: User | None) -> None:
    audit_record(actor=acting_user, action="preset.library_delete", target=preset, metadata={"name": preset.name})
    preset.delete()
