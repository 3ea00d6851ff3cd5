// The chat: the sessions so far beside the open conversation.

import { useEffect, useState } from "react";
import { ApiError } from "../api/client";
import { customers, sessions } from "../api/endpoints";
import { Link, navigate, useLocation } from "../router";
import { useGrowingList, useResource } from "../ui/data";
import { moment } from "../ui/format";
import { Busy, ConfirmButton, ErrorMessage } from "../ui/parts";
import { ChatPanel } from "./ChatPanel";

let panels = 0;

export default function ChatView({ sessionId }: { sessionId: string | null }) {
  const customerParam = useLocation().query.get("customer");
  // The open panel and its session. A new chat's session id comes with its first answer: the
  // address then names it, and the same panel goes on.
  const [panel, setPanel] = useState(() => ({ key: ++panels, sessionId }));
  useEffect(() => {
    if (sessionId !== panel.sessionId) setPanel({ key: ++panels, sessionId });
  }, [sessionId, panel.sessionId]);

  const list = useGrowingList((cursor) => sessions.list({ cursor, limit: 30 }), []);
  const session = useResource(
    () => (panel.sessionId ? sessions.get(panel.sessionId) : Promise.resolve({ data: null, etag: null, status: 200 })),
    [panel.sessionId],
  );
  // Whom the chat is about: the address's customer for a new chat, then its session's (kept
  // while a new session's details load, so the line does not flicker).
  const [customerId, setCustomerId] = useState<string | null>(panel.sessionId ? null : customerParam);
  useEffect(() => {
    if (session.data) setCustomerId(session.data.customer_id ?? null);
    else if (!panel.sessionId) setCustomerId(customerParam);
  }, [session.data, panel.sessionId, customerParam]);
  const customer = useResource(
    () => (customerId ? customers.get(customerId) : Promise.resolve({ data: null, etag: null, status: 200 })),
    [customerId],
  );

  const [deleteError, setDeleteError] = useState<Error | null>(null);

  // A turn ended (one sent here, or one the panel resumed): the session (its title, its place in
  // the list) is read again.
  const activity = (busy: boolean) => {
    if (!busy && session.data) {
      void session.reload();
      void list.reload();
    }
  };

  const started = (id: string) => {
    setPanel((p) => ({ ...p, sessionId: id }));
    navigate(`/chat/${id}`, { replace: true });
    void list.reload();
  };

  return (
    <div className="chat-view">
      <aside className="session-list" aria-labelledby="sessions-title">
        <div className="aside-head">
          <h2 id="sessions-title">Sessions</h2>
          <Link className="button" to="/chat">
            New chat
          </Link>
        </div>
        <ErrorMessage error={list.error} onRetry={() => void list.reload()} />
        <nav aria-label="Chat sessions">
          <ul>
            {list.items.map((s) => (
              <li key={s.id}>
                <Link to={`/chat/${s.id}`} aria-current={s.id === panel.sessionId ? "page" : undefined}>
                  <span className="title">{s.title || "Untitled chat"}</span>
                  <small className="muted">{moment(s.last_message_at ?? s.updated_at)}</small>
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        {list.loading && <Busy label="Loading sessions…" />}
        {list.hasMore && (
          <button type="button" onClick={list.more} disabled={list.loading}>
            Show older sessions
          </button>
        )}
      </aside>
      <section className="chat-main" aria-labelledby="chat-title">
        <div className="view-head">
          <div>
            <h1 id="chat-title" tabIndex={-1}>
              {session.data?.title || (panel.sessionId ? "Chat" : "New chat")}
            </h1>
            {customer.data && (
              <p className="muted">
                About <Link to={`/customers/${customer.data.id}`}>{customer.data.name}</Link>
              </p>
            )}
          </div>
          {panel.sessionId && session.data && (
            <ConfirmButton
              label="Delete session"
              question="Delete this session and its messages?"
              confirmLabel="Delete"
              onConfirm={async () => {
                setDeleteError(null);
                try {
                  await sessions.remove(panel.sessionId!);
                  navigate("/chat");
                  void list.reload();
                } catch (failure) {
                  setDeleteError(failure as Error);
                }
              }}
            />
          )}
        </div>
        <ErrorMessage error={deleteError} />
        <ErrorMessage error={session.error} onRetry={() => void session.reload()} />
        {/* Shown while the session's details load (the conversation loads its own history), and
            when they could not be read again: only a session that is gone has no conversation. */}
        {!(session.error instanceof ApiError && session.error.status === 404) && (
          <ChatPanel
            key={panel.key}
            sessionId={panel.sessionId}
            customerId={panel.sessionId ? null : customerParam}
            onSessionStarted={started}
            onActivity={activity}
          />
        )}
      </section>
    </div>
  );
}
