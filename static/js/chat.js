// Chat page: talks to the conversation's WebSocket (/ws/chat/<id>/).
// Client frames: send, stop, regenerate, edit. Server frames: ready, started, delta, done, error.
// Deltas are shown as plain text; on "done" the server's sanitised HTML replaces them.
(function () {
  "use strict";

  // Forms that ask before submitting (delete).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.matches && form.matches("[data-confirm]") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  function init() {
    var root = document.querySelector("[data-chat]");
    if (!root) return;
    var log = root.querySelector("[data-log]");
    var statusEl = root.querySelector("[data-chat-status]");
    var composer = root.querySelector("[data-composer]");
    var input = root.querySelector("[data-input]");
    var sendBtn = root.querySelector("[data-send]");
    var stopBtn = root.querySelector("[data-stop]");
    var regenBtn = root.querySelector("[data-regenerate]");
    var wsPath = root.getAttribute("data-ws-path");

    var socket = null;
    var ready = false;
    var busy = false;
    var connectedOnce = false;
    var retryDelay = 1000;
    var retryTimer = null;
    var gaveUp = false;
    var current = null; // the assistant message being streamed
    var pendingUser = null; // the user message appended locally, waiting for its id

    function setStatus(text, isError) {
      statusEl.textContent = text || "";
      statusEl.classList.toggle("chat-status-alert", !!isError);
    }

    function updateButtons() {
      sendBtn.disabled = !ready || busy;
      regenBtn.disabled = !ready || busy || !log.querySelector('[data-role="assistant"]');
      stopBtn.hidden = !busy;
      stopBtn.disabled = !ready;
    }

    function scrollDown() {
      log.lastElementChild && log.lastElementChild.scrollIntoView({ block: "end" });
    }

    function clearEmpty() {
      var empty = log.querySelector("[data-empty]");
      if (empty) empty.remove();
    }

    function button(label, attr) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "outline secondary chat-small";
      b.setAttribute(attr, "");
      b.textContent = label;
      return b;
    }

    function messageEl(role, id, text, status) {
      var el = document.createElement("article");
      el.className = "chat-message chat-" + role + " chat-status-" + status;
      el.setAttribute("data-role", role);
      el.setAttribute("data-status", status);
      if (id) el.setAttribute("data-message-id", String(id));
      var header = document.createElement("header");
      header.className = "chat-message-header";
      var who = document.createElement("strong");
      who.textContent = role === "user" ? "You" : "Assistant";
      header.appendChild(who);
      var badge = document.createElement("small");
      badge.className = "chat-badge";
      badge.setAttribute("data-badge", "");
      if (status === "streaming") badge.textContent = "generating…";
      header.appendChild(badge);
      var actions = document.createElement("span");
      actions.className = "chat-message-actions";
      actions.appendChild(button("Copy", "data-copy"));
      if (role === "user") actions.appendChild(button("Edit", "data-edit"));
      header.appendChild(actions);
      el.appendChild(header);
      var body = document.createElement("div");
      body.className = "chat-body chat-plain";
      body.setAttribute("data-body", "");
      body.textContent = text;
      el.appendChild(body);
      var raw = document.createElement("textarea");
      raw.hidden = true;
      raw.setAttribute("data-raw", "");
      raw.value = text;
      el.appendChild(raw);
      return el;
    }

    function byId(id) {
      return log.querySelector('[data-message-id="' + String(parseInt(id, 10)) + '"]');
    }

    function setBusy(value) {
      busy = value;
      updateButtons();
    }

    function showError(text) {
      clearEmpty();
      var el = document.createElement("article");
      el.className = "message message-error chat-error-frame";
      el.setAttribute("role", "alert");
      el.textContent = text;
      log.appendChild(el);
      scrollDown();
    }

    function send(frame) {
      if (!socket || socket.readyState !== WebSocket.OPEN || !ready) {
        setStatus("Not connected yet — please wait a moment.", true);
        return false;
      }
      socket.send(JSON.stringify(frame));
      return true;
    }

    function removeAfter(el) {
      while (el.nextElementSibling) el.nextElementSibling.remove();
    }

    // ---- server frames
    function onFrame(frame) {
      switch (frame.type) {
        case "ready":
          ready = true;
          retryDelay = 1000;
          setStatus("");
          break;
        case "started": {
          clearEmpty();
          if (pendingUser && frame.user_message_id) {
            pendingUser.setAttribute("data-message-id", String(frame.user_message_id));
          }
          pendingUser = null;
          var existing = byId(frame.message_id);
          current = existing || messageEl("assistant", frame.message_id, "", "streaming");
          if (!existing) log.appendChild(current);
          current.setAttribute("data-status", "streaming");
          current.querySelector("[data-body]").textContent = "";
          current.querySelector("[data-raw]").value = "";
          setBusy(true);
          scrollDown();
          break;
        }
        case "delta":
          if (!current) {
            current = messageEl("assistant", null, "", "streaming");
            clearEmpty();
            log.appendChild(current);
          }
          current.querySelector("[data-body]").appendChild(document.createTextNode(frame.text || ""));
          current.querySelector("[data-raw]").value += frame.text || "";
          scrollDown();
          break;
        case "done": {
          var el = byId(frame.message_id) || current;
          if (el) {
            var body = el.querySelector("[data-body]");
            if (typeof frame.html === "string") {
              body.innerHTML = frame.html; // sanitised on the server (render_markdown)
              body.className = "chat-body chat-markdown";
            }
            el.setAttribute("data-status", frame.status || "complete");
            el.className = "chat-message chat-assistant chat-status-" + (frame.status || "complete");
            var badge = el.querySelector("[data-badge]");
            var note = frame.status === "stopped" ? "stopped" : frame.status === "error" ? "error" : "";
            if (frame.credits) note += (note ? " · " : "") + frame.credits + " credits";
            if (badge) badge.textContent = note;
            if (frame.status === "error" && frame.error) {
              // Refusals (no credits, cap reached, model disabled) and provider failures.
              var problem = el.querySelector(".chat-error") || document.createElement("p");
              problem.className = "chat-error";
              problem.setAttribute("role", "alert");
              problem.textContent = frame.error;
              if (!problem.parentNode) body.parentNode.insertBefore(problem, body.nextSibling);
            }
          }
          current = null;
          setBusy(false);
          break;
        }
        case "title": {
          // Written by the title model after the first exchange; text only (never HTML).
          var heading = document.querySelector("[data-testid=conversation-title]");
          if (heading && frame.title) heading.textContent = frame.title;
          var sep = document.title.indexOf(" · ");
          if (frame.title) document.title = frame.title + (sep >= 0 ? document.title.slice(sep) : "");
          break;
        }
        case "error":
          showError(frame.message || "Something went wrong.");
          if (current) {
            current.setAttribute("data-status", "error");
            var b = current.querySelector("[data-badge]");
            if (b) b.textContent = "error";
          }
          current = null;
          pendingUser = null;
          setBusy(false);
          break;
        default:
          break;
      }
      updateButtons();
    }

    // After a reconnect, show what the server persisted meanwhile (it keeps streaming to the DB).
    function refreshLog() {
      fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (!html || busy) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.querySelector("[data-chat] [data-log]");
          if (fresh) {
            log.replaceChildren.apply(log, Array.prototype.slice.call(fresh.childNodes));
            updateButtons();
            if (log.querySelector('[data-status="streaming"]')) {
              setStatus("An answer is still being generated; it will appear when finished.");
              window.setTimeout(refreshLog, 3000);
            }
          }
        })
        .catch(function () {});
    }

    function connect() {
      retryTimer = null;
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + window.location.host + wsPath);
      socket.addEventListener("open", function () {
        if (connectedOnce) refreshLog();
        connectedOnce = true;
      });
      socket.addEventListener("message", function (event) {
        var frame;
        try {
          frame = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        onFrame(frame);
      });
      socket.addEventListener("close", function (event) {
        ready = false;
        if (busy) {
          busy = false;
          current = null;
        }
        updateButtons();
        // 4xxx: the server refused us (signed out, not a member, no such conversation).
        if (event.code >= 4000 && event.code < 5000) {
          gaveUp = true;
          setStatus("This chat is not available (" + (event.reason || "access refused") + "). Reload the page.", true);
          return;
        }
        scheduleReconnect();
      });
    }

    function scheduleReconnect() {
      if (gaveUp || retryTimer) return;
      var wait = Math.min(retryDelay, 30000);
      var jittered = wait / 2 + Math.random() * (wait / 2);
      setStatus("Connection lost. Reconnecting in " + Math.ceil(jittered / 1000) + "s…", true);
      retryTimer = window.setTimeout(connect, jittered);
      retryDelay = Math.min(retryDelay * 2, 30000);
    }

    // Reconnect promptly when the tab becomes visible or the network returns.
    function nudge() {
      if (!gaveUp && retryTimer && document.visibilityState === "visible") {
        window.clearTimeout(retryTimer);
        retryTimer = null;
        connect();
      }
    }
    window.addEventListener("online", nudge);
    document.addEventListener("visibilitychange", nudge);

    // ---- user actions
    composer.addEventListener("submit", function (event) {
      event.preventDefault();
      var content = input.value.trim();
      if (!content || busy) return;
      if (!send({ type: "send", content: content })) return;
      clearEmpty();
      pendingUser = messageEl("user", null, content, "complete");
      log.appendChild(pendingUser);
      input.value = "";
      setBusy(true);
      scrollDown();
    });

    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        composer.requestSubmit();
      }
    });

    stopBtn.addEventListener("click", function () {
      send({ type: "stop" });
    });

    regenBtn.addEventListener("click", function () {
      if (busy) return;
      if (send({ type: "regenerate" })) setBusy(true);
    });

    log.addEventListener("click", function (event) {
      var target = event.target;
      var message = target.closest(".chat-message");
      if (!message) return;
      if (target.matches("[data-copy]")) {
        var text = message.querySelector("[data-raw]").value;
        var done = function () {
          target.textContent = "Copied";
          window.setTimeout(function () {
            target.textContent = "Copy";
          }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done);
        } else {
          var tmp = document.createElement("textarea");
          tmp.value = text;
          document.body.appendChild(tmp);
          tmp.select();
          document.execCommand("copy");
          tmp.remove();
          done();
        }
      } else if (target.matches("[data-edit]")) {
        startEdit(message);
      }
    });

    function startEdit(message) {
      if (busy || message.querySelector("[data-edit-form]")) return;
      var id = message.getAttribute("data-message-id");
      if (!id) return;
      var body = message.querySelector("[data-body]");
      var form = document.createElement("form");
      form.setAttribute("data-edit-form", "");
      var area = document.createElement("textarea");
      area.rows = 3;
      area.value = message.querySelector("[data-raw]").value;
      area.setAttribute("aria-label", "Edit message");
      var save = document.createElement("button");
      save.type = "submit";
      save.textContent = "Save & resend";
      var cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "secondary outline";
      cancel.textContent = "Cancel";
      form.appendChild(area);
      form.appendChild(save);
      form.appendChild(cancel);
      body.hidden = true;
      message.appendChild(form);
      area.focus();
      cancel.addEventListener("click", function () {
        form.remove();
        body.hidden = false;
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var content = area.value.trim();
        if (!content || busy) return;
        if (!send({ type: "edit", message_id: parseInt(id, 10), content: content })) return;
        body.textContent = content;
        message.querySelector("[data-raw]").value = content;
        form.remove();
        body.hidden = false;
        removeAfter(message);
        pendingUser = message;
        setBusy(true);
      });
    }

    updateButtons();
    connect();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
