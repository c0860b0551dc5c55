// The app shell's small behaviours, on every page: theme toggle, sidebar (collapsed on wide
// screens, a drawer on narrow ones), the account menu, toasts, confirmations, scrolling tables
// and the workspace switcher. No framework: plain listeners on the document.
(function () {
  "use strict";
  var root = document.documentElement;
  var NARROW = window.matchMedia("(max-width: 899.98px)");

  function store(key, value) {
    try {
      if (value === null) window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch (e) { /* private mode: the choice lasts for this page only */ }
  }
  function stored(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }

  // ---------------------------------------------------------------- theme
  // Remembers the choice locally; the server-side preference sets the default.
  var theme = stored("theme");
  if (theme === "light" || theme === "dark") root.setAttribute("data-theme", theme);

  function toggleTheme() {
    var current = root.getAttribute("data-theme") ||
      (window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
    var next = current === "dark" ? "light" : "dark";
    root.setAttribute("data-theme", next);
    store("theme", next);
  }

  // ---------------------------------------------------------------- sidebar
  if (stored("sidebar") === "collapsed") root.setAttribute("data-sidebar", "collapsed");

  function shell() { return document.querySelector("[data-shell]"); }
  function sidebar() { return document.querySelector("[data-sidebar]"); }
  function toggles() { return document.querySelectorAll("[data-sidebar-toggle]"); }
  var lastOpener = null;

  function drawerOpen() {
    var s = shell();
    return !!s && s.classList.contains("drawer-open");
  }

  function syncToggles() {
    var expanded = NARROW.matches ? drawerOpen() : root.getAttribute("data-sidebar") !== "collapsed";
    toggles().forEach(function (button) {
      button.setAttribute("aria-expanded", expanded ? "true" : "false");
      button.setAttribute("aria-label", NARROW.matches ? (expanded ? "Close menu" : "Open menu")
        : (expanded ? "Hide the sidebar" : "Show the sidebar"));
    });
  }

  function setInert(on) {
    var main = document.querySelector("[data-main]");
    if (!main) return;
    if (on) main.setAttribute("inert", "");
    else main.removeAttribute("inert");
  }

  function openDrawer(opener) {
    var s = shell(), side = sidebar();
    if (!s || !side) return;
    lastOpener = opener || document.activeElement;
    s.classList.add("drawer-open");
    var backdrop = s.querySelector(".sidebar-backdrop");
    if (backdrop) backdrop.hidden = false;
    setInert(true);
    syncToggles();
    var first = side.querySelector("[data-sidebar-close], a, button, select, input");
    if (first) first.focus();
  }

  function closeDrawer(restoreFocus) {
    var s = shell();
    if (!s || !s.classList.contains("drawer-open")) return;
    s.classList.remove("drawer-open");
    var backdrop = s.querySelector(".sidebar-backdrop");
    if (backdrop) backdrop.hidden = true;
    setInert(false);
    syncToggles();
    if (restoreFocus !== false) {
      var target = lastOpener && document.contains(lastOpener) ? lastOpener : toggles()[0];
      if (target) target.focus();
    }
  }

  function toggleSidebar(button) {
    if (NARROW.matches) {
      if (drawerOpen()) closeDrawer();
      else openDrawer(button);
      return;
    }
    var collapsed = root.getAttribute("data-sidebar") === "collapsed";
    if (collapsed) root.removeAttribute("data-sidebar");
    else root.setAttribute("data-sidebar", "collapsed");
    store("sidebar", collapsed ? null : "collapsed");
    syncToggles();
  }

  // Leaving the narrow layout with the drawer open must not leave the page inert.
  var onLayoutChange = function () { closeDrawer(false); syncToggles(); };
  if (NARROW.addEventListener) NARROW.addEventListener("change", onLayoutChange);
  else if (NARROW.addListener) NARROW.addListener(onLayoutChange);

  // ---------------------------------------------------------------- menus
  function closeMenus(except) {
    document.querySelectorAll("details[data-menu][open]").forEach(function (menu) {
      if (menu !== except) menu.removeAttribute("open");
    });
  }

  // ---------------------------------------------------------------- toasts
  function dismiss(toast) {
    if (!toast || toast.classList.contains("is-leaving")) return;
    toast.classList.add("is-leaving");
    window.setTimeout(function () { toast.remove(); }, 200);
  }

  function scheduleToasts(scope) {
    // Good news fades by itself; warnings and errors stay until dismissed.
    (scope || document).querySelectorAll(".toast-success[data-toast], .toast-info[data-toast]").forEach(function (toast) {
      window.setTimeout(function () {
        if (!toast.matches(":hover, :focus-within")) dismiss(toast);
      }, 6000);
    });
  }

  // ---------------------------------------------------------------- tables
  // Wide tables scroll inside their own box, never the page.
  function wrapTables(scope) {
    (scope || document).querySelectorAll("main table").forEach(function (table) {
      var parent = table.parentElement;
      if (!parent || parent.classList.contains("table-scroll") || parent.classList.contains("overflow-auto")) return;
      var box = document.createElement("div");
      box.className = "table-scroll";
      box.setAttribute("tabindex", "0");
      box.setAttribute("role", "region");
      var caption = table.querySelector("caption");
      box.setAttribute("aria-label", caption ? caption.textContent.trim() : "Table");
      parent.insertBefore(box, table);
      box.appendChild(table);
    });
  }

  // ---------------------------------------------------------------- listeners
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;

    if (target.closest("[data-theme-toggle]")) {
      toggleTheme();
      return;
    }
    var toggle = target.closest("[data-sidebar-toggle]");
    if (toggle) {
      toggleSidebar(toggle);
      return;
    }
    if (target.closest("[data-sidebar-close]")) {
      closeDrawer();
      return;
    }
    var closeToast = target.closest("[data-toast-close]");
    if (closeToast) {
      dismiss(closeToast.closest("[data-toast]"));
      return;
    }
    // A click on a link inside the drawer navigates: close it so the back button finds the page.
    if (drawerOpen() && target.closest("[data-sidebar] a[href]")) closeDrawer(false);
    // Clicking outside an open menu closes it.
    closeMenus(target.closest("details[data-menu]"));

    // Buttons and links marked data-confirm ask first (forms are handled on submit below).
    var confirmable = target.closest("a[data-confirm], button[data-confirm]");
    if (confirmable && !window.confirm(confirmable.getAttribute("data-confirm"))) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // Forms that ask before submitting (delete and other irreversible actions).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.matches("[data-confirm]") &&
        !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var menu = document.querySelector("details[data-menu][open]");
    if (menu) {
      menu.removeAttribute("open");
      var summary = menu.querySelector("summary");
      if (summary) summary.focus();
      return;
    }
    if (drawerOpen()) closeDrawer();
  });

  // Keep keyboard focus inside the open drawer: Tab from its last control returns to its first.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Tab" || !drawerOpen()) return;
    var side = sidebar();
    var focusable = Array.prototype.filter.call(
      side.querySelectorAll("a[href], button:not([disabled]), select, input:not([type=hidden]), [tabindex]:not([tabindex='-1'])"),
      function (el) { return el.offsetParent !== null; }
    );
    if (!focusable.length) return;
    var first = focusable[0], last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });

  // Workspace switcher submits on change.
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target instanceof Element && target.matches("[data-autosubmit]") && target.form) {
      target.form.submit();
    }
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    wrapTables(event.target);
    scheduleToasts(event.target);
  });

  function init() {
    syncToggles();
    wrapTables(document);
    scheduleToasts(document);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
