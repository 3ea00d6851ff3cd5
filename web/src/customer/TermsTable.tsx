// The terms read from a contract (DESIGN §8), each beside the quote and page it came from, and
// corrected in place: a correction is kept by a re-read.

import { type FormEvent, useState } from "react";
import { ApiError } from "../api/client";
import { contracts } from "../api/endpoints";
import type { Contract, ContractExtraction, ContractUpdate } from "../api/types";
import { day, money } from "../ui/format";
import { ErrorMessage } from "../ui/parts";

type Kind = "date" | "money" | "days" | "months" | "boolean" | "text" | "list";

const TERMS: { field: keyof ContractExtraction & string; label: string; kind: Kind }[] = [
  { field: "parties", label: "Parties", kind: "list" },
  { field: "effective_date", label: "Effective date", kind: "date" },
  { field: "end_date", label: "End date", kind: "date" },
  { field: "renewal_date", label: "Renewal date", kind: "date" },
  { field: "auto_renew", label: "Renews automatically", kind: "boolean" },
  { field: "notice_period_days", label: "Notice period", kind: "days" },
  { field: "term_months", label: "Term", kind: "months" },
  { field: "total_value", label: "Total value", kind: "money" },
  { field: "arr", label: "ARR", kind: "money" },
  { field: "currency", label: "Currency", kind: "text" },
  { field: "payment_terms", label: "Payment terms", kind: "text" },
  { field: "entitlements", label: "Entitlements", kind: "list" },
  { field: "stakeholders", label: "Stakeholders named", kind: "list" },
  { field: "governing_law", label: "Governing law", kind: "text" },
  { field: "termination_clauses", label: "Termination", kind: "text" },
];

type Row = Record<string, unknown>;

function shown(value: unknown, kind: Kind, currency: string): string {
  if (value === null || value === undefined || value === "") return "—";
  switch (kind) {
    case "date":
      return day(String(value));
    case "money":
      return money(Number(value), currency);
    case "days":
      return `${value} days`;
    case "months":
      return `${value} months`;
    case "boolean":
      return value ? "Yes" : "No";
    case "list":
      return Array.isArray(value) ? value.map(item).join("; ") : String(value);
    default:
      return Array.isArray(value) ? value.join("; ") : String(value);
  }
}

function item(value: unknown): string {
  if (value && typeof value === "object") {
    const row = value as Row;
    const parts = [row.name, row.role ?? row.title, row.email, row.quantity != null ? `× ${row.quantity}` : null, row.unit];
    return parts.filter((p) => p !== null && p !== undefined && p !== "").join(", ");
  }
  return String(value);
}

export function TermsTable(props: { contract: Contract; etag: string; onCorrected: (contract: Contract) => void }) {
  const extracted = props.contract.extracted ?? {};
  const currency = extracted.currency ?? "USD";
  const [editing, setEditing] = useState<string | null>(null);
  const dropped = extracted.dropped ?? [];
  return (
    <>
      <table className="table terms" aria-label={`Terms of ${props.contract.title || props.contract.file_name || "the contract"}`}>
        <thead>
          <tr>
            <th scope="col">Term</th>
            <th scope="col">Value</th>
            <th scope="col">Where the contract says so</th>
            <th scope="col">
              <span className="visually-hidden">Correct</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {TERMS.map(({ field, label, kind }) => {
            const value = (extracted as Row)[field];
            const evidence = extracted.evidence?.[field];
            const confidence = extracted.confidence?.[field];
            const corrected = extracted.corrected?.includes(field);
            const derived = extracted.derived?.includes(field);
            if ((value === null || value === undefined) && !evidence && editing !== field) return null;
            return (
              <tr key={field}>
                <th scope="row">{label}</th>
                <td>
                  {editing === field ? (
                    <Correction
                      label={label}
                      field={field}
                      kind={kind}
                      value={value}
                      contract={props.contract}
                      etag={props.etag}
                      onDone={(contract) => {
                        setEditing(null);
                        if (contract) props.onCorrected(contract);
                      }}
                    />
                  ) : (
                    <>
                      {shown(value, kind, currency)}
                      {corrected && <span className="tag">Corrected by you</span>}
                      {derived && <span className="tag">Worked out from other terms</span>}
                    </>
                  )}
                </td>
                <td>
                  {evidence ? (
                    <figure className="evidence">
                      <blockquote>{evidence.quote}</blockquote>
                      <figcaption>
                        {evidence.page ? `page ${evidence.page}` : "page not given"}
                        {confidence !== undefined && ` · ${Math.round(confidence * 100)}% sure`}
                      </figcaption>
                    </figure>
                  ) : (
                    <span className="muted">{corrected ? "Your correction" : derived ? "Computed" : "—"}</span>
                  )}
                </td>
                <td>
                  {kind !== "list" && editing !== field && (
                    <button type="button" onClick={() => setEditing(field)}>
                      Correct <span className="visually-hidden">{label}</span>
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <AddCorrection
        missing={TERMS.filter(({ field, kind }) => kind !== "list" && (extracted as Row)[field] == null && !extracted.evidence?.[field])}
        onPick={setEditing}
      />
      {dropped.length > 0 && (
        <details className="dropped">
          <summary>{dropped.length} value(s) not kept</summary>
          <ul>
            {dropped.map((d) => (
              <li key={d.field}>
                {TERMS.find((t) => t.field === d.field)?.label ?? d.field}:{" "}
                {d.reason === "evidence_not_found" ? "the quote given for it is not in the document" : "not a valid value"}
              </li>
            ))}
          </ul>
        </details>
      )}
    </>
  );
}

/** A term the contract did not give can still be entered by hand. */
function AddCorrection({ missing, onPick }: { missing: { field: string; label: string }[]; onPick: (field: string) => void }) {
  const [field, setField] = useState("");
  if (missing.length === 0) return null;
  return (
    <div className="add-term">
      <label>
        <span>Add a term the contract reading missed</span>
        <select value={field} onChange={(e) => setField(e.target.value)}>
          <option value="">Choose a term…</option>
          {missing.map((m) => (
            <option key={m.field} value={m.field}>
              {m.label}
            </option>
          ))}
        </select>
      </label>
      <button type="button" disabled={!field} onClick={() => field && onPick(field)}>
        Add term
      </button>
    </div>
  );
}

function Correction(props: {
  label: string;
  field: string;
  kind: Kind;
  value: unknown;
  contract: Contract;
  etag: string;
  onDone: (contract: Contract | null) => void;
}) {
  const [text, setText] = useState(props.value === null || props.value === undefined ? "" : String(props.value));
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);

  const valueOf = (): unknown => {
    const trimmed = text.trim();
    if (trimmed === "") return null;
    if (props.kind === "boolean") return trimmed === "true";
    if (["money", "days", "months"].includes(props.kind) && /^[\d.]+$/.test(trimmed)) return Number(trimmed);
    return trimmed; // Written forms such as "$150,000" or "90 days" are read by the server.
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // openapi.yaml leaves `extracted`'s members open (any term, as in ContractExtraction),
      // which openapi-typescript renders as an object with no members at all.
      const extracted = { [props.field]: valueOf() } as unknown as ContractUpdate["extracted"];
      const answer = await contracts.update(props.contract.id, { extracted }, props.etag);
      props.onDone(answer.data);
    } catch (failure) {
      setError(failure as Error);
    } finally {
      setBusy(false);
    }
  };
  const fieldError = error instanceof ApiError ? error.fieldErrors[`extracted.${props.field}`] : undefined;
  return (
    <form className="correction" onSubmit={submit} aria-label={`Correct ${props.label}`}>
      <label>
        <span className="visually-hidden">{props.label}</span>
        {props.kind === "boolean" ? (
          <select value={text} onChange={(e) => setText(e.target.value)} autoFocus>
            <option value="">Not stated</option>
            <option value="true">Yes</option>
            <option value="false">No</option>
          </select>
        ) : (
          <input
            type={props.kind === "date" ? "date" : "text"}
            value={text}
            onChange={(e) => setText(e.target.value)}
            autoFocus
            aria-invalid={fieldError ? true : undefined}
          />
        )}
      </label>
      <button type="submit" className="primary" disabled={busy}>
        Save <span className="visually-hidden">{props.label}</span>
      </button>
      <button type="button" onClick={() => props.onDone(null)}>
        Cancel
      </button>
      {fieldError ? <small className="field-error">{fieldError}</small> : <ErrorMessage error={error} />}
    </form>
  );
}
