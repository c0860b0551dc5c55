// The document editor: a formatting toolbar for the Markdown textarea, a live preview (the
// server renders and sanitises it, as for saved documents), autosave a moment after typing
// stops (and on Ctrl+S), and a clear state when someone else saved first: the page then
// submits the form normally and the server shows the merge view.
(function () {
  "use strict";

  var root = document.querySelector("[data-document-editor]");
  if (!root) return;
  var body = root.querySelector("[data-body]");
  var title = root.querySelector("[data-title]");
  var baseVersion = root.querySelector("[data-base-version]");
  var statusEl = root.querySelector("[data-save-status]");
  var preview = root.querySelector("[data-preview] .doc-rendered");
  var panes = root.querySelector("[data-panes]");
  var previewUrl = root.getAttribute("data-preview-url");
  var AUTOSAVE_MS = 2000;
  var PREVIEW_MS = 400;
  var saving = null;
  var dirty = false;
  var blocked = false; // a conflict: only the merge view may save now
  var autosaveTimer = null;
  var previewTimer = null;
  var narrow = window.matchMedia("(max-width: 899.98px)");

  function csrfToken() {
    var field = root.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function setStatus(text, isError) {
    statusEl.textContent = text;
    statusEl.classList.toggle("is-error", !!isError);
  }

  // ---- view: write, preview or both side by side (wide screens)
  function setView(mode) {
    if (mode === "split" && narrow.matches) mode = "write";
    panes.setAttribute("data-view-mode", mode);
    root.querySelectorAll("[data-view]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.getAttribute("data-view") === mode));
    });
    if (mode !== "write") refreshPreview();
  }
  root.querySelectorAll("[data-view]").forEach(function (button) {
    button.addEventListener("click", function () {
      setView(button.getAttribute("data-view"));
    });
  });
  setView(narrow.matches ? "write" : "split");

  // ---- preview
  function refreshPreview() {
    if (panes.getAttribute("data-view-mode") === "write") return;
    var data = new URLSearchParams();
    data.append("body", body.value);
    fetch(previewUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" },
      body: data,
    })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) preview.innerHTML = html; // sanitised by the server (nh3)
      })
      .catch(function () {});
  }

  // ---- saving
  function changed() {
    dirty = true;
    if (blocked) return;
    setStatus("Unsaved changes");
    clearTimeout(autosaveTimer);
    autosaveTimer = setTimeout(save, AUTOSAVE_MS);
    clearTimeout(previewTimer);
    previewTimer = setTimeout(refreshPreview, PREVIEW_MS);
  }

  function save() {
    clearTimeout(autosaveTimer);
    if (blocked || !dirty) return Promise.resolve();
    if (saving) {
      // One save at a time; the next one starts from the version this one answers.
      return saving.then(save);
    }
    if (!title.value.trim()) {
      setStatus("Give the document a title to save it.", true);
      return Promise.resolve();
    }
    dirty = false;
    setStatus("Saving…");
    var data = new FormData(root);
    saving = fetch(root.getAttribute("action"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" },
      body: data,
    })
      .then(function (response) {
        return response.json().then(function (payload) {
          if (response.ok) {
            baseVersion.value = payload.version;
            setStatus(dirty ? "Unsaved changes" : "Saved · version " + payload.version);
            return;
          }
          dirty = true;
          if (response.status === 409) {
            blocked = true;
            setStatus("Someone else saved a newer version. Review it to merge your text.", true);
            showConflict();
            return;
          }
          setStatus((payload.error && payload.error.message) || "Not saved. Please try again.", true);
        });
      })
      .catch(function () {
        dirty = true;
        setStatus("Not saved: the connection was lost. Retrying…", true);
        autosaveTimer = setTimeout(save, AUTOSAVE_MS * 3);
      })
      .then(function () {
        saving = null;
      });
    return saving;
  }

  function showConflict() {
    if (root.querySelector("[data-review-conflict]")) return;
    var button = document.createElement("button");
    button.type = "submit";
    button.className = "secondary";
    button.setAttribute("data-review-conflict", "");
    button.textContent = "Review and merge";
    statusEl.parentNode.insertBefore(button, statusEl.nextSibling);
  }

  body.addEventListener("input", changed);
  title.addEventListener("input", changed);

  root.addEventListener("submit", function (event) {
    // "Review and merge" (a conflict) posts the form as a page: the server answers the merge
    // view. Otherwise saving stays on the page.
    if (blocked || event.submitter && event.submitter.hasAttribute("data-review-conflict")) {
      dirty = false;
      return;
    }
    event.preventDefault();
    dirty = true;
    save();
  });

  window.addEventListener("beforeunload", function (event) {
    if (dirty || saving) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  // ---- formatting toolbar
  function surround(before, after, placeholder) {
    var start = body.selectionStart;
    var end = body.selectionEnd;
    var selected = body.value.slice(start, end) || placeholder;
    body.setRangeText(before + selected + after, start, end, "end");
    body.setSelectionRange(start + before.length, start + before.length + selected.length);
  }

  function prefixLines(prefix) {
    var value = body.value;
    var start = value.lastIndexOf("\n", body.selectionStart - 1) + 1;
    var end = body.selectionEnd;
    var block = value.slice(start, end) || "Item";
    var n = 0;
    var lines = block.split("\n").map(function (line) {
      n += 1;
      return (typeof prefix === "function" ? prefix(n) : prefix) + line;
    });
    body.setRangeText(lines.join("\n"), start, end, "select");
  }

  function insertBlock(text) {
    var start = body.selectionStart;
    var before = body.value.slice(0, start);
    var lead = before && !before.endsWith("\n\n") ? (before.endsWith("\n") ? "\n" : "\n\n") : "";
    body.setRangeText(lead + text + "\n", start, body.selectionEnd, "end");
  }

  var FORMATS = {
    heading: function () { prefixLines("## "); },
    bold: function () { surround("**", "**", "bold text"); },
    italic: function () { surround("_", "_", "italic text"); },
    bullets: function () { prefixLines("- "); },
    numbers: function () { prefixLines(function (n) { return n + ". "; }); },
    link: function () { surround("[", "](https://)", "link text"); },
    code: function () { surround("\n```\n", "\n```\n", "code"); },
    table: function () { insertBlock("| Column | Column |\n| --- | --- |\n| Cell | Cell |"); },
    image: function () { surround("![", "](https://)", "description"); },
  };

  function format(name) {
    body.focus();
    FORMATS[name]();
    changed();
  }

  root.querySelectorAll("[data-format]").forEach(function (button) {
    button.addEventListener("click", function () {
      format(button.getAttribute("data-format"));
    });
  });

  root.addEventListener("keydown", function (event) {
    if (!(event.ctrlKey || event.metaKey)) return;
    var key = event.key.toLowerCase();
    if (key === "s") {
      event.preventDefault();
      dirty = true;
      save();
    } else if (event.target === body && (key === "b" || key === "i" || key === "k")) {
      event.preventDefault();
      format({ b: "bold", i: "italic", k: "link" }[key]);
    }
  });
})();
