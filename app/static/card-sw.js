// Keeps the digital card page available offline once it has been opened (network first).
const CACHE = "mylibrary-card-v1";
self.addEventListener("install", (event) => { self.skipWaiting(); });
self.addEventListener("activate", (event) => { event.waitUntil(self.clients.claim()); });
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || url.pathname !== "/card") return;
  event.respondWith(
    fetch(event.request).then((response) => {
      if (response.ok) { const copy = response.clone(); caches.open(CACHE).then((c) => c.put("/card", copy)); }
      return response;
    }).catch(() => caches.match("/card"))
  );
});
