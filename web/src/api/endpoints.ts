// Every route the console uses (DESIGN §5–§8), typed from openapi.yaml.

import { type Answer, type UploadProgress, request, upload } from "./client";
import type {
  Action,
  ActionStatus,
  Contract,
  ContractUpdate,
  Customer,
  CustomerCreate,
  CustomerQuery,
  CustomerUpdate,
  GoogleCompleteRequest,
  GoogleConnection,
  Page,
  Profile,
  ProfileUpdate,
  Session,
  SessionUpdate,
  StoredMessage,
  Task,
  TaskCreate,
  TaskUpdate,
  Usage,
} from "./types";

type Paging = { limit?: number; cursor?: string | null };
const id = encodeURIComponent;

export const profile = {
  get: () => request<Profile>("crud", "GET", "/profile"),
  update: (body: ProfileUpdate, ifMatch: string | null) =>
    request<Profile>("crud", "PATCH", "/profile", { body, ifMatch }),
};

export const usage = {
  get: () => request<Usage>("crud", "GET", "/usage"),
};

export const customers = {
  list: (query: CustomerQuery) => request<Page<Customer>>("crud", "GET", "/customers", { query }),
  get: (customerId: string) => request<Customer>("crud", "GET", `/customers/${id(customerId)}`),
  create: (body: CustomerCreate, idempotencyKey: string) =>
    request<Customer>("crud", "POST", "/customers", { body, idempotencyKey }),
  update: (customerId: string, body: CustomerUpdate, ifMatch: string | null) =>
    request<Customer>("crud", "PATCH", `/customers/${id(customerId)}`, { body, ifMatch }),
  remove: (customerId: string, options: { cascade: boolean; ifMatch: string | null }) =>
    request<undefined>("crud", "DELETE", `/customers/${id(customerId)}`, {
      query: { cascade: options.cascade || undefined },
      ifMatch: options.ifMatch,
    }),
};

export const contracts = {
  list: (customerId: string, paging: Paging = {}) =>
    request<Page<Contract>>("crud", "GET", "/contracts", { query: { customer_id: customerId, ...paging } }),
  get: (contractId: string) => request<Contract>("crud", "GET", `/contracts/${id(contractId)}`),
  update: (contractId: string, body: ContractUpdate, ifMatch: string | null) =>
    request<Contract>("crud", "PATCH", `/contracts/${id(contractId)}`, { body, ifMatch }),
  remove: (contractId: string) => request<undefined>("crud", "DELETE", `/contracts/${id(contractId)}`),
  upload: (
    form: { file: File; customerId: string; title?: string },
    options: { idempotencyKey: string; signal?: AbortSignal; onProgress: (progress: UploadProgress) => void },
  ): Promise<Answer<Contract>> => {
    const body = new FormData();
    body.set("customer_id", form.customerId);
    if (form.title) body.set("title", form.title);
    body.set("file", form.file, form.file.name);
    return upload<Contract>("contract_parse", "/contracts/upload", body, options);
  },
  reparse: (contractId: string) =>
    request<Contract>("contract_parse", "POST", `/contracts/${id(contractId)}/reparse`),
};

export const tasks = {
  list: (query: { customer_id?: string; status?: Task["status"] } & Paging) =>
    request<Page<Task>>("crud", "GET", "/tasks", { query }),
  create: (body: TaskCreate, idempotencyKey: string) =>
    request<Task>("crud", "POST", "/tasks", { body, idempotencyKey }),
  update: (taskId: string, body: TaskUpdate, ifMatch: string | null) =>
    request<Task>("crud", "PATCH", `/tasks/${id(taskId)}`, { body, ifMatch }),
  remove: (taskId: string) => request<undefined>("crud", "DELETE", `/tasks/${id(taskId)}`),
};

export const sessions = {
  list: (query: { customer_id?: string } & Paging) => request<Page<Session>>("crud", "GET", "/sessions", { query }),
  get: (sessionId: string) => request<Session>("crud", "GET", `/sessions/${id(sessionId)}`),
  update: (sessionId: string, body: SessionUpdate, ifMatch: string | null) =>
    request<Session>("crud", "PATCH", `/sessions/${id(sessionId)}`, { body, ifMatch }),
  remove: (sessionId: string) => request<undefined>("crud", "DELETE", `/sessions/${id(sessionId)}`),
  messages: (sessionId: string, paging: Paging = {}) =>
    request<Page<StoredMessage>>("crud", "GET", `/sessions/${id(sessionId)}/messages`, { query: paging }),
  stop: (sessionId: string) => request<Session>("chat_stream", "POST", `/sessions/${id(sessionId)}/stop`),
};

export const actions = {
  list: (query: { status?: ActionStatus } & Paging) =>
    request<Page<Action>>("approve_action", "GET", "/actions", { query }),
  get: (actionId: string) => request<Action>("approve_action", "GET", `/actions/${id(actionId)}`),
  approve: (actionId: string, payload: Record<string, unknown> | null, idempotencyKey: string) =>
    request<Action>("approve_action", "POST", `/actions/${id(actionId)}/approve`, {
      body: payload ? { payload } : {},
      idempotencyKey,
    }),
  reject: (actionId: string, reason: string | null, idempotencyKey: string) =>
    request<Action>("approve_action", "POST", `/actions/${id(actionId)}/reject`, {
      body: reason ? { reason } : {},
      idempotencyKey,
    }),
};

export const google = {
  status: () => request<GoogleConnection>("crud", "GET", "/integrations/google"),
  connect: () => request<{ auth_url: string }>("crud", "POST", "/integrations/google/connect"),
  complete: (body: GoogleCompleteRequest) =>
    request<GoogleConnection>("crud", "POST", "/integrations/google/complete", { body }),
  disconnect: () => request<undefined>("crud", "DELETE", "/integrations/google"),
};

/** Every page of a list, for lists a view shows whole (a session's messages). */
export async function allPages<T>(page: (cursor: string | null) => Promise<Answer<Page<T>>>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const { data } = await page(cursor);
    items.push(...data.items);
    cursor = data.next_cursor;
  } while (cursor);
  return items;
}
