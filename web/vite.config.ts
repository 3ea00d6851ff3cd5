import { readFileSync } from "node:fs";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

// `npm run dev` serves /config.json from the file CSCX_CONSOLE_CONFIG names (`make run` writes
// one to .stack/console-config.json); a build never contains one: the host serves it.
function runtimeConfig(): Plugin {
  return {
    name: "cscx-runtime-config",
    apply: "serve",
    configureServer(server) {
      server.middlewares.use("/config.json", (_request, response) => {
        const path = process.env.CSCX_CONSOLE_CONFIG ?? "../.stack/console-config.json";
        response.setHeader("Content-Type", "application/json");
        response.setHeader("Cache-Control", "no-store");
        response.end(readFileSync(path));
      });
    },
  };
}

export default defineConfig({
  plugins: [react(), runtimeConfig()],
  server: { host: "localhost", port: 3000, strictPort: true },
  build: { target: "es2022", sourcemap: true },
});
