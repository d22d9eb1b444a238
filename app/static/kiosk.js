/* The lobby kiosk: check in for a service, get a number and an estimated wait. */
(function () {
  "use strict";
  var form = document.getElementById("kiosk-form");
  var error = document.getElementById("kiosk-error");
  var result = document.getElementById("kiosk-result");
  var title = document.getElementById("kiosk-result-title");
  var clientId = null;
  var busy = false;

  function newId() {
    return (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
      : String(Date.now()) + Math.random().toString(16).slice(2);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }
    var chosen = form.querySelector('input[name="queue"]:checked');
    if (!chosen) {
      error.textContent = "Choose a service first.";
      var first = form.querySelector('input[name="queue"]');
      if (first) { first.focus(); }
      return;
    }
    error.textContent = "";
    clientId = clientId || newId();  // a second tap or a retry returns the same number
    busy = true;
    fetch("/api/v1/walkins", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        queue: chosen.value,
        language: form.language.value,
        phone: form.phone.value.trim(),
        client_id: clientId
      })
    }).then(function (response) {
      return response.json().then(function (body) { return { ok: response.ok, body: body }; });
    }).then(function (r) {
      busy = false;
      if (!r.ok) {
        error.textContent = r.body.error ? r.body.error.message : "Something went wrong. Please try again.";
        if (r.body.error && r.body.error.code === "invalid_phone") { form.phone.focus(); }
        return;
      }
      show(r.body);
    }).catch(function () {
      busy = false;
      error.textContent = "The kiosk is offline. Please try again or ask at the front desk.";
    });
  });

  function show(v) {
    form.hidden = true;
    result.hidden = false;
    document.getElementById("kiosk-number").textContent = v.number;
    var wait = v.people_ahead === 0 ? "You are next for " + v.service + "."
      : v.people_ahead + (v.people_ahead === 1 ? " person" : " people") + " ahead of you for " +
        v.service + ". Estimated wait: about " + v.estimated_wait_minutes + " minutes.";
    document.getElementById("kiosk-wait").textContent = wait;
    document.getElementById("kiosk-text").textContent = v.text_when_near
      ? "We will text you when it is almost your turn." : "Watch the screen for your number.";
    title.focus();
  }

  document.getElementById("kiosk-again").addEventListener("click", function () {
    form.reset();
    clientId = null;
    result.hidden = true;
    form.hidden = false;
    var first = form.querySelector('input[name="queue"]');
    if (first) { first.focus(); }
  });
})();
