// The book of customers: search by name, filter by stage, order, page through, create.

import { useEffect, useState } from "react";
import { customers } from "../api/endpoints";
import type { Customer, CustomerOrder, Stage } from "../api/types";
import { Link, navigate, useLocation, withQuery } from "../router";
import { usePages } from "../ui/data";
import { STAGES, day, money, stageName } from "../ui/format";
import { Busy, Empty, ErrorMessage, Pager } from "../ui/parts";
import { CustomerForm } from "./CustomerForm";

const ORDERS: { value: CustomerOrder; label: string }[] = [
  { value: "name", label: "Name, A to Z" },
  { value: "-arr", label: "ARR, highest first" },
  { value: "renewal_date", label: "Renewal, soonest first" },
  { value: "-updated_at", label: "Recently updated" },
];
const PAGE_SIZE = 25;

interface Filters {
  q: string;
  stage: Stage | "";
  order: CustomerOrder;
}

/** The filters live in the address, so back, forward and a shared link show the same list. */
function filtersOf(query: URLSearchParams): Filters {
  return {
    q: query.get("q") ?? "",
    stage: (query.get("stage") as Stage | null) ?? "",
    order: (query.get("order") as CustomerOrder | null) ?? "name",
  };
}

function setFilters(change: Partial<Filters>): void {
  const next = { ...filtersOf(new URL(window.location.href).searchParams), ...change };
  const order = next.order === "name" ? "" : next.order;
  navigate(withQuery("/customers", { q: next.q, stage: next.stage, order }), { replace: true });
}

export function useCustomerPages(filters: Filters) {
  // A name search is a prefix over names, so it always lists by name (the API's rule).
  const order = filters.q.trim() ? "name" : filters.order;
  return usePages(
    (cursor) =>
      customers.list({
        q: filters.q.trim() || undefined,
        stage: filters.stage || undefined,
        order,
        limit: PAGE_SIZE,
        cursor: cursor ?? undefined,
      }),
    [filters.q, filters.stage, order],
  );
}

export function CustomersView() {
  const filters = filtersOf(useLocation().query);
  const [search, setSearch] = useState(filters.q);
  const [creating, setCreating] = useState(false);
  const list = useCustomerPages(filters);

  // The address changed by itself (back, forward): the box shows its search.
  useEffect(() => setSearch(filters.q), [filters.q]);
  // Typing settles for a moment before the list is asked again.
  useEffect(() => {
    if (search === filters.q) return;
    const timer = window.setTimeout(() => setFilters({ q: search }), 250);
    return () => window.clearTimeout(timer);
  }, [search, filters.q]);

  const filtered = Boolean(filters.q || filters.stage);
  return (
    <section className="customers">
      <div className="view-head">
        <h1 tabIndex={-1}>Customers</h1>
        <button type="button" className="primary" onClick={() => setCreating(true)} disabled={creating}>
          New customer
        </button>
      </div>
      {creating && (
        <CustomerForm
          editing={null}
          onCancel={() => setCreating(false)}
          onSaved={(customer) => {
            setCreating(false);
            navigate(`/customers/${customer.id}`);
          }}
        />
      )}
      <div role="search" className="toolbar" aria-label="Find customers">
        <label>
          <span>Search by name</span>
          <input type="search" value={search} placeholder="Name starts with…" onChange={(e) => setSearch(e.target.value)} />
        </label>
        <label>
          <span>Stage</span>
          <select value={filters.stage} onChange={(e) => setFilters({ stage: e.target.value as Stage | "" })}>
            <option value="">All stages</option>
            {STAGES.map((stage) => (
              <option key={stage} value={stage}>
                {stageName(stage)}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Order</span>
          <select
            value={filters.q ? "name" : filters.order}
            disabled={Boolean(filters.q)}
            aria-describedby={filters.q ? "order-note" : undefined}
            onChange={(e) => setFilters({ order: e.target.value as CustomerOrder })}
          >
            {ORDERS.map((order) => (
              <option key={order.value} value={order.value}>
                {order.label}
              </option>
            ))}
          </select>
        </label>
        {filters.q && (
          <small id="order-note" className="hint">
            A name search lists by name.
          </small>
        )}
      </div>
      <ErrorMessage error={list.error} onRetry={() => void list.reload()} />
      {list.loading && list.items.length === 0 ? (
        <Busy label="Loading customers…" />
      ) : list.items.length === 0 && !list.error ? (
        <Empty>{filtered ? "No customer matches these filters." : "No customers yet. Create your first one."}</Empty>
      ) : (
        <CustomerTable customers={list.items} busy={list.loading} />
      )}
      <Pager
        label="Customer pages"
        page={list.page}
        hasPrevious={list.hasPrevious}
        hasNext={list.hasNext}
        onPrevious={list.previous}
        onNext={list.next}
      />
    </section>
  );
}

function CustomerTable({ customers: rows, busy }: { customers: Customer[]; busy: boolean }) {
  return (
    <table className="table" aria-busy={busy} aria-label="Customers">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Stage</th>
          <th scope="col" className="number">
            ARR
          </th>
          <th scope="col" className="number">
            Health
          </th>
          <th scope="col">Renewal</th>
          <th scope="col">Primary contact</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((customer) => (
          <tr key={customer.id}>
            <th scope="row">
              <Link to={`/customers/${customer.id}`}>{customer.name}</Link>
              {customer.domain && <small className="muted"> {customer.domain}</small>}
            </th>
            <td>
              <span className={`stage stage-${customer.stage}`}>{stageName(customer.stage)}</span>
            </td>
            <td className="number">{money(customer.arr, customer.currency)}</td>
            <td className="number">{customer.health_score ?? "—"}</td>
            <td>{day(customer.renewal_date)}</td>
            <td>{customer.primary_contact?.name ?? "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
