// Image studio: follows a job's progress over its WebSocket (/ws/jobs/<id>/), falling back to
// polling the status URL; when the job ends it fetches the results and shows them.
(function () {
  "use strict";

  // Forms marked data-confirm ask before submitting: static/js/app.js, on every page.

  function init() {
    var root = document.querySelector("[data-job]");
    if (!root || root.getAttribute("data-finished") === "1") return;
    var statusEl = root.querySelector("[data-status]");
    var bar = root.querySelector("[data-progress]");
    var results = root.querySelector("[data-results]");
    var cancel = root.querySelector("[data-cancel]");
    var statusUrl = root.getAttribute("data-status-url");
    var done = false;
    var pollTimer = null;
    var socket = null;

    function show(state) {
      if (typeof state.progress === "number") bar.value = state.progress;
      statusEl.textContent = state.status + (state.error ? " — " + state.error : "");
    }

    function render(items) {
      results.textContent = "";
      items.forEach(function (item) {
        var figure = document.createElement("figure");
        figure.className = "media-result";
        var link = document.createElement("a");
        link.href = item.url;
        link.target = "_blank";
        link.rel = "noopener";
        var img = document.createElement("img");
        img.src = item.thumbnail_url || item.url;
        img.alt = (item.metadata && item.metadata.prompt) || "";
        img.width = 256;
        link.appendChild(img);
        figure.appendChild(link);
        var caption = document.createElement("figcaption");
        var download = document.createElement("a");
        download.href = item.download_url;
        download.textContent = "Download";
        caption.appendChild(download);
        figure.appendChild(caption);
        results.appendChild(figure);
      });
    }

    function finish() {
      if (done) return;
      done = true;
      if (pollTimer) window.clearTimeout(pollTimer);
      if (socket) socket.close();
      if (cancel) cancel.remove();
      // Speech and transcription pages render their results server-side.
      if (root.hasAttribute("data-reload-on-finish")) return window.location.reload();
      fetch(statusUrl, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (state) { show(state); render(state.results || []); });
    }

    function poll() {
      fetch(statusUrl, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (state) {
          show(state);
          if (state.finished) finish();
          else pollTimer = window.setTimeout(poll, 1500);
        })
        .catch(function () { pollTimer = window.setTimeout(poll, 3000); });
    }

    if (!("WebSocket" in window)) return poll();
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + root.getAttribute("data-ws-path"));
    socket.onmessage = function (event) {
      var state = JSON.parse(event.data);
      if (state.type !== "job.progress") return;
      show(state);
      if (["succeeded", "failed", "cancelled"].indexOf(state.status) !== -1) finish();
    };
    socket.onclose = function () { if (!done) poll(); }; // fallback: the socket is gone
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
