import { render } from "preact";
import { Root, type PageConfig } from "./ui/root.js";
import "./ui/styles.css";

/**
 * The page's settings: the gateway is `?server=URL`, else the `microchat-server` meta tag,
 * else this page's origin; `?protocol=grpc-web` switches from the Connect protocol.
 */
function pageConfig(): PageConfig {
  const params = new URLSearchParams(location.search);
  const meta = document.querySelector<HTMLMetaElement>('meta[name="microchat-server"]')?.content ?? "";
  const server = params.get("server") ?? (meta !== "" ? meta : location.origin);
  return { baseUrl: server.replace(/\/+$/, ""), protocol: params.get("protocol") === "grpc-web" ? "grpc-web" : "connect" };
}

render(<Root config={pageConfig()} />, document.getElementById("root")!);

// Keeps the page's own files, so a reload while the gateway is down still opens it (public/sw.js).
if (import.meta.env.PROD && "serviceWorker" in navigator) navigator.serviceWorker.register("./sw.js").catch(() => undefined);
