// The actions the agent proposed: those waiting for a decision first, the others as history.

import { useState } from "react";
import { actions } from "../api/endpoints";
import type { ActionStatus } from "../api/types";
import { Link } from "../router";
import { usePages } from "../ui/data";
import { Busy, Empty, ErrorMessage, Pager } from "../ui/parts";
import { ApprovalCard } from "./ApprovalCard";

const FILTERS: { value: ActionStatus | ""; label: string }[] = [
  { value: "pending", label: "Waiting for a decision" },
  { value: "", label: "All" },
  { value: "executed", label: "Carried out" },
  { value: "failed", label: "Failed" },
  { value: "rejected", label: "Rejected" },
  { value: "expired", label: "Expired" },
];

export default function ActionsView() {
  const [status, setStatus] = useState<ActionStatus | "">("pending");
  const list = usePages((cursor) => actions.list({ status: status || undefined, cursor, limit: 20 }), [status]);
  return (
    <section className="actions">
      <div className="view-head">
        <h1 tabIndex={-1}>Actions</h1>
        <label className="inline">
          <span>Show</span>
          <select value={status} onChange={(e) => setStatus(e.target.value as ActionStatus | "")}>
            {FILTERS.map((f) => (
              <option key={f.value} value={f.value}>
                {f.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p className="lede">Nothing the agent proposes happens until you approve it here or in the chat.</p>
      <ErrorMessage error={list.error} onRetry={() => void list.reload()} />
      {list.loading && list.items.length === 0 ? (
        <Busy label="Loading actions…" />
      ) : list.items.length === 0 ? (
        <Empty>{status === "pending" ? "Nothing is waiting for your decision." : "No actions here."}</Empty>
      ) : (
        <ul className="cards">
          {list.items.map((action) => (
            <li key={action.id}>
              <ApprovalCard actionId={action.id} initial={action} />
              {action.session_id && (
                <p className="muted from">
                  Proposed in <Link to={`/chat/${action.session_id}`}>this chat</Link>
                  {action.customer_id && (
                    <>
                      {" "}
                      about <Link to={`/customers/${action.customer_id}`}>the customer</Link>
                    </>
                  )}
                </p>
              )}
            </li>
          ))}
        </ul>
      )}
      <Pager
        label="Action pages"
        page={list.page}
        hasPrevious={list.hasPrevious}
        hasNext={list.hasNext}
        onPrevious={list.previous}
        onNext={list.next}
      />
    </section>
  );
}
