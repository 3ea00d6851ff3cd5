// Edit what the agent proposed before approving it; the server validates the edit as it
// validates the agent's (DESIGN §6), and a refusal shows beside the field.

import { type FormEvent, useState } from "react";
import type { Action } from "../api/types";
import { Field } from "../ui/parts";

const addresses = (text: string) =>
  text
    .split(/[,;\s]+/)
    .map((a) => a.trim())
    .filter(Boolean);
const joined = (value: unknown) => (Array.isArray(value) ? value.join(", ") : "");

/** `2027-03-01T10:00:00+01:00` → the wall-clock part for <input type=datetime-local> and its offset. */
function splitTime(value: unknown): { local: string; offset: string } {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.exec(String(value ?? ""));
  return match ? { local: match[1]!, offset: match[2]! } : { local: "", offset: "Z" };
}

interface Props {
  action: Action;
  busy: boolean;
  onApprove: (payload: Record<string, unknown>) => void;
  onCancel: () => void;
}

export function PayloadEditor({ action, busy, onApprove, onCancel }: Props) {
  const original = action.payload as Record<string, unknown>;
  const start = splitTime(original.start);
  const end = splitTime(original.end);
  const [form, setForm] = useState({
    to: joined(original.to),
    cc: joined(original.cc),
    subject: String(original.subject ?? ""),
    body: String(original.body ?? ""),
    title: String(original.title ?? ""),
    start: start.local,
    end: end.local,
    attendees: joined(original.attendees),
    description: String(original.description ?? ""),
    due_date: String(original.due_date ?? ""),
    priority: String(original.priority ?? "medium"),
  });
  const set = (name: keyof typeof form) => (event: { target: { value: string } }) =>
    setForm((f) => ({ ...f, [name]: event.target.value }));

  const payload = (): Record<string, unknown> => {
    switch (action.type) {
      case "email.send":
      case "email.draft":
        return { ...original, to: addresses(form.to), cc: addresses(form.cc), subject: form.subject, body: form.body };
      case "meeting.book":
        return {
          ...original,
          title: form.title,
          // The meeting keeps the offset it was proposed in; only its wall-clock times change.
          start: `${form.start}:00${start.offset}`,
          end: `${form.end}:00${end.offset}`,
          attendees: addresses(form.attendees),
          description: form.description,
        };
      case "task.create":
        return { ...original, title: form.title, due_date: form.due_date || null, priority: form.priority };
    }
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onApprove(payload());
  };

  return (
    <form className="payload-editor" onSubmit={submit} aria-label="Edit before approving">
      {(action.type === "email.send" || action.type === "email.draft") && (
        <>
          <Field label="To" hint="Addresses separated by commas.">
            {(p) => <input {...p} value={form.to} onChange={set("to")} required />}
          </Field>
          <Field label="Cc">{(p) => <input {...p} value={form.cc} onChange={set("cc")} />}</Field>
          <Field label="Subject">{(p) => <input {...p} value={form.subject} onChange={set("subject")} required />}</Field>
          <Field label="Body">{(p) => <textarea {...p} rows={8} value={form.body} onChange={set("body")} />}</Field>
        </>
      )}
      {action.type === "meeting.book" && (
        <>
          <Field label="Title">{(p) => <input {...p} value={form.title} onChange={set("title")} required />}</Field>
          <Field label={`Start (UTC${start.offset === "Z" ? "" : start.offset})`}>
            {(p) => <input {...p} type="datetime-local" value={form.start} onChange={set("start")} required />}
          </Field>
          <Field label={`End (UTC${end.offset === "Z" ? "" : end.offset})`}>
            {(p) => <input {...p} type="datetime-local" value={form.end} onChange={set("end")} required />}
          </Field>
          <Field label="Attendees" hint="Addresses separated by commas.">
            {(p) => <input {...p} value={form.attendees} onChange={set("attendees")} required />}
          </Field>
          <Field label="Description">
            {(p) => <textarea {...p} rows={4} value={form.description} onChange={set("description")} />}
          </Field>
        </>
      )}
      {action.type === "task.create" && (
        <>
          <Field label="Title">{(p) => <input {...p} value={form.title} onChange={set("title")} required />}</Field>
          <Field label="Due date">{(p) => <input {...p} type="date" value={form.due_date} onChange={set("due_date")} />}</Field>
          <Field label="Priority">
            {(p) => (
              <select {...p} value={form.priority} onChange={set("priority")}>
                <option value="low">Low</option>
                <option value="medium">Medium</option>
                <option value="high">High</option>
              </select>
            )}
          </Field>
        </>
      )}
      <div className="buttons">
        <button type="submit" className="primary" disabled={busy}>
          Approve with changes
        </button>
        <button type="button" onClick={onCancel}>
          Cancel editing
        </button>
      </div>
    </form>
  );
}
