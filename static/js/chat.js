// Chat page: talks to the conversation's WebSocket (/ws/chat/<id>/).
// Client frames: send, stop, regenerate, edit. Server frames: ready, history, started, delta,
// done, title, error. Every message's markup comes from the server (templates/chat/_message.html):
// this script inserts or replaces the HTML it receives and appends streamed text to the body of
// the answer being generated. An answer keeps going when the page closes; reopening the page (or
// another tab) picks it up where it is.
(function () {
  "use strict";

  function init() {
    var root = document.querySelector("[data-chat]");
    if (!root) return;
    var log = root.querySelector("[data-log]");
    var statusEl = root.querySelector("[data-chat-status]");
    var composer = root.querySelector("[data-composer]");
    var input = root.querySelector("[data-input]");
    var sendBtn = root.querySelector("[data-send]");
    var stopBtn = root.querySelector("[data-stop]");
    var wsPath = root.getAttribute("data-ws-path");
    var pending = root.querySelector("[data-pending-attachments]");
    var fileInput = root.querySelector("[data-attach]");

    var socket = null;
    var ready = false;
    var connectedOnce = false;
    var retryDelay = 1000;
    var retryTimer = null;
    var gaveUp = false;
    var live = {}; // message id -> characters shown, for answers being generated
    var waiting = null; // what this page asked for and awaits: "send" or an edited message element

    function setStatus(text, isError) {
      statusEl.textContent = text || "";
      statusEl.classList.toggle("chat-status-alert", !!isError);
    }

    function busy() {
      return waiting !== null || Object.keys(live).length > 0;
    }

    function updateButtons() {
      sendBtn.disabled = !ready || busy();
      stopBtn.hidden = Object.keys(live).length === 0;
      stopBtn.disabled = !ready;
      root.classList.toggle("chat-busy", busy());
    }

    function nearBottom() {
      return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    }

    function scrollDown() {
      var last = log.lastElementChild;
      if (last) last.scrollIntoView({ block: "end" });
    }

    function clearEmpty() {
      var empty = log.querySelector("[data-empty]");
      if (empty) empty.remove();
    }

    function fragment(html) {
      var template = document.createElement("template");
      template.innerHTML = html; // rendered and sanitised by the server
      return template.content.firstElementChild;
    }

    function byId(id) {
      return log.querySelector('[data-message-id="' + String(parseInt(id, 10)) + '"]');
    }

    // Replace the message with the same id, or append it.
    function upsert(html) {
      var el = fragment(html);
      if (!el) return null;
      var existing = byId(el.getAttribute("data-message-id"));
      if (existing) existing.replaceWith(el);
      else log.appendChild(el);
      return el;
    }

    function showError(text) {
      setStatus(text, true);
    }

    function send(frame) {
      if (!socket || socket.readyState !== WebSocket.OPEN || !ready) {
        setStatus("Not connected yet — please wait a moment.", true);
        return false;
      }
      socket.send(JSON.stringify(frame));
      return true;
    }

    // ---- server frames
    function onStarted(frame) {
      clearEmpty();
      var follow = nearBottom() || frame.mine;
      var question = upsert(frame.user_html);
      // Whatever followed the question (an earlier answer, before regenerate or edit) is gone.
      while (question && question.nextElementSibling) question.nextElementSibling.remove();
      upsert(frame.html);
      live[frame.message_id] = frame.offset || 0;
      if (frame.mine) {
        if (waiting === "send") {
          input.value = "";
          pending.replaceChildren(); // sent with the message (shown on it now)
        }
        waiting = null;
        setStatus("");
      }
      if (follow) scrollDown();
    }

    function onDelta(frame) {
      var shown = live[frame.message_id];
      var el = byId(frame.message_id);
      if (shown === undefined || !el) return;
      var text = frame.text || "";
      // Only the characters past what is shown (the server already sends no repeats).
      if (frame.offset > shown) return;
      text = text.slice(shown - frame.offset);
      if (!text) return;
      var follow = nearBottom();
      el.querySelector("[data-body]").appendChild(document.createTextNode(text));
      live[frame.message_id] = shown + text.length;
      if (follow) scrollDown();
    }

    function onDone(frame) {
      delete live[frame.message_id];
      var el = byId(frame.message_id);
      if (el && typeof frame.html === "string") {
        var follow = nearBottom();
        upsert(frame.html);
        if (follow) scrollDown();
      }
    }

    function onFrame(frame) {
      switch (frame.type) {
        case "ready":
          ready = true;
          retryDelay = 1000;
          setStatus("");
          break;
        case "history": {
          // After a reconnect: the whole conversation as it is now.
          var holder = document.createElement("template");
          holder.innerHTML = frame.html || "";
          live = {};
          if (holder.content.childElementCount) log.replaceChildren(holder.content);
          break;
        }
        case "started":
          onStarted(frame);
          break;
        case "delta":
          onDelta(frame);
          break;
        case "done":
          onDone(frame);
          break;
        case "title": {
          // Written by the title model after the first exchange; text only (never HTML).
          var heading = document.querySelector("[data-testid=conversation-title]");
          if (heading && frame.title) heading.textContent = frame.title;
          var current = document.querySelector("#sidebar-conversations [aria-current=page]");
          if (current && frame.title) current.textContent = frame.title;
          var sep = document.title.indexOf(" · ");
          if (frame.title) document.title = frame.title + (sep >= 0 ? document.title.slice(sep) : "");
          break;
        }
        case "error":
          // A refused message (another tab's answer is running, no credits, rate limit): it was
          // never added, so the text stays in the composer (or the edit box) to try again.
          showError(frame.message || "Something went wrong.");
          waiting = null;
          break;
        default:
          break;
      }
      updateButtons();
    }

    function socketUrl() {
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var url = scheme + window.location.host + wsPath;
      if (connectedOnce) return url + "?history=1"; // frames may have been missed meanwhile
      var streaming = log.querySelector('[data-status="streaming"][data-message-id]');
      return streaming ? url + "?streaming=" + streaming.getAttribute("data-message-id") : url;
    }

    function connect() {
      retryTimer = null;
      socket = new WebSocket(socketUrl());
      socket.addEventListener("open", function () {
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
        waiting = null;
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
      if (!content || busy()) return;
      if (!send({ type: "send", content: content, attachments: attachmentIds() })) return;
      waiting = "send"; // the message appears when the server has saved it ("started")
      setStatus("Sending…");
      updateButtons();
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

    // ---- attachments: uploaded at once, sent with the next message by id
    function attachmentIds() {
      return Array.prototype.map.call(pending.querySelectorAll("[data-attachment-id]"), function (chip) {
        return parseInt(chip.getAttribute("data-attachment-id"), 10);
      });
    }

    function post(url, body) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" },
        body: body,
      });
    }

    function upload(file) {
      var body = new FormData();
      body.append("file", file);
      setStatus("Uploading " + file.name + "…");
      return post(fileInput.getAttribute("data-attach"), body)
        .then(function (response) {
          return response.text().then(function (text) {
            if (!response.ok) throw new Error(text || "The file could not be attached.");
            var chip = fragment(text);
            if (chip) pending.appendChild(chip);
            setStatus("");
          });
        })
        .catch(function (error) {
          showError(file.name + ": " + (error.message || "the file could not be attached."));
        });
    }

    function uploadAll(files) {
      files.reduce(function (chain, file) {
        return chain.then(function () {
          return upload(file);
        });
      }, Promise.resolve());
    }

    if (fileInput) {
      var attachButton = root.querySelector("[data-attach-button]");
      if (attachButton) {
        attachButton.addEventListener("click", function () {
          fileInput.click();
        });
      }
      fileInput.addEventListener("change", function () {
        var files = Array.prototype.slice.call(fileInput.files || []);
        fileInput.value = "";
        uploadAll(files);
      });
      // Files pasted into the message box or dropped on the composer are attached too.
      input.addEventListener("paste", function (event) {
        var files = Array.prototype.slice.call((event.clipboardData && event.clipboardData.files) || []);
        if (!files.length) return;
        event.preventDefault();
        uploadAll(files);
      });
      composer.addEventListener("dragover", function (event) {
        if (event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") >= 0) {
          event.preventDefault();
          composer.classList.add("chat-dropping");
        }
      });
      composer.addEventListener("dragleave", function () {
        composer.classList.remove("chat-dropping");
      });
      composer.addEventListener("drop", function (event) {
        var files = Array.prototype.slice.call((event.dataTransfer && event.dataTransfer.files) || []);
        composer.classList.remove("chat-dropping");
        if (!files.length) return;
        event.preventDefault();
        uploadAll(files);
      });
    }

    pending.addEventListener("click", function (event) {
      var button = event.target.closest("[data-remove-attachment]");
      if (!button) return;
      var chip = button.closest("[data-attachment-id]");
      post(button.getAttribute("data-remove-attachment"), new URLSearchParams())
        .then(function (response) {
          if (response.ok && chip) chip.remove();
          else showError("The file could not be removed. Please try again.");
        })
        .catch(function () {
          showError("The file could not be removed. Please try again.");
        });
    });

    function copyText(text, button) {
      var label = button.textContent;
      var done = function () {
        button.textContent = "Copied";
        window.setTimeout(function () {
          button.textContent = label;
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
    }

    function csrfToken() {
      var field = document.querySelector("[name=csrfmiddlewaretoken]");
      return field ? field.value : "";
    }

    function rate(message, button) {
      var url = message.getAttribute("data-feedback-url");
      if (!url) return;
      var value = button.getAttribute("aria-pressed") === "true" ? "" : button.getAttribute("data-feedback");
      post(url, new URLSearchParams({ value: value }))
        .then(function (response) {
          return response.ok ? response.text() : Promise.reject(response);
        })
        .then(upsert)
        .catch(function () {
          showError("Your rating could not be saved. Please try again.");
        });
    }

    log.addEventListener("click", function (event) {
      var target = event.target.closest("button");
      if (!target) return;
      var message = target.closest(".chat-message");
      if (!message) return;
      if (target.matches("[data-copy-code]")) {
        var code = target.parentNode.querySelector("pre");
        if (code) copyText(code.textContent, target);
      } else if (target.matches("[data-copy]")) {
        copyText(message.querySelector("[data-raw]").value, target);
      } else if (target.matches("[data-edit]")) {
        startEdit(message);
      } else if (target.matches("[data-regenerate]")) {
        if (!busy() && send({ type: "regenerate" })) {
          waiting = "regenerate";
          updateButtons();
        }
      } else if (target.matches("[data-feedback]")) {
        rate(message, target);
      }
    });

    // The edit box is page state, not message markup: the edited message comes back from the
    // server ("started") and replaces the original.
    function startEdit(message) {
      if (busy() || message.querySelector("[data-edit-form]")) return;
      var id = message.getAttribute("data-message-id");
      if (!id) return;
      var body = message.querySelector("[data-body]");
      var form = document.createElement("form");
      form.className = "chat-edit";
      form.setAttribute("data-edit-form", "");
      var area = document.createElement("textarea");
      area.rows = 3;
      area.value = message.querySelector("[data-raw]").value;
      area.setAttribute("aria-label", "Edit message");
      var save = document.createElement("button");
      save.type = "submit";
      save.textContent = "Save and send";
      var cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "secondary outline";
      cancel.textContent = "Cancel";
      form.appendChild(area);
      form.appendChild(save);
      form.appendChild(cancel);
      body.hidden = true;
      body.after(form);
      area.focus();
      cancel.addEventListener("click", function () {
        form.remove();
        body.hidden = false;
      });
      area.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          form.requestSubmit();
        }
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var content = area.value.trim();
        if (!content || busy()) return;
        if (!send({ type: "edit", message_id: parseInt(id, 10), content: content })) return;
        waiting = "edit";
        setStatus("Sending…");
        updateButtons();
      });
    }

    // The model picker switches as soon as a model is chosen.
    var picker = document.querySelector("[data-model-picker]");
    if (picker) {
      var select = picker.querySelector("[data-model-select]");
      var submit = picker.querySelector("[data-model-submit]");
      if (submit) submit.hidden = true;
      if (select) {
        select.addEventListener("change", function () {
          if (select.value) picker.requestSubmit();
        });
      }
    }

    // ---- presets: the Presets button, or "/" typed in an empty composer, opens a picker; a
    // preset's blanks are filled in the dialog and its prompt (rendered and checked by the
    // server, the use counted) goes into the composer, for the user to read and send.
    var dialog = root.querySelector("[data-presets-dialog]");
    if (dialog) {
      var search = dialog.querySelector("[data-presets-search]");
      var body = dialog.querySelector("[data-presets-body]");
      var slash = false; // opened by "/": the "/" typed is replaced by the prompt
      var searchTimer = null;

      var shown = 0; // the latest view asked for: a slower, older answer is dropped
      var loadPresets = function () {
        var ticket = ++shown;
        var url = dialog.getAttribute("data-picker-url") + "?q=" + encodeURIComponent(search.value);
        fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
          .then(function (response) { return response.text(); })
          .then(function (html) {
            if (ticket === shown) body.innerHTML = html; // server-rendered, escaped
          })
          .catch(function () { body.textContent = "The presets could not be loaded."; });
      };

      var openPresets = function (fromSlash) {
        slash = fromSlash;
        search.value = "";
        loadPresets();
        if (!dialog.open) dialog.showModal();
        search.focus();
      };

      var closePresets = function () {
        if (dialog.open) dialog.close();
        input.focus();
      };

      var insertPrompt = function (text) {
        if (slash && input.value.charAt(0) === "/") {
          input.value = text;
        } else {
          var start = input.selectionStart || 0;
          input.setRangeText(text, start, input.selectionEnd || start, "end");
        }
        slash = false;
        closePresets();
        input.dispatchEvent(new Event("input", { bubbles: true }));
      };

      root.querySelector("[data-presets-open]").addEventListener("click", function () {
        openPresets(false);
      });
      dialog.querySelector("[data-presets-close]").addEventListener("click", closePresets);
      search.addEventListener("input", function () {
        clearTimeout(searchTimer);
        searchTimer = setTimeout(loadPresets, 200);
      });
      input.addEventListener("input", function () {
        if (input.value === "/" && !dialog.open) openPresets(true);
      });

      body.addEventListener("click", function (event) {
        var item = event.target.closest("[data-preset-fill]");
        if (item) {
          clearTimeout(searchTimer);
          var ticket = ++shown;
          fetch(item.getAttribute("data-preset-fill"), { credentials: "same-origin" })
            .then(function (response) { return response.text(); })
            .then(function (html) {
              if (ticket !== shown) return;
              body.innerHTML = html;
              var form = body.querySelector("[data-preset-render]");
              var first = form && form.querySelector("input:not([type=hidden]), textarea, select");
              if (first) first.focus();
              else if (form) form.requestSubmit(); // nothing to fill in
            });
          return;
        }
        if (event.target.closest("[data-preset-back]")) loadPresets();
      });

      body.addEventListener("submit", function (event) {
        var form = event.target.closest("[data-preset-render]");
        if (!form) return;
        event.preventDefault();
        var errorEl = form.querySelector("[data-preset-error]");
        fetch(form.getAttribute("action"), {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" },
          body: new FormData(form),
        })
          .then(function (response) {
            return response.json().then(function (payload) {
              if (response.ok) {
                insertPrompt(payload.prompt);
                return;
              }
              var errors = (payload.error && payload.error.errors) || {};
              var lines = Object.keys(errors).map(function (name) {
                var field = form.querySelector("[name='" + name + "']");
                var label = field && field.labels && field.labels[0] ? field.labels[0].textContent.trim() : name;
                return label + ": " + errors[name];
              });
              errorEl.textContent = lines.join(" ") || (payload.error && payload.error.message) || "Check the values.";
              errorEl.hidden = false;
            });
          })
          .catch(function () {
            errorEl.textContent = "The preset could not be used. Please try again.";
            errorEl.hidden = false;
          });
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
