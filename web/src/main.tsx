import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { configureApi } from "./api/client";
import { startAuth } from "./auth";
import { loadConfig } from "./config";
import "./styles.css";

const root = createRoot(document.getElementById("root")!);

loadConfig()
  .then((config) => {
    configureApi(config);
    startAuth(config);
    root.render(
      <StrictMode>
        <App />
      </StrictMode>,
    );
  })
  .catch((error: Error) => {
    root.render(
      <main className="boot-error">
        <h1>CSCX cannot start</h1>
        <p role="alert">{error.message}</p>
      </main>,
    );
  });
