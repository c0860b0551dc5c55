from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.forms import DeleteAccountForm, ProfileForm
from apps.accounts.models import User
from apps.accounts.preferences import DEFAULT_MODEL, preference_choices
from apps.accounts.services import user_delete, user_export_data
from apps.core.http import AuthedRequest


def _profile_page(request: AuthedRequest, form: ProfileForm, *, status: int = 200) -> HttpResponse:
    return render(request, "accounts/profile.html", {"form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: AuthedRequest) -> HttpResponse:
    models = preference_choices(DEFAULT_MODEL)
    if request.method == "POST":
        # A copy, not request.user: validating a ModelForm writes the input onto its
        # instance, and a refused form must not show up as the signed-in user's data.
        form = ProfileForm(
            request.POST, request.FILES, instance=User.objects.get(pk=request.user.pk), model_choices=models
        )
        if form.is_valid():
            form.save()
            messages.success(request, "Profile saved.")
            return redirect("accounts:profile")
        messages.error(request, "Please correct the errors below.")
        return _profile_page(request, form, status=400)
    return _profile_page(request, ProfileForm(instance=request.user, model_choices=models))


@login_required
def privacy(request: AuthedRequest) -> HttpResponse:
    return render(request, "accounts/privacy.html", {"delete_form": DeleteAccountForm(user=request.user)})


@login_required
@require_POST
def export_data(request: AuthedRequest) -> HttpResponse:
    data = user_export_data(user=request.user)
    response = HttpResponse(json.dumps(data, indent=2, default=str), content_type="application/json")
    stamp = timezone.now().strftime("%Y%m%d")
    response["Content-Disposition"] = f'attachment; filename="aikeedo-export-{stamp}.json"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def delete_account(request: AuthedRequest) -> HttpResponse:
    form = DeleteAccountForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user = request.user
        logout(request)
        user_delete(user=user, acting_user=user)
        messages.success(request, "Your account and the workspaces only you owned have been deleted.")
        return redirect("home")
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/privacy.html", {"delete_form": form}, status=status)
