import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The build has no configuration in it: whoever serves web/dist serves /config.json beside it
// (scripts/console.py locally, Firebase Hosting deployed), so one build runs everywhere.
export default defineConfig({
  plugins: [react()],
  build: { target: "es2022", sourcemap: true },
});
