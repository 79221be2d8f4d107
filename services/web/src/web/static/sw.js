/* OmaKaiku's service worker (served as /sw.js, scope /oma; see web/routes/pwa.py).
 *
 * - The shell (CSS, scripts, icons, the offline page) is kept at install.
 * - The card page (/oma) and the upcoming events (/oma/events) are fetched from
 *   the network first and a copy kept; with no connection the copy is shown,
 *   its "offline – shown as of …" note made visible (the time is in the page).
 * - When the session has ended (the page redirects to sign-in) the copies are
 *   dropped: a signed-out phone keeps no one's card.
 * - Push: a notification with the payload's title; a click opens its url.
 */
"use strict";

var VERSION = "1";
var SHELL = "omakaiku-shell-" + VERSION;
var PAGES = "omakaiku-pages";
var SHELL_FILES = ["/static/style.css", "/static/app.js", "/static/oma.js",
  "/static/htmx.min.js", "/static/icons/icon-192.png", "/static/icons/icon-512.png",
  "/oma/offline"];
var KEPT_PAGES = ["/oma", "/oma/events"];
var BANNER_HIDDEN = " data-offline-banner hidden";
var BANNER_SHOWN = " data-offline-banner";

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(SHELL).then(function (cache) {
    return cache.addAll(SHELL_FILES);
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) {
      return name.indexOf("omakaiku-shell-") === 0 && name !== SHELL;
    }).map(function (name) { return caches.delete(name); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) { return; }
  if (KEPT_PAGES.indexOf(url.pathname) >= 0 && !url.search) {
    event.respondWith(networkFirst(request, url.pathname));
  } else if (request.mode === "navigate" && url.pathname.indexOf("/oma") === 0) {
    event.respondWith(fetch(request).catch(function () {
      return caches.match("/oma/offline", {cacheName: SHELL}).then(function (page) {
        return page || Response.error();
      });
    }));
  } else if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(staleWhileRevalidate(event, request));
  }
});

function networkFirst(request, path) {
  return fetch(request).then(function (response) {
    if (response.ok && response.headers.get("X-Kaiku-Keep") === "1") {
      // Only a page that shows the card (or the tickets) replaces the copy.
      var copy = response.clone();
      return caches.open(PAGES).then(function (cache) {
        return cache.put(path, copy);
      }).then(function () { return response; });
    }
    if (response.type === "opaqueredirect" || response.redirected) {
      return caches.delete(PAGES).then(function () { return response; });  // signed out
    }
    return response.status >= 500 ? keptCopy(path, response) : response;
  }).catch(function () { return keptCopy(path, null); });
}

/* The copy of a page, its offline note shown; else the offline page. */
function keptCopy(path, otherwise) {
  return caches.match(path, {cacheName: PAGES}).then(function (kept) {
    if (!kept) {
      if (otherwise) { return otherwise; }
      return caches.match("/oma/offline", {cacheName: SHELL}).then(function (page) {
        return page || Response.error();
      });
    }
    return kept.text().then(function (html) {
      return new Response(html.replace(BANNER_HIDDEN, BANNER_SHOWN), {
        status: 200, headers: {"Content-Type": "text/html; charset=utf-8",
          "X-Kaiku-Offline": "1"}});
    });
  });
}

function staleWhileRevalidate(event, request) {
  return caches.open(SHELL).then(function (cache) {
    return cache.match(request).then(function (kept) {
      var fresh = fetch(request).then(function (response) {
        if (response.ok) { cache.put(request, response.clone()); }
        return response;
      });
      if (kept) {
        event.waitUntil(fresh.catch(function () { return null; }));
        return kept;
      }
      return fresh;
    });
  });
}

self.addEventListener("push", function (event) {
  var data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = {}; }
  var title = typeof data.title === "string" && data.title ? data.title : "OmaKaiku";
  event.waitUntil(self.registration.showNotification(title, {
    icon: "/static/icons/icon-192.png", badge: "/static/icons/icon-192.png",
    tag: data.kind || "omakaiku", data: {url: sameSiteUrl(data.url)}
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var target = sameSiteUrl(event.notification.data && event.notification.data.url);
  event.waitUntil(self.clients.matchAll({type: "window", includeUncontrolled: true})
    .then(function (windows) {
      for (var i = 0; i < windows.length; i++) {
        if (windows[i].url === target && "focus" in windows[i]) { return windows[i].focus(); }
      }
      return self.clients.openWindow(target);
    }));
});

/* Only this site's pages are opened from a notification. */
function sameSiteUrl(value) {
  try {
    var url = new URL(value || "/oma", self.location.origin);
    if (url.origin === self.location.origin) { return url.href; }
  } catch (e) { /* not a URL */ }
  return new URL("/oma", self.location.origin).href;
}
