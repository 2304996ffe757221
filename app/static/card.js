// Registers the service worker that keeps the card page for offline use.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/card-sw.js", { scope: "/" }).catch(() => {});
}
