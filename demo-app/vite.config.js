// Vite configuration of the demo app: served on the loopback interface only.
import { defineConfig } from "vite";

export default defineConfig({
  server: { host: "127.0.0.1", strictPort: true },
  preview: { host: "127.0.0.1", strictPort: true },
  build: { target: "es2022" },
});
