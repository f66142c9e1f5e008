// Vite configuration of the demo app: served on the loopback interface only. Two entries: the
// app, and its Service Worker (`/sw.js`, at the root so that it controls every page), and a
// manifest of the built files, which the Service Worker caches so the app opens offline.
import { defineConfig } from "vite";

export default defineConfig({
  server: { host: "127.0.0.1", strictPort: true },
  preview: { host: "127.0.0.1", strictPort: true },
  build: {
    target: "es2022",
    manifest: "asset-manifest.json",
    rollupOptions: {
      // fhirclient's WebCrypto shim reads `module` where it exists; in a browser it does not.
      onwarn(warning, warn) {
        if (warning.code === "COMMONJS_VARIABLE_IN_ESM" && /isomorphic-webcrypto/.test(warning.id ?? warning.message)) return;
        warn(warning);
      },
      input: { main: "index.html", sw: "src/sw.js" },
      output: {
        entryFileNames: (chunk) => (chunk.name === "sw" ? "sw.js" : "assets/[name]-[hash].js"),
      },
    },
  },
});
