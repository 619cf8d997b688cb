// @ts-check
/// <reference lib="webworker" />
/**
 * The web client's service worker: keeps the app's own files (the page and its /assets/) so
 * that a reload while the gateway is down still opens the page, which then shows the history
 * stored on the device and reconnects by itself. Nothing else is touched: calls to the gateway
 * (Connect, gRPC-Web), /dev/token and every other origin go to the network as usual.
 *
 * The page is fetched from the network first (a new release shows at once) and from the cache
 * only when the network fails; hashed assets never change, so they come from the cache first.
 */
const sw = /** @type {ServiceWorkerGlobalScope} */ (/** @type {unknown} */ (self));
const CACHE = "microchat-app-v1";
/** Most files kept (old releases' assets are dropped first). */
const ENTRIES_MAX = 64;
const scope = new URL(sw.registration.scope);
const page = new URL("./", scope).href;

/** The page's own files, by path below the scope: "" and index.html are the page. */
function kind(url) {
  if (url.origin !== scope.origin || !url.pathname.startsWith(scope.pathname)) return undefined;
  const rest = url.pathname.slice(scope.pathname.length);
  if (rest === "" || rest === "index.html") return "page";
  if (rest.startsWith("assets/")) return "asset";
  return undefined;
}

async function trim(cache) {
  const assets = (await cache.keys()).filter((key) => key.url !== page);
  for (const key of assets.slice(0, Math.max(0, assets.length - ENTRIES_MAX))) await cache.delete(key);
}

// Installing keeps the page and the assets it names, so the first reload offline works.
sw.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      const response = await fetch(page, { cache: "no-cache" });
      if (!response.ok) return;
      const html = await response.clone().text();
      await cache.put(page, response);
      const assets = [...html.matchAll(/(?:src|href)="([^"]*assets\/[^"]+)"/g)].map((m) => new URL(m[1], page).href);
      await cache.addAll([...new Set(assets)]);
      await sw.skipWaiting();
    })(),
  );
});

sw.addEventListener("activate", (event) => event.waitUntil(sw.clients.claim()));

sw.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  const which = kind(url);
  if (which === undefined) return;
  event.respondWith(which === "page" ? pageFirstFromNetwork(request) : assetFromCache(request));
});

async function pageFirstFromNetwork(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await cache.put(page, response.clone());
    return response;
  } catch (error) {
    const cached = await cache.match(page);
    if (cached !== undefined) return cached;
    throw error;
  }
}

async function assetFromCache(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached !== undefined) return cached;
  const response = await fetch(request);
  if (response.ok) {
    await cache.put(request, response.clone());
    await trim(cache);
  }
  return response;
}
