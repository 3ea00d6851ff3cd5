// One customer: their facts and people, contracts with the terms read from them, tasks, and the
// chat sessions about them.

import { useState } from "react";
import { ApiError } from "../api/client";
import { customers } from "../api/endpoints";
import type { Customer } from "../api/types";
import { CustomerForm } from "../customers/CustomerForm";
import { Link, navigate, withQuery } from "../router";
import { useResource } from "../ui/data";
import { day, money, stageName } from "../ui/format";
import { Busy, ConfirmButton, ErrorMessage } from "../ui/parts";
import { ContractsSection } from "./ContractsSection";
import { SessionsSection } from "./SessionsSection";
import { TasksSection } from "./TasksSection";

export default function CustomerView({ customerId }: { customerId: string }) {
  const customer = useResource(() => customers.get(customerId), [customerId]);
  const [editing, setEditing] = useState(false);

  if (customer.error && !customer.data) {
    const missing = customer.error instanceof ApiError && customer.error.status === 404;
    return (
      <section>
        <h1 tabIndex={-1}>{missing ? "Customer not found" : "This customer cannot be shown"}</h1>
        <ErrorMessage error={customer.error} onRetry={missing ? undefined : () => void customer.reload()} />
        <p>
          <Link to="/customers">Back to your customers</Link>
        </p>
      </section>
    );
  }
  if (!customer.data) return <Busy label="Loading the customer…" />;
  const c = customer.data;
  return (
    <article className="customer">
      <div className="view-head">
        <div>
          <p className="crumbs">
            <Link to="/customers">Customers</Link>
          </p>
          <h1 tabIndex={-1}>{c.name}</h1>
          <p className="muted">
            <span className={`stage stage-${c.stage}`}>{stageName(c.stage)}</span>
            {c.industry && ` · ${c.industry}`}
            {c.domain && ` · ${c.domain}`}
          </p>
        </div>
        <div className="buttons">
          <Link className="button primary" to={withQuery("/chat", { customer: c.id })}>
            Chat about {c.name}
          </Link>
          <button type="button" onClick={() => setEditing(true)} disabled={editing}>
            Edit customer
          </button>
          <DeleteCustomer customer={c} etag={customer.etag} />
        </div>
      </div>
      {editing && (
        <CustomerForm
          key={customer.etag}
          editing={{ customer: c, etag: customer.etag }}
          onCancel={() => setEditing(false)}
          onReload={() => void customer.reload()}
          onSaved={(saved, etag) => {
            customer.set({ data: saved, etag, status: 200 });
            setEditing(false);
          }}
        />
      )}
      <Facts customer={c} />
      <ContractsSection customer={c} onCustomerChanged={() => void customer.reload()} />
      <TasksSection customerId={c.id} />
      <SessionsSection customer={c} />
    </article>
  );
}

function Facts({ customer: c }: { customer: Customer }) {
  return (
    <section className="facts" aria-label="Account">
      <dl className="stats">
        <div>
          <dt>ARR</dt>
          <dd>{money(c.arr, c.currency)}</dd>
        </div>
        <div>
          <dt>Health</dt>
          <dd>{c.health_score ?? "—"}</dd>
        </div>
        <div>
          <dt>Renewal</dt>
          <dd>{day(c.renewal_date)}</dd>
        </div>
        <div>
          <dt>Primary contact</dt>
          <dd>
            {c.primary_contact ? (
              <>
                {c.primary_contact.name}
                {c.primary_contact.title && `, ${c.primary_contact.title}`}
                {c.primary_contact.email && <div className="muted">{c.primary_contact.email}</div>}
              </>
            ) : (
              "—"
            )}
          </dd>
        </div>
      </dl>
      <div className="two">
        <section aria-labelledby="people">
          <h2 id="people">Stakeholders</h2>
          {c.stakeholders.length === 0 ? (
            <p className="muted">None recorded.</p>
          ) : (
            <ul className="people">
              {c.stakeholders.map((s, i) => (
                <li key={`${s.email ?? s.name}-${i}`}>
                  <strong>{s.name}</strong>
                  {s.role && `, ${s.role}`}
                  {s.is_champion && <span className="tag">Champion</span>}
                  {s.is_decision_maker && <span className="tag">Decision maker</span>}
                  {s.email && <div className="muted">{s.email}</div>}
                </li>
              ))}
            </ul>
          )}
        </section>
        <section aria-labelledby="notes">
          <h2 id="notes">Notes</h2>
          {c.notes ? <p className="notes">{c.notes}</p> : <p className="muted">No notes.</p>}
          {c.tags.length > 0 && (
            <p>
              {c.tags.map((tag) => (
                <span key={tag} className="tag">
                  {tag}
                </span>
              ))}
            </p>
          )}
        </section>
      </div>
    </section>
  );
}

function DeleteCustomer({ customer, etag }: { customer: Customer; etag: string | null }) {
  const [error, setError] = useState<Error | null>(null);
  // A refusal because contracts, tasks or actions still refer to the customer (DESIGN §5)
  // offers the delete that takes them too.
  const blocked = error instanceof ApiError && error.status === 409;
  const remove = async (cascade: boolean) => {
    setError(null);
    try {
      await customers.remove(customer.id, { cascade, ifMatch: etag });
      navigate("/customers");
    } catch (failure) {
      setError(failure as Error);
    }
  };
  return (
    <>
      {blocked ? (
        <ConfirmButton
          label="Delete with everything attached"
          question={`Delete ${customer.name} with its contracts, tasks and pending actions?`}
          confirmLabel="Delete all"
          className="danger"
          onConfirm={() => remove(true)}
        />
      ) : (
        <ConfirmButton
          label="Delete customer"
          question={`Delete ${customer.name}?`}
          confirmLabel="Delete"
          onConfirm={() => remove(false)}
        />
      )}
      <ErrorMessage error={error} />
    </>
  );
}
