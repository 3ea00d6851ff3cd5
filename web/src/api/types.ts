// The API's shapes, named. Everything comes from the types openapi-typescript generates from
// ../openapi.yaml (`npm run openapi`), so the console cannot drift from the API.

import type { components, paths } from "./openapi";

type Schemas = components["schemas"];

export type ErrorCode = Schemas["Error"]["error"]["status"];
export type ErrorDetail = Schemas["ErrorDetail"];
export type Page<T> = { items: T[]; next_cursor: string | null };

export type Profile = Schemas["Profile"];
export type ProfileUpdate = Schemas["ProfileUpdate"];
export type Provider = Schemas["Provider"];
export type LowRiskActionType = Schemas["LowRiskActionType"];

export type Customer = Schemas["Customer"];
export type CustomerCreate = Schemas["CustomerCreate"];
export type CustomerUpdate = Schemas["CustomerUpdate"];
export type CustomerQuery = NonNullable<paths["/customers"]["get"]["parameters"]["query"]>;
export type CustomerOrder = NonNullable<CustomerQuery["order"]>;
export type Stage = Schemas["Stage"];
export type Stakeholder = Schemas["Stakeholder"];
export type Contact = Schemas["Contact"];

export type Contract = Schemas["Contract"];
export type ContractExtraction = Schemas["ContractExtraction"];
export type ContractUpdate = Schemas["ContractUpdate"];

export type Task = Schemas["Task"];
export type TaskCreate = Schemas["TaskCreate"];
export type TaskUpdate = Schemas["TaskUpdate"];
export type Priority = Schemas["Priority"];

export type Session = Schemas["Session"];
export type SessionUpdate = Schemas["SessionUpdate"];
export type StoredMessage = Schemas["Message"];
export type ChatRequest = Schemas["ChatRequest"];

export type ActionType = Schemas["ActionType"];
export type ActionStatus = Schemas["ActionStatus"];
export type GoogleConnection = Schemas["GoogleConnection"];

export type Action = Schemas["Action"];
export type Recipient = Schemas["Recipient"];
export type Usage = Schemas["Usage"];
export type GoogleCompleteRequest = Schemas["GoogleCompletion"];
