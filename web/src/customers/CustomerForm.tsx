// Create or edit a customer: every field of DESIGN §3, stakeholders included. Editing sends only
// what changed, with If-Match, so a change made elsewhere meanwhile is not overwritten.

import { type FormEvent, useEffect, useRef, useState } from "react";
import { ApiError, newIdempotencyKey } from "../api/client";
import { customers } from "../api/endpoints";
import type { Customer, CustomerCreate, CustomerUpdate, Stage } from "../api/types";
import { STAGES, stageName } from "../ui/format";
import { ErrorMessage, Field } from "../ui/parts";
import { StakeholdersEditor, type StakeholderRow, rowsOf, stakeholdersOf } from "./StakeholdersEditor";

interface FormState {
  name: string;
  domain: string;
  industry: string;
  arr: string;
  currency: string;
  stage: Stage;
  health_score: string;
  renewal_date: string;
  contact_name: string;
  contact_email: string;
  contact_title: string;
  tags: string;
  notes: string;
  stakeholders: StakeholderRow[];
}

function stateOf(customer: Customer | null): FormState {
  return {
    name: customer?.name ?? "",
    domain: customer?.domain ?? "",
    industry: customer?.industry ?? "",
    arr: customer?.arr == null ? "" : String(customer.arr),
    currency: customer?.currency ?? "USD",
    stage: customer?.stage ?? "onboarding",
    health_score: customer?.health_score == null ? "" : String(customer.health_score),
    renewal_date: customer?.renewal_date ?? "",
    contact_name: customer?.primary_contact?.name ?? "",
    contact_email: customer?.primary_contact?.email ?? "",
    contact_title: customer?.primary_contact?.title ?? "",
    tags: (customer?.tags ?? []).join(", "),
    notes: customer?.notes ?? "",
    stakeholders: rowsOf(customer?.stakeholders ?? []),
  };
}

const text = (value: string) => value.trim() || null;
const number = (value: string) => (value.trim() === "" ? null : Number(value));

/** The body the form stands for, every field present (null where empty). */
function bodyOf(form: FormState): Required<CustomerUpdate> {
  const contactName = form.contact_name.trim();
  return {
    name: form.name.trim(),
    domain: text(form.domain),
    industry: text(form.industry),
    arr: number(form.arr),
    currency: form.currency.trim().toUpperCase(),
    stage: form.stage,
    health_score: number(form.health_score),
    renewal_date: text(form.renewal_date),
    primary_contact:
      contactName || form.contact_email.trim() || form.contact_title.trim()
        ? { name: contactName, email: text(form.contact_email), title: text(form.contact_title) }
        : null,
    tags: form.tags
      .split(",")
      .map((tag) => tag.trim())
      .filter(Boolean),
    notes: text(form.notes),
    stakeholders: stakeholdersOf(form.stakeholders),
  };
}

function changes(before: Required<CustomerUpdate>, after: Required<CustomerUpdate>): CustomerUpdate {
  const changed: Record<string, unknown> = {};
  for (const key of Object.keys(after) as (keyof CustomerUpdate)[]) {
    if (JSON.stringify(after[key]) !== JSON.stringify(before[key])) changed[key] = after[key];
  }
  return changed as CustomerUpdate;
}

interface Props {
  /** The customer to edit (with its ETag), or null to create one. */
  editing: { customer: Customer; etag: string | null } | null;
  onSaved: (customer: Customer, etag: string | null) => void;
  onCancel: () => void;
  /** Someone changed the customer meanwhile: read it again (the form then starts from it). */
  onReload?: () => void;
}

export function CustomerForm({ editing, onSaved, onCancel, onReload }: Props) {
  const original = editing?.customer ?? null;
  const [form, setForm] = useState<FormState>(() => stateOf(original));
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  // One key per create attempt: a retry after a lost answer cannot create the customer twice.
  const key = useRef(newIdempotencyKey());
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), []);

  const fieldErrors = error instanceof ApiError ? error.fieldErrors : {};
  const set = <K extends keyof FormState>(name: K) => (value: FormState[K]) => setForm((f) => ({ ...f, [name]: value }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = bodyOf(form);
      if (editing) {
        const changed = changes(bodyOf(stateOf(editing.customer)), body);
        if (Object.keys(changed).length === 0) {
          onCancel();
          return;
        }
        const answer = await customers.update(editing.customer.id, changed, editing.etag);
        onSaved(answer.data, answer.etag);
      } else {
        const created: CustomerCreate = Object.fromEntries(
          Object.entries(body).filter(([, v]) => v !== null && !(Array.isArray(v) && v.length === 0)),
        ) as CustomerCreate;
        const answer = await customers.create(created, key.current);
        onSaved(answer.data, answer.etag);
      }
    } catch (failure) {
      setError(failure as Error);
    } finally {
      setBusy(false);
    }
  };

  const conflict = error instanceof ApiError && error.code === "FAILED_PRECONDITION";
  return (
    <form className="panel form customer-form" onSubmit={submit} aria-label={editing ? "Edit customer" : "New customer"}>
      <h2>{editing ? `Edit ${original?.name}` : "New customer"}</h2>
      <div className="grid">
        <Field label="Name" error={fieldErrors.name}>
          {(p) => <input {...p} ref={first} required maxLength={200} value={form.name} onChange={(e) => set("name")(e.target.value)} />}
        </Field>
        <Field label="Domain" hint="acme.com — addresses there count as known recipients." error={fieldErrors.domain}>
          {(p) => <input {...p} value={form.domain} onChange={(e) => set("domain")(e.target.value)} />}
        </Field>
        <Field label="Industry" error={fieldErrors.industry}>
          {(p) => <input {...p} maxLength={200} value={form.industry} onChange={(e) => set("industry")(e.target.value)} />}
        </Field>
        <Field label="Stage" error={fieldErrors.stage}>
          {(p) => (
            <select {...p} value={form.stage} onChange={(e) => set("stage")(e.target.value as Stage)}>
              {STAGES.map((stage) => (
                <option key={stage} value={stage}>
                  {stageName(stage)}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="ARR" error={fieldErrors.arr}>
          {(p) => (
            <input {...p} type="number" min={0} step="any" inputMode="decimal" value={form.arr} onChange={(e) => set("arr")(e.target.value)} />
          )}
        </Field>
        <Field label="Currency" hint="ISO 4217, such as USD or EUR." error={fieldErrors.currency}>
          {(p) => (
            <input {...p} maxLength={3} pattern="[A-Za-z]{3}" value={form.currency} onChange={(e) => set("currency")(e.target.value)} />
          )}
        </Field>
        <Field label="Health score" hint="0 to 100." error={fieldErrors.health_score}>
          {(p) => (
            <input {...p} type="number" min={0} max={100} step={1} value={form.health_score} onChange={(e) => set("health_score")(e.target.value)} />
          )}
        </Field>
        <Field label="Renewal date" error={fieldErrors.renewal_date}>
          {(p) => <input {...p} type="date" value={form.renewal_date} onChange={(e) => set("renewal_date")(e.target.value)} />}
        </Field>
      </div>
      <fieldset>
        <legend>Primary contact</legend>
        <div className="grid">
          <Field label="Contact name" error={fieldErrors["primary_contact.name"]}>
            {(p) => <input {...p} value={form.contact_name} onChange={(e) => set("contact_name")(e.target.value)} />}
          </Field>
          <Field label="Contact e-mail" error={fieldErrors["primary_contact.email"]}>
            {(p) => <input {...p} type="email" value={form.contact_email} onChange={(e) => set("contact_email")(e.target.value)} />}
          </Field>
          <Field label="Contact title" error={fieldErrors["primary_contact.title"]}>
            {(p) => <input {...p} value={form.contact_title} onChange={(e) => set("contact_title")(e.target.value)} />}
          </Field>
        </div>
      </fieldset>
      <StakeholdersEditor rows={form.stakeholders} onChange={set("stakeholders")} errors={fieldErrors} />
      <Field label="Tags" hint="Separated by commas." error={fieldErrors.tags}>
        {(p) => <input {...p} value={form.tags} onChange={(e) => set("tags")(e.target.value)} />}
      </Field>
      <Field label="Notes" error={fieldErrors.notes}>
        {(p) => <textarea {...p} rows={4} maxLength={20000} value={form.notes} onChange={(e) => set("notes")(e.target.value)} />}
      </Field>
      <ErrorMessage error={error} />
      {conflict && onReload && (
        <p className="warning" role="note">
          This customer was changed elsewhere after you opened it.{" "}
          <button type="button" onClick={onReload}>
            Discard my changes and load the latest version
          </button>
        </p>
      )}
      <div className="buttons">
        <button type="submit" className="primary" disabled={busy}>
          {editing ? "Save changes" : "Create customer"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

