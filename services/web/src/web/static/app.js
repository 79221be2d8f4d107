/* Small behaviours that need script; every page works without it. */
(function () {
  "use strict";
  function bars(root) {
    root.querySelectorAll(".bar[data-width]").forEach(function (bar) {
      bar.style.width = Math.max(0, Math.min(100, Number(bar.dataset.width) || 0)) + "%";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    bars(document);
    // The welcome e-mail's one-time link: /oma/signin#link_token=…
    var match = /[#&]link_token=([^&]+)/.exec(window.location.hash);
    var form = document.getElementById("link-signin");
    if (match && form) {
      history.replaceState(null, "", window.location.pathname);
      document.getElementById("link_token").value = decodeURIComponent(match[1]);
      form.submit();
    }
  });
  // Number fields on the desk: focusing selects the value, so typing replaces it.
  document.addEventListener("focusin", function (event) {
    var field = event.target;
    if (field.matches && field.matches(".desk input[type=number]")) { field.select(); }
  });
  // The ticket desk: after each answer, take the next form's idempotency key,
  // clear the card number and put the cursor back in it for the next customer.
  document.addEventListener("htmx:afterSwap", function (event) {
    bars(event.target);
    if (event.target.id !== "result") { return; }
    var next = document.getElementById("next-idem");
    var idem = document.getElementById("desk-idem");
    if (next && idem) { idem.value = next.dataset.idem; }
    var ok = event.target.querySelector(".notice.ok");
    var card = document.getElementById("card_number");
    if (card) {
      if (ok) { card.value = ""; var c = document.getElementById("children"); if (c) { c.value = "0"; } }
      card.focus();
      if (!ok) { card.select(); }
    }
  });
})();
