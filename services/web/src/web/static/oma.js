/* OmaKaiku on a phone: the service worker (offline card, push), the card's QR
 * renewing itself, and turning notifications on. Every page works without it. */
(function () {
  "use strict";

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", {scope: "/oma"}).catch(function () {
      /* no worker: the pages still work, only not offline */
    });
  }

  // --- the card's QR renews itself before its token expires --------------------------
  var timer = null;

  function schedule(seconds) {
    clearTimeout(timer);
    timer = setTimeout(refreshCard, Math.max(5, seconds) * 1000);
  }

  function refreshCard() {
    var card = document.getElementById("mobile-card");
    if (!card) { return; }
    if (navigator.onLine === false) { return; }  // the "online" event brings it back
    fetch("/oma", {credentials: "same-origin", headers: {"Accept": "text/html"}})
      .then(function (response) {
        if (!response.ok || response.redirected || response.headers.get("X-Kaiku-Offline")) {
          throw new Error("no fresh card");
        }
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html")
          .getElementById("mobile-card");
        if (!fresh) { throw new Error("no card in the page"); }
        var current = document.getElementById("mobile-card");
        current.replaceWith(document.importNode(fresh, true));
        var banner = document.querySelector("[data-offline-banner]");
        if (banner) { banner.hidden = true; }
        schedule(Number(fresh.dataset.refreshIn) || 60);
      })
      .catch(function () { schedule(30); });
  }

  // --- notifications on this device, only after the holder presses the button ------
  function keyBytes(base64url) {
    var padded = (base64url + "===".slice((base64url.length + 3) % 4))
      .replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes;
  }

  function turnOnPush(box, say) {
    say(box.dataset.working);
    Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") { throw new Error("denied"); }
      return navigator.serviceWorker.register("/sw.js", {scope: "/oma"})
        .then(function () { return navigator.serviceWorker.ready; });
    }).then(function (registration) {
      return registration.pushManager.getSubscription().then(function (existing) {
        return existing || registration.pushManager.subscribe({
          userVisibleOnly: true, applicationServerKey: keyBytes(box.dataset.key)});
      });
    }).then(function (subscription) {
      return fetch(box.dataset.action, {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": box.dataset.csrf},
        body: JSON.stringify(subscription.toJSON())});
    }).then(function (response) {
      if (!response.ok) { throw new Error("refused"); }
      say(box.dataset.done);
      window.location.reload();  // the device list, from the server
    }).catch(function (error) {
      say(error && error.message === "denied" ? box.dataset.denied : box.dataset.failed);
    });
  }

  function setUpPushButton() {
    var box = document.getElementById("push-turn-on");
    var button = document.getElementById("push-enable");
    var status = document.getElementById("push-status");
    if (!box || !button) { return; }
    var say = function (text) { if (status) { status.textContent = text; } };
    var needsScript = document.getElementById("push-needs-script");
    if (!("serviceWorker" in navigator && "PushManager" in window && "Notification" in window)) {
      if (needsScript) { needsScript.textContent = box.dataset.unsupported; }
      return;
    }
    if (needsScript) { needsScript.hidden = true; }
    box.hidden = false;
    button.addEventListener("click", function () { turnOnPush(box, say); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var card = document.getElementById("mobile-card");
    if (card) {
      schedule(Number(card.dataset.refreshIn) || 60);
      window.addEventListener("online", refreshCard);
    }
    setUpPushButton();
  });
})();
