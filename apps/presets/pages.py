"""For the surfaces a preset hands its prompt to (chat, the image studio): read the preset and
the posted values, and either the rendered prompt (the use counted) or the preset's page again
with each value's problem next to its field (400)."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.shortcuts import render

from apps.core.http import WorkspaceRequest
from apps.presets.exceptions import PresetValuesInvalid
from apps.presets.forms import values_form
from apps.presets.selectors import visible_preset
from apps.presets.services import Rendered, may_edit, preset_use


def preset_from_request(request: WorkspaceRequest, preset_id: int) -> Rendered | HttpResponse:
    preset = visible_preset(workspace=request.workspace, user=request.user, preset_id=preset_id)
    if preset is None:
        raise Http404("No such preset.")
    form = values_form(preset.variables, request.POST)
    values = {name: request.POST.get(name, "") for name in form.fields}
    try:
        return preset_use(preset=preset, user=request.user, workspace=request.workspace, values=values)
    except PresetValuesInvalid as exc:
        form.is_valid()
        form.errors.clear()  # the preset's own checks are the ones that count
        for name, problem in exc.errors.items():
            if name in form.fields:
                form.add_error(name, problem)
        context = {"preset": preset, "form": form, "can_edit": may_edit(preset, request.user)}
        return render(request, "presets/use.html", context, status=400)
