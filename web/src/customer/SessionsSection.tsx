// The chat sessions about a customer, newest first.

import { sessions } from "../api/endpoints";
import type { Customer } from "../api/types";
import { Link, withQuery } from "../router";
import { useGrowingList } from "../ui/data";
import { moment } from "../ui/format";
import { Busy, Empty, ErrorMessage } from "../ui/parts";

export function SessionsSection({ customer }: { customer: Customer }) {
  const list = useGrowingList((cursor) => sessions.list({ customer_id: customer.id, cursor, limit: 10 }), [customer.id]);
  return (
    <section className="panel" aria-labelledby="sessions">
      <h2 id="sessions">Chat sessions</h2>
      <ErrorMessage error={list.error} onRetry={() => void list.reload()} />
      {list.loading && list.items.length === 0 ? (
        <Busy label="Loading sessions…" />
      ) : list.items.length === 0 ? (
        <Empty>
          No chats about {customer.name} yet. <Link to={withQuery("/chat", { customer: customer.id })}>Start one</Link>.
        </Empty>
      ) : (
        <ul className="sessions">
          {list.items.map((session) => (
            <li key={session.id}>
              <Link to={`/chat/${session.id}`}>{session.title || "Untitled chat"}</Link>
              <span className="muted">
                {" "}
                · {session.message_count ?? 0} messages · {moment(session.last_message_at ?? session.updated_at)}
              </span>
            </li>
          ))}
        </ul>
      )}
      {list.hasMore && (
        <button type="button" onClick={list.more} disabled={list.loading}>
          Show more sessions
        </button>
      )}
    </section>
  );
}
