"""Presets: scopes (personal, workspace, library) and who sees and changes them, publishing and
deleting audited, use counted, favourites, the seeded library."""

from __future__ import annotations

from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.presets import services
from apps.presets.exceptions import PresetError, PresetValuesInvalid
from apps.presets.library import LIBRARY, presets_seed_library
from apps.presets.models import Preset
from apps.presets.selectors import PresetFilters, visible_preset, visible_presets
from apps.workspaces.exceptions import WorkspacePermissionDenied
from tests.conftest import Team

pytestmark = pytest.mark.django_db


def personal(team: Team, user: Any = None, name: str = "Mine", **fields: Any) -> Preset:
    return services.preset_create(
        workspace=team.workspace, user=user or team.member, name=name, template="Tell me about {{topic}}", **fields
    )


def names(team: Team, user: Any, **filters: Any) -> list[str]:
    return [p.name for p in visible_presets(workspace=team.workspace, user=user, filters=PresetFilters(**filters))]


def test_a_personal_preset_is_seen_by_its_owner_only(alpha: Team, beta: Team) -> None:
    preset = personal(alpha)
    assert names(alpha, alpha.member) == ["Mine"]
    assert names(alpha, alpha.admin) == []
    assert names(beta, beta.owner) == []
    assert visible_preset(workspace=beta.workspace, user=beta.owner, preset_id=preset.pk) is None
    assert preset.variables == [
        {"name": "topic", "label": "Topic", "type": "short", "required": True, "max_length": 500}
    ]


def test_owners_and_admins_publish_to_the_workspace_and_it_is_audited(alpha: Team, beta: Team) -> None:
    with pytest.raises(PresetError, match="owners and admins") as refused:
        personal(alpha, scope="workspace")
    assert refused.value.status_code == 403
    shared = personal(alpha, alpha.admin, name="Team's", scope="workspace")
    assert names(alpha, alpha.member) == ["Team's"]
    assert names(beta, beta.member) == []
    mine = personal(alpha, alpha.admin, name="Admin's")
    services.preset_publish(preset=mine, user=alpha.admin)
    assert sorted(names(alpha, alpha.member)) == ["Admin's", "Team's"]
    assert AuditEvent.objects.filter(action="preset.publish").count() == 2
    # Members use it but cannot change or delete it.
    with pytest.raises(PresetError, match="owners and admins"):
        services.preset_update(preset=shared, user=alpha.member, name="Hijacked")
    services.preset_delete(preset=shared, user=alpha.owner)
    assert AuditEvent.objects.get(action="preset.delete").metadata == {"name": "Team's"}


def test_only_the_owner_changes_a_personal_preset(alpha: Team) -> None:
    preset = personal(alpha)
    with pytest.raises(PresetError, match="Only its owner"):
        services.preset_update(preset=preset, user=alpha.owner, name="x")
    updated = services.preset_update(preset=preset, user=alpha.member, template="Explain {{thing}} to {{who}}")
    assert [v["name"] for v in updated.variables] == ["thing", "who"]


def test_outsiders_can_neither_create_nor_use(alpha: Team, beta: Team) -> None:
    with pytest.raises(WorkspacePermissionDenied):
        personal(alpha, beta.owner)
    preset = personal(alpha)
    with pytest.raises(WorkspacePermissionDenied):
        services.preset_use(preset=preset, user=beta.owner, workspace=alpha.workspace, values={"topic": "x"})


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"name": ""}, "name"),
        ({"template": "  "}, "template"),
        ({"category": "poetry"}, "category"),
        ({"output": "video"}, "output"),
        ({"temperature": "3"}, "temperature"),
        ({"tags": ",".join(str(n) for n in range(11))}, "tags"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(alpha: Team, fields: dict[str, Any], param: str) -> None:
    preset = personal(alpha)
    with pytest.raises(PresetError) as refused:
        services.preset_update(preset=preset, user=alpha.member, **fields)
    assert refused.value.param == param


def test_using_a_preset_renders_it_counts_the_use_and_keeps_its_defaults(alpha: Team) -> None:
    preset = personal(alpha, system_prompt="Be brief.", temperature="0.3", output="document")
    rendered = services.preset_use(preset=preset, user=alpha.member, workspace=alpha.workspace, values={"topic": "tea"})
    assert (rendered.prompt, rendered.system_prompt, str(rendered.temperature), rendered.output) == (
        "Tell me about tea",
        "Be brief.",
        "0.30",
        "document",
    )
    with pytest.raises(PresetValuesInvalid):
        services.preset_use(preset=preset, user=alpha.member, workspace=alpha.workspace, values={})
    preset.refresh_from_db()
    assert preset.usage_count == 1
    assert preset.last_used_at is not None


def test_favourites_come_first_and_filter(alpha: Team) -> None:
    personal(alpha, name="Alpha")
    zulu = personal(alpha, name="Zulu")
    services.preset_favourite(preset=zulu, user=alpha.member, favourite=True)
    services.preset_favourite(preset=zulu, user=alpha.member, favourite=True)  # once
    assert names(alpha, alpha.member) == ["Zulu", "Alpha"]
    assert names(alpha, alpha.member, favourites=True) == ["Zulu"]
    services.preset_favourite(preset=zulu, user=alpha.member, favourite=False)
    assert names(alpha, alpha.member, favourites=True) == []


def test_the_library_has_useful_presets_for_every_kind_of_work_and_seeds_once(alpha: Team) -> None:
    assert presets_seed_library() == len(LIBRARY) >= 20
    assert presets_seed_library() == 0
    categories = set(Preset.objects.filter(scope="library").values_list("category", flat=True))
    assert {"writing", "marketing", "code", "summarising", "translation", "image"} <= categories
    # Everyone sees the library; staff can hide a preset, and seeding again leaves their edits.
    assert len(names(alpha, alpha.member, scope="library")) == len(LIBRARY)
    blog = Preset.objects.get(scope="library", name="Blog post")
    blog.description, blog.is_active = "Edited by staff", False
    services.preset_library_save(preset=blog, acting_user=None)
    presets_seed_library()
    blog.refresh_from_db()
    assert (blog.description, blog.is_active) == ("Edited by staff", False)
    assert "Blog post" not in names(alpha, alpha.member)
    assert AuditEvent.objects.get(action="preset.library_update").metadata == {"name": "Blog post"}
    # Every library preset renders with its defaults and one value per required variable.
    for preset in Preset.objects.filter(scope="library"):
        values = {v["name"]: v.get("options", ["x"])[0] if v["type"] == "select" else "12" for v in preset.variables}
        if any(v["type"] == "number" for v in preset.variables):
            values.update({v["name"]: v.get("min") or "1" for v in preset.variables if v["type"] == "number"})
        assert services.preset_render(preset=preset, values=values).prompt
    with pytest.raises(PresetError, match="edited by staff"):
        services.preset_update(preset=blog, user=alpha.owner, name="x")
