"""What the layout and accessibility tests look for on a page, each returned as readable
problems (empty: none) so one assertion can list every page that fails and why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, reverse

if TYPE_CHECKING:
    from playwright.sync_api import Page

TEMPLATE_SYNTAX = ("{%", "{{", "{#")
# Not pages of the signed-in site: the admin, the two APIs, Stripe's webhooks, health probes.
NOT_PAGES = ("/admin/", "/api/", "/v1/", "/stripe/", "/healthz", "/readyz", "/static/", "/media/")
BLOCKING_IMPACTS = ("serious", "critical")

# The outermost elements that stick out past the right edge of the viewport (the ones to fix),
# described as tag#id.class[data-testid] with their right edge.
_WIDEST_JS = """
() => {
  const limit = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.right <= limit + 1) continue;
    const parent = el.parentElement;
    if (parent && parent !== document.body && parent.getBoundingClientRect().right > limit + 1) continue;
    let name = el.tagName.toLowerCase();
    if (el.id) name += "#" + el.id;
    const classes = typeof el.className === "string" ? el.className.trim() : "";
    if (classes) name += "." + classes.split(/\\s+/).join(".");
    const testid = el.getAttribute("data-testid");
    if (testid) name += `[data-testid=${testid}]`;
    out.push(`${name} (right edge ${Math.round(box.right)} px)`);
    if (out.length >= 4) break;
  }
  return out;
}
"""


def overflow(page: Page) -> str:
    """'' when the page fits its viewport's width; otherwise the widths and the culprits."""
    scroll, client = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    if scroll <= client:
        return ""
    culprits = page.evaluate(_WIDEST_JS)
    return f"scrollWidth {scroll} px > clientWidth {client} px; sticking out: {', '.join(culprits) or '?'}"


def template_syntax(page: Page) -> str:
    """'' unless the visible text shows Django template syntax (an unrendered tag or variable)."""
    # Code, preformatted text and form fields may show the syntax on purpose (a preset's
    # template, its `{{name}}` placeholders): only the page's own text counts.
    text = page.evaluate(
        """() => {
            const body = document.body.cloneNode(true);
            body.querySelectorAll("code, pre, textarea, input, script, style").forEach((el) => el.remove());
            document.documentElement.appendChild(body);
            const text = body.innerText;
            body.remove();
            return text;
        }"""
    )
    for marker in TEMPLATE_SYNTAX:
        at = text.find(marker)
        if at >= 0:
            snippet = " ".join(text[max(0, at - 40) : at + 40].split())
            return f"shows {marker!r}: …{snippet}…"
    return ""


def axe_violations(page: Page, axe_script: Path) -> list[str]:
    """The serious and critical axe-core violations on the page, one line each: the rule, its
    impact and help text, and up to three of the elements concerned."""
    page.add_script_tag(path=str(axe_script))
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    lines = []
    for violation in result["violations"]:
        if violation.get("impact") not in BLOCKING_IMPACTS:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:3]]
        more = f" (+{len(violation['nodes']) - 3} more)" if len(violation["nodes"]) > 3 else ""
        lines.append(f"{violation['id']} [{violation['impact']}] {violation['help']}: {'; '.join(targets)}{more}")
    return lines


def routes_without_arguments() -> list[str]:
    """The path of every named route that needs no argument (no object id), outside the admin,
    the APIs and the webhooks: the candidates for the page walk, in urlconf order."""
    paths: list[str] = []
    for name in _route_names(get_resolver().url_patterns, ()):
        try:
            path = reverse(name)
        except NoReverseMatch:
            continue  # needs an id or a token
        if path not in paths and not path.startswith(NOT_PAGES):
            paths.append(path)
    return paths


def _route_names(patterns: list[Any], namespaces: tuple[str, ...]) -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = (*namespaces, pattern.namespace) if pattern.namespace else namespaces
            yield from _route_names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield ":".join((*namespaces, pattern.name))
