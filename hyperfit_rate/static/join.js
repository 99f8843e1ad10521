// The loopback-only start page: pick a name, get a rater link, go there.
(function () {
  "use strict";
  var form = document.getElementById("join");
  var input = document.getElementById("name");
  var remembered = window.localStorage.getItem("hyperfit-rate-name");
  if (remembered) { input.value = remembered; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var name = input.value.trim();
    fetch("/api/join", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name: name})
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { document.getElementById("status").textContent = body.error || "error"; return; }
        window.localStorage.setItem("hyperfit-rate-name", name);
        window.location.assign(body.url);
      });
    }).catch(function () { document.getElementById("status").textContent = "cannot reach the server"; });
  });
})();
