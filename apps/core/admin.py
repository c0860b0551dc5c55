"""The back office's shared kit: the staff member behind a request, admin URLs and links, the
workspace filter of workspace-scoped records and filters of fixed choices, read-only history,
and the one page that asks for a form before an action runs. Nothing here is registered; each
app's `admin.py` uses it."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django import forms
from django.contrib import admin
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

if TYPE_CHECKING:
    from apps.accounts.models import User


def staff_user(request: HttpRequest) -> User:
    """The signed-in staff member (the admin lets no one else in): the `acting_user` of the
    services an admin page calls."""
    return cast("User", request.user)


def admin_url(model: type[Model], page: str, *args: Any) -> str:
    """The admin page `page` ("changelist", "change", "add" or a custom one) of `model`."""
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{page}", args=args)


def workspace_link(model: type[Model], workspace_id: int, label: str) -> str:
    """A link to `model`'s list filtered to one workspace (`WorkspaceFilter`)."""
    return format_html('<a href="{}?workspace={}">{}</a>', admin_url(model, "changelist"), workspace_id, label)


class WorkspaceFilter(admin.SimpleListFilter):
    """One workspace, by id or slug (`?workspace=acme`), for any model with a `workspace`
    foreign key. Unlike a related-field filter it never lists every workspace in the sidebar:
    one query for the chosen workspace's name, whatever the number of tenants."""

    title = "workspace"
    parameter_name = "workspace"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        if not value:
            return []
        workspaces = model_admin.model._meta.get_field("workspace").related_model._default_manager.all()
        workspace = (workspaces.filter(pk=int(value)) if value.isdigit() else workspaces.filter(slug=value)).first()
        return [(str(value), str(workspace))] if workspace is not None else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if value.isdigit():
            return queryset.filter(workspace_id=int(value))
        return queryset.filter(workspace__slug=value)


class ChoicesFilter(admin.SimpleListFilter):
    """A list filter of fixed choices: `conditions` maps each value of the query string to its
    label and the condition it selects (a function, called per request: a condition about time
    reads the clock then)."""

    conditions: ClassVar[dict[str, tuple[str, Callable[[], Q]]]] = {}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, label) for value, (label, _) in self.conditions.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        choice = self.conditions.get(self.value() or "")
        return queryset if choice is None else queryset.filter(choice[1]())


class AddFormAdmin(admin.ModelAdmin):
    """A record staff add through a form of its own (`add_form` with `add_fields`, saved by a
    service) and then only read (`view_fields`): never changed or deleted by hand."""

    add_form: type[forms.ModelForm] | None = None
    add_fields: ClassVar[list[str]] = []
    view_fields: ClassVar[list[str]] = []

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None and self.add_form is not None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.add_fields if obj is None else self.view_fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else self.view_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only history: visible, never added, changed or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# One page for every form an action or view asks for before it runs (the admin has none).
ACTION_FORM = """{% extends "admin/base_site.html" %}
{% block extrahead %}{{ block.super }}<script src="{% url 'admin:jsi18n' %}"></script>{{ media }}{% endblock %}
{% block content %}
<form method="post">{% csrf_token %}
  {% for line in intro %}<p>{{ line }}</p>{% endfor %}
  {% if objects %}<ul>{% for o in objects %}<li>{{ o }}</li>{% endfor %}</ul>{% endif %}
  {% for pk in selected %}<input type="hidden" name="_selected_action" value="{{ pk }}">{% endfor %}
  {% if action %}<input type="hidden" name="action" value="{{ action }}">
  <input type="hidden" name="apply" value="1">{% endif %}
  {{ form.non_field_errors }}
  {% for field in form.hidden_fields %}{{ field }}{% endfor %}
  <fieldset class="module aligned">
  {% for field in form.visible_fields %}
    <div class="form-row">{{ field.errors }}
      <div class="flex-container">{{ field.label_tag }} {{ field }}</div>
      {% if field.help_text %}<div class="help">{{ field.help_text }}</div>{% endif %}
    </div>
  {% endfor %}
  </fieldset>
  <div class="submit-row"><input type="submit" class="default" value="{{ submit }}"></div>
</form>
{% endblock content %}"""


@cache
def _action_template() -> Any:
    return engines["django"].from_string(ACTION_FORM)


def form_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    form: forms.Form,
    submit: str,
    intro: list[str] | None = None,
    objects: list[Any] | None = None,
    selected: Any = (),
    action: str = "",
) -> TemplateResponse:
    """The page asking for `form` before an action (`action`, on the `selected` rows, listed
    as `objects`) or a custom admin view runs; posting it back runs the action with `apply`."""
    return TemplateResponse(
        request,
        _action_template(),
        {
            **model_admin.admin_site.each_context(request),
            "title": title,
            "opts": model_admin.opts,
            "form": form,
            "media": model_admin.media + form.media,
            "submit": submit,
            "intro": intro or [],
            "objects": objects or [],
            "selected": selected,
            "action": action,
        },
    )
