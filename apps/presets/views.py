"""The preset pages: the list (search, category, mine / workspace / library, favourites), create
and edit (the variables edited row by row), and the page that fills a preset's variables and
hands the prompt to chat or the image studio (their `…from_preset` endpoints render it again with
the preset's own checks and count the use)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.http import WorkspaceRequest
from apps.generation.models import AIModel, Capability
from apps.presets.exceptions import PresetError, PresetValuesInvalid
from apps.presets.forms import TYPE_LABELS, TYPES, PresetFilterForm, PresetForm, definitions, values_form, variable_rows
from apps.presets.models import Preset
from apps.presets.selectors import visible_preset, visible_presets
from apps.presets.services import (
    may_edit,
    preset_create,
    preset_delete,
    preset_favourite,
    preset_publish,
    preset_update,
    preset_use,
)
from apps.workspaces.decorators import workspace_required
from apps.workspaces.roles import Perm
from apps.workspaces.services import has_perm

PAGE_SIZE = 24


def _preset(request: WorkspaceRequest, preset_id: int) -> Preset:
    preset = visible_preset(workspace=request.workspace, user=request.user, preset_id=preset_id)
    if preset is None:
        raise Http404("No such preset.")
    return preset


def _can_share(request: WorkspaceRequest) -> bool:
    return has_perm(workspace=request.workspace, user=request.user, perm=Perm.MANAGE_CONTENT)


@workspace_required(Perm.USE)
@require_GET
def preset_list(request: WorkspaceRequest) -> HttpResponse:
    form = PresetFilterForm(request.GET)
    context: dict[str, Any] = {"form": form}
    if not form.is_valid():
        context["filter_error"] = form.error_text()
        return render(request, "presets/list.html", context, status=400)
    qs = visible_presets(workspace=request.workspace, user=request.user, filters=form.filters())
    manages = _can_share(request)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    context.update(
        page_obj=page,
        presets=[(p, may_edit(p, request.user, manages=manages)) for p in page.object_list],
        filtered=any(form.cleaned_data.get(name) for name in form.fields),
    )
    return render(request, "presets/list.html", context)


def _chat_models(request: WorkspaceRequest) -> list[AIModel]:
    return list(AIModel.objects.usable_for(request.workspace, Capability.CHAT))


def _edit_page(
    request: WorkspaceRequest, *, preset: Preset | None, form: PresetForm, rows: list[dict[str, Any]], status: int = 200
) -> HttpResponse:
    context = {
        "preset": preset,
        "form": form,
        "rows": rows,
        "types": [(t, TYPE_LABELS[t]) for t in TYPES],
    }
    return render(request, "presets/edit.html", context, status=status)


def _initial(preset: Preset) -> dict[str, Any]:
    return {
        "name": preset.name,
        "icon": preset.icon,
        "description": preset.description,
        "category": preset.category,
        "output": preset.output,
        "tags": ", ".join(preset.tags),
        "template": preset.template,
        "system_prompt": preset.system_prompt,
        "default_model": preset.default_model.model_id if preset.default_model else None,
        "temperature": preset.temperature,
        "shared": preset.scope == Preset.Scope.WORKSPACE,
    }


@workspace_required(Perm.USE)
@require_http_methods(["GET", "POST"])
def preset_edit(request: WorkspaceRequest, preset_id: int | None = None) -> HttpResponse:
    """New (`preset_id` None) or edit. `refresh` in the POST re-reads the template's variables
    without saving (the page's "Update variables" button)."""
    preset = _preset(request, preset_id) if preset_id is not None else None
    if preset is not None and not may_edit(preset, request.user):
        raise PresetError("You cannot change this preset.", param="preset", status_code=403)
    can_share = _can_share(request)
    if request.method == "GET":
        form = PresetForm(
            models=_chat_models(request), can_share=can_share, initial=_initial(preset) if preset else None
        )
        rows = variable_rows(preset.template, None, preset.variables) if preset else []
        return _edit_page(request, preset=preset, form=form, rows=rows)
    form = PresetForm(request.POST, models=_chat_models(request), can_share=can_share)
    rows = variable_rows(request.POST.get("template", ""), request.POST, preset.variables if preset else [])
    if "refresh" in request.POST or not form.is_valid():
        return _edit_page(
            request, preset=preset, form=form, rows=rows, status=200 if "refresh" in request.POST else 400
        )
    values = {**form.values(), "variables": definitions(rows)}
    try:
        if preset is None:
            scope = Preset.Scope.WORKSPACE if form.cleaned_data.get("shared") else Preset.Scope.PERSONAL
            preset = preset_create(workspace=request.workspace, user=request.user, scope=scope, **values)
        else:
            preset = preset_update(preset=preset, user=request.user, **values)
            if form.cleaned_data.get("shared") and preset.scope == Preset.Scope.PERSONAL:
                preset = preset_publish(preset=preset, user=request.user)
    except PresetError as exc:
        form.add_error(None, exc.message)
        return _edit_page(request, preset=preset, form=form, rows=rows, status=exc.status_code)
    messages.success(request, f"Preset “{preset.name}” saved.")
    return redirect("presets:use", preset_id=preset.pk)


@workspace_required(Perm.USE)
@require_GET
def preset_use_page(request: WorkspaceRequest, preset_id: int) -> HttpResponse:
    preset = _preset(request, preset_id)
    return render(
        request,
        "presets/use.html",
        {"preset": preset, "form": values_form(preset.variables), "can_edit": may_edit(preset, request.user)},
    )


@workspace_required(Perm.USE)
@require_POST
def preset_favourite_view(request: WorkspaceRequest, preset_id: int) -> HttpResponse:
    preset = _preset(request, preset_id)
    preset_favourite(preset=preset, user=request.user, favourite=request.POST.get("favourite") == "1")
    if request.headers.get("HX-Request"):
        return HttpResponse(status=204, headers={"HX-Refresh": "true"})
    return redirect(request.POST.get("next") or "presets:list")


@workspace_required(Perm.USE)
@require_POST
def preset_delete_view(request: WorkspaceRequest, preset_id: int) -> HttpResponse:
    preset = _preset(request, preset_id)
    name = preset.name
    preset_delete(preset=preset, user=request.user)
    messages.success(request, f"Preset “{name}” deleted.")
    return redirect("presets:list")


# ---------------------------------------------------------------------------- the composer's picker

PICKER_SIZE = 20


@workspace_required(Perm.USE)
@require_GET
def preset_picker(request: WorkspaceRequest) -> HttpResponse:
    """The presets matching `q`, favourites and the most used first (a fragment for the chat
    composer's picker and its `/` command)."""
    filters = PresetFilterForm({"q": request.GET.get("q", "")[:200]})
    filters.is_valid()
    presets = visible_presets(workspace=request.workspace, user=request.user, filters=filters.filters())
    return render(request, "presets/_picker.html", {"presets": presets[:PICKER_SIZE]})


@workspace_required(Perm.USE)
@require_GET
def preset_fill(request: WorkspaceRequest, preset_id: int) -> HttpResponse:
    """A preset's variables as a small form (a fragment for the picker)."""
    preset = _preset(request, preset_id)
    return render(request, "presets/_fill.html", {"preset": preset, "form": values_form(preset.variables)})


@workspace_required(Perm.USE)
@require_POST
def preset_render_view(request: WorkspaceRequest, preset_id: int) -> JsonResponse:
    """The preset filled with the posted values, as JSON (`prompt`, and the defaults), the use
    counted; or 400 with each variable's problem under `errors`."""
    preset = _preset(request, preset_id)
    values = {v["name"]: request.POST.get(v["name"], "") for v in preset.variables}
    try:
        rendered = preset_use(preset=preset, user=request.user, workspace=request.workspace, values=values)
    except PresetValuesInvalid as exc:
        return JsonResponse(
            {"error": {"message": exc.message, "code": exc.code, "errors": exc.errors}}, status=exc.status_code
        )
    return JsonResponse(
        {
            "prompt": rendered.prompt,
            "system_prompt": rendered.system_prompt,
            "model": rendered.model.model_id if rendered.model else None,
            "temperature": str(rendered.temperature) if rendered.temperature is not None else None,
            "output": rendered.output,
        }
    )
