// Small pieces every view uses: errors, labelled fields, busy states, pagers.

import { type ReactNode, useEffect, useId, useRef, useState } from "react";
import { ApiError } from "../api/client";

/** An API error's own message (DESIGN §4), or any other error's, never a blank screen. */
export function ErrorMessage({ error, onRetry }: { error: Error | null | undefined; onRetry?: () => void }) {
  if (!error) return null;
  const code = error instanceof ApiError && error.status ? ` (${error.code})` : "";
  const extra = error instanceof ApiError ? error.details.filter((d) => d.field && d.message) : [];
  return (
    <div role="alert" className="error">
      <p>
        {error.message}
        <span className="error-code">{code}</span>
      </p>
      {error instanceof ApiError && error.retryAfter !== null && <p>{retryHint(error.retryAfter)}</p>}
      {extra.length > 0 && (
        <ul>
          {extra.map((d) => (
            <li key={d.field}>
              {d.field}: {d.message}
            </li>
          ))}
        </ul>
      )}
      {onRetry && (
        <button type="button" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

/** When a refused request may be made again, from its Retry-After (DESIGN §4: a spent model
 * budget renews at the next UTC midnight; a rate limit within seconds). */
export function retryHint(seconds: number, now = new Date()): string {
  if (seconds < 120) return `You can try again in ${seconds} ${seconds === 1 ? "second" : "seconds"}.`;
  const at = new Date(now.getTime() + seconds * 1000);
  const tomorrow = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
  const time = at.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  const day =
    at.toDateString() === now.toDateString()
      ? "today"
      : at.toDateString() === tomorrow.toDateString()
        ? "tomorrow"
        : at.toLocaleDateString(undefined, { weekday: "long", month: "short", day: "numeric" });
  const when = `${day} at ${time}`;
  return `You can try again ${when} (your time).`;
}

interface FieldProps {
  label: string;
  /** The server's message for this field, if it refused it. */
  error?: string;
  hint?: string;
  children: (props: { id: string; "aria-invalid"?: boolean; "aria-describedby"?: string }) => ReactNode;
}

/** A label, its control and the control's error, tied together for assistive technology. */
export function Field({ label, error, hint, children }: FieldProps) {
  const id = useId();
  const described = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(" ") || undefined;
  return (
    <div className={error ? "field invalid" : "field"}>
      <label htmlFor={id}>{label}</label>
      {children({ id, "aria-invalid": error ? true : undefined, "aria-describedby": described })}
      {hint && (
        <small id={`${id}-hint`} className="hint">
          {hint}
        </small>
      )}
      {error && (
        <small id={`${id}-error`} className="field-error">
          {error}
        </small>
      )}
    </div>
  );
}

export function Busy({ label }: { label: string }) {
  return (
    <p role="status" className="busy">
      <span className="spinner" aria-hidden="true" />
      {label}
    </p>
  );
}

export function Pager(props: {
  label: string;
  page: number;
  hasPrevious: boolean;
  hasNext: boolean;
  onPrevious: () => void;
  onNext: () => void;
}) {
  if (!props.hasPrevious && !props.hasNext) return null;
  return (
    <nav className="pager" aria-label={props.label}>
      <button type="button" onClick={props.onPrevious} disabled={!props.hasPrevious}>
        Previous page
      </button>
      <span>Page {props.page}</span>
      <button type="button" onClick={props.onNext} disabled={!props.hasNext}>
        Next page
      </button>
    </nav>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** A button whose action is asked to be confirmed in place, without a modal dialog. */
export function ConfirmButton(props: {
  label: string;
  /** What the button does, when its label alone does not say (several "Delete" in a list). */
  name?: string;
  question: string;
  confirmLabel: string;
  onConfirm: () => void | Promise<void>;
  disabled?: boolean;
  className?: string;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const confirm = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirm.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button
        type="button"
        className={props.className}
        aria-label={props.name}
        disabled={props.disabled}
        onClick={() => setAsking(true)}
      >
        {props.label}
      </button>
    );
  }
  return (
    <span className="confirm" role="group" aria-label={props.question}>
      <span>{props.question}</span>
      <button
        type="button"
        ref={confirm}
        className="danger"
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          try {
            await props.onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        {props.confirmLabel}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

/** `"3"`, the ETag of an object as a list gave it. */
export function etagOf(object: { version: number }): string {
  return `"${object.version}"`;
}
