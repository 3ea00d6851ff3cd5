// The one way the console talks to the API: every call carries the signed-in user's ID token,
// and every failure becomes an ApiError with the contract's message (DESIGN §4).

import { idToken } from "../auth";
import type { Config, Service } from "../config";
import type { ErrorCode, ErrorDetail } from "./types";

export class ApiError extends Error {
  constructor(
    /** The HTTP status; 0 when the server could not be reached. */
    readonly status: number,
    readonly code: ErrorCode | "NETWORK",
    message: string,
    readonly details: ErrorDetail[] = [],
    /** Seconds to wait before a retry, when the server said (429, 409 in flight). */
    readonly retryAfter: number | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  /** Validation messages by field (`stakeholders.0.email`), for forms to show beside each field. */
  get fieldErrors(): Record<string, string> {
    return Object.fromEntries(this.details.map((d) => [d.field, d.message]));
  }
}

export interface Answer<T> {
  data: T;
  status: number;
  /** The object's version, for If-Match (DESIGN §4). */
  etag: string | null;
}

type Query = Record<string, string | number | boolean | null | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  ifMatch?: string | null;
  idempotencyKey?: string;
  signal?: AbortSignal;
}

let services: Config["api"] | null = null;

export function configureApi(config: Config): void {
  services = config.api;
}

export function serviceUrl(service: Service, path: string, query?: Query): string {
  if (!services) throw new Error("The API is used before configureApi()");
  const url = new URL(services[service] + path);
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  return url.toString();
}

/** fetch() with the ID token; a 401 is retried once with a fresh token; a failure is an ApiError. */
export async function authorizedFetch(input: string, init: RequestInit = {}): Promise<Response> {
  const send = async (forceRefresh: boolean): Promise<Response> => {
    const token = await idToken(forceRefresh);
    if (!token) throw new ApiError(401, "UNAUTHENTICATED", "You are signed out. Sign in again.");
    const headers = new Headers(init.headers);
    headers.set("Authorization", `Bearer ${token}`);
    try {
      return await fetch(input, { ...init, headers });
    } catch (error) {
      if ((error as Error).name === "AbortError") throw error;
      throw new ApiError(0, "NETWORK", "The server cannot be reached. Check your connection and try again.");
    }
  };
  let response = await send(false);
  if (response.status === 401) response = await send(true);
  if (!response.ok) throw await errorOf(response.status, () => response.text(), response.headers.get("Retry-After"));
  return response;
}

export async function request<T>(
  service: Service,
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  options: RequestOptions = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = {};
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.ifMatch) headers["If-Match"] = options.ifMatch;
  if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
  const response = await authorizedFetch(serviceUrl(service, path, options.query), {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  const data = response.status === 204 ? undefined : await response.json();
  return { data: data as T, status: response.status, etag: response.headers.get("ETag") };
}

export interface UploadProgress {
  loaded: number;
  total: number;
  /** True once every byte is sent and the server is working on it. */
  sent: boolean;
}

/** A multipart POST with upload progress (fetch() reports none), token and errors as above. */
export async function upload<T>(
  service: Service,
  path: string,
  form: FormData,
  options: { idempotencyKey?: string; signal?: AbortSignal; onProgress?: (progress: UploadProgress) => void },
): Promise<Answer<T>> {
  const attempt = async (forceRefresh: boolean) => {
    const token = await idToken(forceRefresh);
    if (!token) throw new ApiError(401, "UNAUTHENTICATED", "You are signed out. Sign in again.");
    return new Promise<XMLHttpRequest>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", serviceUrl(service, path));
      xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      if (options.idempotencyKey) xhr.setRequestHeader("Idempotency-Key", options.idempotencyKey);
      xhr.upload.onprogress = (event) =>
        options.onProgress?.({ loaded: event.loaded, total: event.total, sent: false });
      xhr.upload.onload = () => options.onProgress?.({ loaded: 1, total: 1, sent: true });
      xhr.onload = () => resolve(xhr);
      xhr.onerror = () =>
        reject(new ApiError(0, "NETWORK", "The server cannot be reached. Check your connection and try again."));
      xhr.onabort = () => reject(new DOMException("The upload was cancelled.", "AbortError"));
      options.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(form);
    });
  };
  let xhr = await attempt(false);
  if (xhr.status === 401) xhr = await attempt(true);
  if (xhr.status < 200 || xhr.status >= 300) {
    throw await errorOf(xhr.status, async () => xhr.responseText, xhr.getResponseHeader("Retry-After"));
  }
  return { data: JSON.parse(xhr.responseText) as T, status: xhr.status, etag: xhr.getResponseHeader("ETag") };
}

async function errorOf(status: number, body: () => Promise<string>, retryAfter: string | null): Promise<ApiError> {
  const retry = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) : null;
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(await body());
  } catch {
    // Not the contract's shape (a proxy's page, a cut connection): said below in general terms.
  }
  const error = (parsed as { error?: { status?: string; message?: string; details?: ErrorDetail[] } } | null)?.error;
  if (error && typeof error.message === "string" && typeof error.status === "string") {
    return new ApiError(status, error.status as ErrorCode, error.message, error.details ?? [], retry);
  }
  return new ApiError(status, status >= 500 ? "UNAVAILABLE" : "INTERNAL", `The server answered ${status}. Try again.`, [], retry);
}

/** A key for one attempt at a create or decision; a retry of that attempt reuses it (DESIGN §4). */
export function newIdempotencyKey(): string {
  return crypto.randomUUID();
}
