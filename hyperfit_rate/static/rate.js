// The rating page: fetch the next pair, show it (text only through textContent), send the vote, repeat.
(function () {
  "use strict";
  var app = document.getElementById("app");
  var token = app.dataset.token;
  var kind = app.dataset.kind;
  var current = null;
  var busy = true;

  function byId(id) { return document.getElementById(id); }

  function api(path, options) {
    options = options || {};
    options.headers = Object.assign({"X-Rater-Token": token}, options.headers || {});
    options.credentials = "same-origin";
    return fetch(path, options).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return {ok: response.ok, status: response.status, body: body};
      });
    });
  }

  function imageUrl(id) {
    return "/img/" + encodeURIComponent(id) + "?t=" + encodeURIComponent(token);
  }

  // Shows one slot; the promise settles when it can be judged (an image loaded, or failed to).
  function fill(slot, value, label) {
    var box = byId(slot);
    box.replaceChildren();
    if (kind === "text") {
      box.textContent = value;  // generated text is shown as text, never parsed as HTML
      return Promise.resolve();
    }
    var img = document.createElement("img");
    var loaded = new Promise(function (resolve, reject) {
      img.addEventListener("load", function () { if (img.naturalWidth > 0) { resolve(); } else { reject(); } });
      img.addEventListener("error", function () { reject(); });
    });
    img.alt = label;
    img.src = imageUrl(value);
    box.appendChild(img);
    return loaded;
  }

  function setBusy(value) {
    busy = value;
    document.querySelectorAll(".buttons button").forEach(function (b) { b.disabled = value; });
  }

  function status(text) { byId("status").textContent = text || ""; }

  function showProgress(progress) {
    byId("progress-text").textContent = progress.rated + " of " + progress.total + " rated";
    byId("progress-bar").style.width = (progress.total ? 100 * progress.rated / progress.total : 100) + "%";
  }

  function show(state) {
    showProgress(state.progress);
    if (state.done) {
      current = null;
      app.dataset.pair = "";
      byId("pair").hidden = true;
      byId("done").hidden = false;
      return;
    }
    var pair = current = state.pair;
    var shown = [fill("context", pair.context, "context"), fill("left", pair.left, "A"),
                 fill("right", pair.right, "B")];
    app.dataset.pair = pair.id;
    byId("pair").hidden = false;
    byId("done").hidden = true;
    status(kind === "text" ? "" : "loading the images ...");
    // a vote counts only once the rater has seen both sides: the buttons and keys stay off until then
    Promise.all(shown).then(function () {
      if (current === pair) { status(""); setBusy(false); }
    }, function () {
      if (current === pair) { status("an image of this pair did not load; reload the page to try again"); }
    });
  }

  function load() {
    setBusy(true);
    api("/api/next").then(function (r) {
      if (r.ok) { show(r.body); } else { status(r.body.error || ("error " + r.status)); }
    }).catch(function () { status("cannot reach the server; reload the page to try again"); });
  }

  function vote(answer) {
    if (!current || busy) { return; }
    setBusy(true);
    api("/api/vote", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({pair: current.id, answer: answer})
    }).then(function (r) {
      if (!r.ok && r.status !== 409) { status(r.body.error || ("error " + r.status)); setBusy(false); return; }
      load();
    }).catch(function () { status("the vote did not reach the server; try again"); setBusy(false); });
  }

  document.querySelectorAll(".buttons button").forEach(function (button) {
    button.addEventListener("click", function () { vote(button.dataset.answer); });
  });

  var keys = {"1": "left", "a": "left", "2": "right", "b": "right", "3": "equal", "e": "equal"};
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) { return; }
    var answer = keys[event.key.toLowerCase()];
    if (answer) { event.preventDefault(); vote(answer); }
  });

  load();
})();
