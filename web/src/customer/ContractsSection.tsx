// A customer's contracts: upload with progress, the terms read from each with the quote and
// page that support them, corrections, re-reading and deleting.

import { type FormEvent, useEffect, useRef, useState } from "react";
import type { UploadProgress } from "../api/client";
import { newIdempotencyKey } from "../api/client";
import { contracts } from "../api/endpoints";
import type { Contract, Customer } from "../api/types";
import { useGrowingList } from "../ui/data";
import { bytes, moment } from "../ui/format";
import { Busy, ConfirmButton, Empty, ErrorMessage, etagOf } from "../ui/parts";
import { TermsTable } from "./TermsTable";

interface Props {
  customer: Customer;
  /** A parsed contract may fill the customer's renewal date and ARR (DESIGN §8). */
  onCustomerChanged: () => void;
}

export function ContractsSection({ customer, onCustomerChanged }: Props) {
  const list = useGrowingList((cursor) => contracts.list(customer.id, { cursor, limit: 20 }), [customer.id]);
  const [shown, setShown] = useState<Contract[]>([]);
  useEffect(() => setShown(list.items), [list.items]);
  const replace = (contract: Contract) => setShown((all) => all.map((c) => (c.id === contract.id ? contract : c)));

  return (
    <section className="panel" aria-labelledby="contracts">
      <h2 id="contracts">Contracts</h2>
      <UploadContract
        customer={customer}
        onUploaded={(contract) => {
          setShown((all) => [contract, ...all.filter((c) => c.id !== contract.id)]);
          onCustomerChanged();
        }}
      />
      <ErrorMessage error={list.error} onRetry={() => void list.reload()} />
      {list.loading && shown.length === 0 ? (
        <Busy label="Loading contracts…" />
      ) : shown.length === 0 ? (
        <Empty>No contracts yet. Upload one to read its terms.</Empty>
      ) : (
        shown.map((contract) => (
          <ContractCard
            key={contract.id}
            contract={contract}
            onChanged={(changed) => {
              replace(changed);
              onCustomerChanged();
            }}
            onDeleted={() => setShown((all) => all.filter((c) => c.id !== contract.id))}
          />
        ))
      )}
      {list.hasMore && (
        <button type="button" onClick={list.more} disabled={list.loading}>
          Show more contracts
        </button>
      )}
    </section>
  );
}

function UploadContract({ customer, onUploaded }: { customer: Customer; onUploaded: (contract: Contract) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [title, setTitle] = useState("");
  const [progress, setProgress] = useState<UploadProgress | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const abort = useRef<AbortController | null>(null);
  const key = useRef(newIdempotencyKey());
  const input = useRef<HTMLInputElement>(null);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!file) return;
    setError(null);
    setNotice(null);
    setProgress({ loaded: 0, total: file.size, sent: false });
    abort.current = new AbortController();
    try {
      const answer = await contracts.upload(
        { file, customerId: customer.id, title: title.trim() || undefined },
        { idempotencyKey: key.current, signal: abort.current.signal, onProgress: setProgress },
      );
      if (answer.status === 200) setNotice(`${file.name} was already uploaded for ${customer.name}; here it is.`);
      onUploaded(answer.data);
      setFile(null);
      setTitle("");
      if (input.current) input.current.value = "";
      key.current = newIdempotencyKey();
    } catch (failure) {
      if ((failure as Error).name !== "AbortError") setError(failure as Error);
    } finally {
      setProgress(null);
      abort.current = null;
    }
  };

  return (
    <form className="upload" onSubmit={submit} aria-label="Upload a contract">
      <label>
        <span>Contract file</span>
        <input
          ref={input}
          type="file"
          accept=".pdf,.docx,.txt,application/pdf,application/vnd.openxmlformats-officedocument.wordprocessingml.document,text/plain"
          onChange={(e) => {
            setFile(e.target.files?.[0] ?? null);
            key.current = newIdempotencyKey();
          }}
          disabled={progress !== null}
        />
        <small className="hint">PDF, Word (.docx) or plain text, up to 10 MB.</small>
      </label>
      <label>
        <span>Title (optional)</span>
        <input value={title} maxLength={300} onChange={(e) => setTitle(e.target.value)} disabled={progress !== null} />
      </label>
      <div className="buttons">
        <button type="submit" className="primary" disabled={!file || progress !== null}>
          Upload contract
        </button>
        {progress && !progress.sent && (
          <button type="button" onClick={() => abort.current?.abort()}>
            Cancel upload
          </button>
        )}
      </div>
      {progress && <UploadState progress={progress} />}
      {notice && <p role="status">{notice}</p>}
      <ErrorMessage error={error} />
    </form>
  );
}

function UploadState({ progress }: { progress: UploadProgress }) {
  const seconds = useElapsed(progress.sent);
  if (!progress.sent) {
    const percent = progress.total ? Math.round((progress.loaded / progress.total) * 100) : 0;
    return (
      <div className="progress" role="status">
        <label>
          <span>
            Uploading: {percent}% ({bytes(progress.loaded)} of {bytes(progress.total)})
          </span>
          <progress max={progress.total || 1} value={progress.loaded} />
        </label>
      </div>
    );
  }
  return (
    <div className="progress" role="status">
      <label>
        <span>Uploaded. Reading the contract's terms… {seconds > 0 && `${seconds} s`}</span>
        <progress />
      </label>
    </div>
  );
}

/** Whole seconds since `running` became true. */
function useElapsed(running: boolean): number {
  const [seconds, setSeconds] = useState(0);
  useEffect(() => {
    setSeconds(0);
    if (!running) return;
    const started = Date.now();
    const timer = window.setInterval(() => setSeconds(Math.floor((Date.now() - started) / 1000)), 1000);
    return () => window.clearInterval(timer);
  }, [running]);
  return seconds;
}

function ContractCard(props: { contract: Contract; onChanged: (contract: Contract) => void; onDeleted: () => void }) {
  const { contract } = props;
  const [error, setError] = useState<Error | null>(null);
  const [reparsing, setReparsing] = useState(false);
  const seconds = useElapsed(reparsing);
  const name = contract.title || contract.file_name || "Untitled contract";

  const reparse = async () => {
    setError(null);
    setReparsing(true);
    try {
      props.onChanged((await contracts.reparse(contract.id)).data);
    } catch (failure) {
      setError(failure as Error);
    } finally {
      setReparsing(false);
    }
  };
  const remove = async () => {
    setError(null);
    try {
      await contracts.remove(contract.id);
      props.onDeleted();
    } catch (failure) {
      setError(failure as Error);
    }
  };

  return (
    <article className="contract" aria-label={name}>
      <header>
        <h3>{name}</h3>
        <span className={`status status-${contract.status}`}>{STATUS[contract.status]}</span>
      </header>
      <p className="muted">
        {contract.file_name}
        {contract.size_bytes != null && ` · ${bytes(contract.size_bytes)}`}
        {` · uploaded ${moment(contract.created_at)}`}
        {contract.parsed_at && ` · read ${moment(contract.parsed_at)}`}
        {contract.model && ` by ${contract.model}`}
      </p>
      {contract.status === "failed" && contract.parse_error && (
        <p className="error" role="note">
          Its terms could not be read: {contract.parse_error}
        </p>
      )}
      {contract.status === "parsing" && <Busy label="Its terms are being read…" />}
      {contract.extracted && contract.status === "parsed" && (
        <TermsTable contract={contract} etag={etagOf(contract)} onCorrected={props.onChanged} />
      )}
      {reparsing && (
        <div className="progress" role="status">
          <label>
            <span>Reading the terms again… {seconds > 0 && `${seconds} s`}</span>
            <progress />
          </label>
        </div>
      )}
      <ErrorMessage error={error} />
      <div className="buttons">
        <button
          type="button"
          aria-label={`Read terms again: ${name}`}
          onClick={() => void reparse()}
          disabled={reparsing || contract.status === "parsing"}
        >
          Read terms again
        </button>
        <ConfirmButton
          label="Delete contract"
          name={`Delete contract ${name}`}
          question={`Delete ${name} and its file?`}
          confirmLabel="Delete"
          onConfirm={remove}
        />
      </div>
    </article>
  );
}

const STATUS: Record<Contract["status"], string> = {
  uploaded: "Uploaded",
  parsing: "Reading terms",
  parsed: "Terms read",
  failed: "Could not be read",
};
