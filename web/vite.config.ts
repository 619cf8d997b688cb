import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

/** Builds the web client into web/dist, which the gateway serves at `/`. */
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  // Relative asset URLs, so the built client can be hosted under any path or origin.
  base: "./",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    reportCompressedSize: false,
  },
  server: { host: "127.0.0.1" },
});
