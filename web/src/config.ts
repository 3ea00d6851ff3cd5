// The console's runtime configuration, `/config.json`, served beside the build by whoever hosts
// it (Firebase Hosting deployed, scripts/stack.py locally): one build runs in every environment.

export type Service = "crud" | "chat_stream" | "approve_action" | "contract_parse";

export interface Config {
  firebase: { apiKey: string; authDomain: string; projectId: string };
  /** Base URL of each function, without a trailing slash. */
  api: Record<Service, string>;
  /** The Auth emulator's URL locally; null against real Firebase Auth. */
  authEmulator: string | null;
}

const SERVICES: Service[] = ["crud", "chat_stream", "approve_action", "contract_parse"];

export class ConfigError extends Error {}

export async function loadConfig(url = "/config.json"): Promise<Config> {
  let raw: unknown;
  try {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new ConfigError(`${url} answered ${response.status}.`);
    raw = await response.json();
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`${url} could not be read: ${(error as Error).message}`);
  }
  return parseConfig(raw);
}

function parseConfig(raw: unknown): Config {
  const problems: string[] = [];
  const object = (value: unknown, name: string): Record<string, unknown> => {
    if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
    problems.push(`${name} is not an object`);
    return {};
  };
  const text = (value: unknown, name: string): string => {
    if (typeof value === "string" && value.trim()) return value;
    problems.push(`${name} is missing`);
    return "";
  };
  const root = object(raw, "the file");
  const firebase = object(root.firebase, "firebase");
  const api = object(root.api, "api");
  const config: Config = {
    firebase: {
      apiKey: text(firebase.apiKey, "firebase.apiKey"),
      authDomain: text(firebase.authDomain, "firebase.authDomain"),
      projectId: text(firebase.projectId, "firebase.projectId"),
    },
    api: Object.fromEntries(
      SERVICES.map((service) => [service, text(api[service], `api.${service}`).replace(/\/+$/, "")]),
    ) as Record<Service, string>,
    authEmulator: root.authEmulator == null ? null : text(root.authEmulator, "authEmulator"),
  };
  if (problems.length) throw new ConfigError(`/config.json: ${problems.join("; ")}.`);
  return config;
}
