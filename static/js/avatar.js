// Profile avatar: shows the chosen picture before it is uploaded (and says at once when it is not
// an image the site takes, or too large), and what "Remove my avatar" will do. The server checks
// the upload again; without this script the form works the same, only without the preview.
(function () {
  "use strict";

  function init() {
    var root = document.querySelector("[data-avatar]");
    if (!root) return;
    var input = root.querySelector("input[type=file]");
    var preview = root.querySelector("[data-avatar-preview]");
    var initial = root.querySelector("[data-avatar-initial]");
    var problem = root.querySelector("[data-avatar-problem]");
    var remove = root.querySelector("input[name=remove_avatar]");
    if (!input || !preview || !initial || !problem) return;
    var stored = preview.getAttribute("src");
    var storedAlt = preview.getAttribute("alt");
    var maxBytes = parseInt(root.getAttribute("data-max-bytes"), 10) || 0;
    var types = (input.getAttribute("accept") || "").split(",");
    var chosenUrl = null;

    function show(src, alt) {
      if (src) {
        preview.src = src;
        preview.alt = alt;
        preview.hidden = false;
        initial.hidden = true;
      } else {
        preview.removeAttribute("src");
        preview.hidden = true;
        initial.hidden = false;
      }
    }

    function say(text) {
      problem.textContent = text;
      problem.hidden = !text;
    }

    function forget() {
      if (chosenUrl) URL.revokeObjectURL(chosenUrl);
      chosenUrl = null;
    }

    input.addEventListener("change", function () {
      forget();
      say("");
      var file = input.files && input.files[0];
      if (!file) return show(remove && remove.checked ? null : stored, storedAlt);
      if (types.indexOf(file.type) === -1) {
        say("Choose a PNG, JPEG, WebP or GIF image.");
        return show(stored, storedAlt);
      }
      if (maxBytes && file.size > maxBytes) {
        say("This image is too large: the limit is " + Math.floor(maxBytes / 1024) + " KiB.");
        return show(stored, storedAlt);
      }
      chosenUrl = URL.createObjectURL(file);
      show(chosenUrl, "Your new avatar (not saved yet)");
      if (remove) remove.checked = false;
    });

    if (remove) {
      remove.addEventListener("change", function () {
        if (!remove.checked) return show(stored, storedAlt);
        forget();
        say("");
        input.value = "";
        show(null, "");
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
