"""Forms of the billing pages: they only turn posted text into typed values; which plan or pack
exists and what may be bought is decided by the views (404) and the services."""

from __future__ import annotations

from django import forms

from apps.billing.models import Plan

EXPIRED = {
    "required": "This form has expired. Reload the page and try again.",
    "invalid": "This form has expired. Reload the page and try again.",
}


class SubscribeForm(forms.Form):
    plan = forms.SlugField(max_length=32)
    interval = forms.ChoiceField(choices=Plan.Interval.choices)
    # One per rendered form: a double submit (or a reload) reuses the same Checkout session.
    request_key = forms.UUIDField(error_messages=EXPIRED)


class PackForm(forms.Form):
    pack = forms.SlugField(max_length=32)
    request_key = forms.UUIDField(error_messages=EXPIRED)


class ChangePlanForm(forms.Form):
    plan = forms.SlugField(max_length=32)
    interval = forms.ChoiceField(choices=Plan.Interval.choices)


class RedeemForm(forms.Form):
    code = forms.CharField(max_length=40, strip=True, label="Redemption code")


def first_error(form: forms.Form) -> str:
    """A one-line message for a form that did not come from our page (or was tampered with)."""
    for field, errors in form.errors.items():
        if field not in form.fields or field == "request_key":
            return str(errors[0])
        label = form.fields[field].label or field.replace("_", " ").capitalize()
        return f"{label}: {errors[0]}"
    return "The form was incomplete."
