// One proposed action (DESIGN §6) as the CSM decides it: what it does, to whom (unknown
// recipients flagged), edited before approving or not, approved or rejected, and then what
// the worker did: sent, drafted, booked with its Meet link, created, or why it failed.

import { type FormEvent, useEffect, useRef, useState } from "react";
import { newIdempotencyKey } from "../api/client";
import { actions } from "../api/endpoints";
import type { Action, ActionType } from "../api/types";
import { Link } from "../router";
import { moment } from "../ui/format";
import { Busy, ErrorMessage } from "../ui/parts";
import { PayloadEditor } from "./PayloadEditor";
import { recipientsOf } from "./recipients";
import { actionsChanged } from "./usePendingCount";

const KIND: Record<ActionType, string> = {
  "email.send": "E-mail to send",
  "email.draft": "E-mail draft",
  "meeting.book": "Meeting to book",
  "task.create": "Task to create",
};

/** What a CSM can do about a failure the worker names (DESIGN §6). */
const AFTER_FAILURE: Record<string, string> = {
  INVALID_MESSAGE: "Nothing was sent: Gmail would not take the e-mail as it was written. Check its addresses and subject, then ask the agent for a new one.",
  QUOTA_EXCEEDED: "Nothing was sent or booked: today's limit is reached. It renews at 00:00 UTC.",
};

const ROLE = { to: "To", cc: "Cc", attendee: "Attendee" } as const;
const UNDER_WAY = new Set(["approved", "executing"]);

/** The action, read again every second while the worker carries it out. */
function useAction(actionId: string, initial?: Action) {
  const [action, setAction] = useState<Action | null>(initial ?? null);
  const [error, setError] = useState<Error | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    if (!initial || tick > 0) {
      actions.get(actionId).then(
        ({ data }) => {
          if (!live) return;
          setAction(data);
          setError(null);
        },
        (failure: Error) => {
          if (live) setError(failure);
        },
      );
    }
    return () => {
      live = false;
    };
  }, [actionId, tick, initial]);
  useEffect(() => {
    if (!action || !UNDER_WAY.has(action.status)) return;
    const timer = window.setTimeout(() => setTick((t) => t + 1), 1000);
    return () => window.clearTimeout(timer);
  }, [action]);
  return { action, setAction, error, setError, reload: () => setTick((t) => t + 1) };
}

export function ApprovalCard({ actionId, initial }: { actionId: string; initial?: Action }) {
  const { action, setAction, error, setError, reload } = useAction(actionId, initial);
  const [mode, setMode] = useState<"view" | "edit" | "reject">("view");
  const [busy, setBusy] = useState(false);
  // One key per decision attempt: a retry after a lost answer decides once (DESIGN §4).
  const key = useRef(newIdempotencyKey());

  if (!action) {
    return error ? (
      <div className="approval">
        <ErrorMessage error={error} onRetry={reload} />
      </div>
    ) : (
      <Busy label="Loading the proposal…" />
    );
  }

  const decide = async (decision: () => Promise<{ data: Action }>) => {
    setBusy(true);
    setError(null);
    try {
      setAction((await decision()).data);
      setMode("view");
      actionsChanged();
    } catch (failure) {
      setError(failure as Error);
      reload(); // It may have expired or been decided elsewhere: show it as it is.
    } finally {
      setBusy(false);
      key.current = newIdempotencyKey();
    }
  };
  const approve = (payload: Record<string, unknown> | null) => decide(() => actions.approve(action.id, payload, key.current));
  const reject = (reason: string | null) => decide(() => actions.reject(action.id, reason, key.current));

  const title = titleOf(action);
  const { recipients, judged } = recipientsOf(action);
  const unknown = recipients.filter((r) => r.known === false);
  return (
    <article className={`approval status-${action.status}`} aria-label={`${KIND[action.type]}: ${title}`}>
      <header>
        <h3>
          {KIND[action.type]}: {title}
        </h3>
        <span className={`risk risk-${action.risk}`}>{action.risk === "high" ? "High risk" : "Low risk"}</span>
      </header>
      <p className="summary">{action.summary}</p>
      {recipients.length > 0 && (
        <section aria-label="Recipients" className="recipients">
          {unknown.length > 0 && (
            <p className="warning" role="note">
              {unknown.length === 1 ? "1 recipient is" : `${unknown.length} recipients are`} not known for this customer:
              check before approving.
            </p>
          )}
          <ul>
            {recipients.map((r) => (
              <li key={`${r.role}-${r.email}`} className={r.known === false ? "unknown" : undefined}>
                <span className="role">{ROLE[r.role]}</span> {r.email}
                {r.known === false && <strong className="flag"> Unknown recipient</strong>}
                {r.known === true && <span className="muted"> known</span>}
              </li>
            ))}
          </ul>
          {!judged && <p className="hint">Not checked against the customer's contacts.</p>}
        </section>
      )}
      {mode === "edit" ? (
        <PayloadEditor action={action} busy={busy} onApprove={(payload) => void approve(payload)} onCancel={() => setMode("view")} />
      ) : (
        <Details action={action} />
      )}
      <Outcome action={action} />
      <ErrorMessage error={error} />
      {action.status === "pending" && mode === "view" && (
        <div className="buttons">
          <button type="button" className="primary" disabled={busy} onClick={() => void approve(null)}>
            Approve
          </button>
          <button type="button" disabled={busy} onClick={() => setMode("edit")}>
            Edit before approving
          </button>
          <button type="button" disabled={busy} onClick={() => setMode("reject")}>
            Reject
          </button>
        </div>
      )}
      {action.status === "pending" && mode === "reject" && (
        <RejectForm busy={busy} onReject={(reason) => void reject(reason)} onCancel={() => setMode("view")} />
      )}
    </article>
  );
}

function titleOf(action: Action): string {
  const p = action.payload as Record<string, unknown>;
  return String(p.subject ?? p.title ?? action.summary);
}

function Details({ action }: { action: Action }) {
  const p = action.payload as Record<string, unknown>;
  if (action.type === "email.send" || action.type === "email.draft") {
    return (
      <div className="details">
        <p>
          <strong>Subject:</strong> {String(p.subject ?? "")}
        </p>
        <div className="mail-body">{String(p.body ?? "")}</div>
      </div>
    );
  }
  if (action.type === "meeting.book") {
    const zone = typeof p.timezone === "string" ? p.timezone : undefined;
    return (
      <div className="details">
        <p>
          <strong>When:</strong> {moment(String(p.start), zone)} – {moment(String(p.end), zone)}
          {zone ? ` (${zone})` : ""}
        </p>
        {p.description ? <div className="mail-body">{String(p.description)}</div> : null}
      </div>
    );
  }
  return (
    <div className="details">
      <p>
        {p.due_date ? `Due ${String(p.due_date)}` : "No due date"} · {String(p.priority ?? "medium")} priority
      </p>
    </div>
  );
}

function Outcome({ action }: { action: Action }) {
  const result = (action.result ?? {}) as Record<string, unknown>;
  switch (action.status) {
    case "pending":
      return <p className="muted">Waiting for your decision · expires {moment(action.expires_at)}</p>;
    case "approved":
    case "executing":
      return <Busy label={action.status === "approved" ? "Approved. Waiting for it to be carried out…" : "Being carried out…"} />;
    case "rejected":
      return (
        <p className="outcome" role="status">
          Rejected{action.reject_reason ? `: ${action.reject_reason}` : "."}
        </p>
      );
    case "expired":
      return (
        <p className="outcome" role="status">
          Expired without a decision.
        </p>
      );
    case "failed":
      return (
        <div className="outcome failed" role="status">
          <p>
            Failed: {action.error?.message ?? "the action could not be carried out."}
            {action.error?.code && <span className="error-code"> ({action.error.code})</span>}
          </p>
          {(action.error?.code === "GOOGLE_NOT_CONNECTED" || action.error?.code === "GOOGLE_REAUTH_REQUIRED") && (
            <p>
              <Link to="/settings">Connect Google in Settings</Link>, then ask the agent again.
            </p>
          )}
          {action.error?.code && AFTER_FAILURE[action.error.code] && <p>{AFTER_FAILURE[action.error.code]}</p>}
        </div>
      );
    case "executed":
      return (
        <div className="outcome done" role="status">
          {action.type === "email.send" && <p>Sent to {recipientsOf(action).recipients.map((r) => r.email).join(", ")}.</p>}
          {action.type === "email.draft" && (
            <>
              <p>Draft saved in Gmail, to {recipientsOf(action).recipients.map((r) => r.email).join(", ")}. Nothing was sent.</p>
              <p>
                <a href="https://mail.google.com/mail/#drafts" target="_blank" rel="noreferrer">
                  Open your Gmail drafts
                </a>{" "}
                to send it from there.
              </p>
            </>
          )}
          {action.type === "task.create" && <p>Task created.</p>}
          {action.type === "meeting.book" && (
            <>
              <p>Booked.</p>
              <p>
                {typeof result.meet_link === "string" && (
                  <a href={result.meet_link} target="_blank" rel="noreferrer">
                    Join with Google Meet ({result.meet_link})
                  </a>
                )}
                {typeof result.html_link === "string" && (
                  <>
                    {" · "}
                    <a href={result.html_link} target="_blank" rel="noreferrer">
                      Open in Google Calendar
                    </a>
                  </>
                )}
              </p>
            </>
          )}
        </div>
      );
  }
}

function RejectForm({ busy, onReject, onCancel }: { busy: boolean; onReject: (reason: string | null) => void; onCancel: () => void }) {
  const [reason, setReason] = useState("");
  const submit = (event: FormEvent) => {
    event.preventDefault();
    onReject(reason.trim() || null);
  };
  return (
    <form className="reject" onSubmit={submit} aria-label="Reject the proposal">
      <label>
        <span>Why not? (optional)</span>
        <input value={reason} maxLength={1000} onChange={(e) => setReason(e.target.value)} autoFocus />
      </label>
      <div className="buttons">
        <button type="submit" className="danger" disabled={busy}>
          Reject proposal
        </button>
        <button type="button" onClick={onCancel}>
          Keep it
        </button>
      </div>
    </form>
  );
}
