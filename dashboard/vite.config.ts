// Builds the dashboard into the hub's package (hub/dashboard/static), which the hub serves at /.
// Everything is bundled: no CDN, no runtime fetch from the internet (plants are often offline).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "../hub/dashboard/static",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npx vite` for development: the API and WebSocket of a hub on 127.0.0.1:8000.
    host: "127.0.0.1",
    proxy: {
      // ws: the identity watch view's WebSocket lives under /api/v1.
      "/api": { target: "http://127.0.0.1:8000", ws: true },
      "/ws": { target: "ws://127.0.0.1:8000", ws: true },
    },
  },
});
