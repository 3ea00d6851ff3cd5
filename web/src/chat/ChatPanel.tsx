// The conversation with the agent (DESIGN §7, §12): useChat over chat_stream, the text as it
// streams, tool calls and approval cards, Stop, and the session's history.

import { Chat, useChat } from "@ai-sdk/react";
import { type ChatInit, type UIMessageChunk, generateId } from "ai";
import { type FormEvent, type KeyboardEvent, useCallback, useEffect, useLayoutEffect, useRef, useState } from "react";
import { actionsChanged } from "../actions/usePendingCount";
import { ApiError } from "../api/client";
import { allPages, sessions } from "../api/endpoints";
import type { Provider, StoredMessage } from "../api/types";
import { Busy, ErrorMessage } from "../ui/parts";
import { markAfterPaint, markSend } from "./marks";
import { MessageView, type Outcome } from "./MessageView";
import { type ChatMessage, createTransport } from "./protocol";

interface Props {
  /** The session to continue, or null for a new one. */
  sessionId: string | null;
  /** The customer a new session is about. */
  customerId: string | null;
  /** A new session got its id from the server (its first answer's `start`). */
  onSessionStarted: (sessionId: string) => void;
  /** A turn of this page started (true) or ended (false). */
  onActivity?: (busy: boolean) => void;
}

/** Loads the session's history, then shows the conversation. */
export function ChatPanel(props: Props) {
  const [history, setHistory] = useState<{ messages: ChatMessage[]; outcomes: Record<string, Outcome> } | null>(
    props.sessionId ? null : { messages: [], outcomes: {} },
  );
  const [error, setError] = useState<Error | null>(null);
  const [attempt, setAttempt] = useState(0);
  // A new chat's id on the client; an existing one's is the session's.
  const [chatId] = useState(() => props.sessionId ?? generateId());

  useEffect(() => {
    if (!props.sessionId) return;
    let live = true;
    setError(null);
    allPages((cursor) => sessions.messages(props.sessionId!, { cursor, limit: 100 }))
      .then((stored) => live && setHistory(historyOf(stored)))
      .catch((failure: Error) => live && setError(failure));
    return () => {
      live = false;
    };
    // Only the session this panel was opened on: a new chat's first answer names it later.
  }, [attempt]);

  if (error) return <ErrorMessage error={error} onRetry={() => setAttempt((a) => a + 1)} />;
  if (!history) return <Busy label="Loading the conversation…" />;
  return <Conversation {...props} chatId={chatId} initial={history.messages} initialOutcomes={history.outcomes} />;
}

function historyOf(stored: StoredMessage[]): { messages: ChatMessage[]; outcomes: Record<string, Outcome> } {
  const messages: ChatMessage[] = [];
  const outcomes: Record<string, Outcome> = {};
  for (const message of stored) {
    if (message.role === "tool") continue; // Tool results are inside the assistant's parts.
    messages.push({ id: message.id, role: message.role, parts: message.parts as ChatMessage["parts"] });
    if (message.status === "cancelled" || message.status === "error") outcomes[message.id] = message.status;
  }
  return { messages, outcomes };
}

interface Turn {
  /** Sent from this page (false: a stream resumed). */
  sent: boolean;
  messageId: string | null;
  /** The answer's `start` part has come. */
  started: boolean;
  stopWanted: boolean;
  /** Its first token is on screen. */
  painted: boolean;
  finished: boolean;
}

/** No turn sent from this page: a stream resumed is followed as one. */
const idle = (): Turn => ({ sent: false, messageId: null, started: false, stopWanted: false, painted: true, finished: true });

function Conversation(props: Props & { chatId: string; initial: ChatMessage[]; initialOutcomes: Record<string, Outcome> }) {
  const { onSessionStarted } = props;
  const sessionRef = useRef<string | null>(props.sessionId);
  const providerRef = useRef<Provider | null>(null);
  const turn = useRef<Turn>(idle());
  const lastSent = useRef("");
  const [outcomes, setOutcomes] = useState(props.initialOutcomes);
  const [provider, setProvider] = useState<Provider | "">("");
  const [draft, setDraft] = useState("");
  const [stopError, setStopError] = useState<Error | null>(null);
  const [stopping, setStopping] = useState(false);
  const [announcement, setAnnouncement] = useState("");
  const [followAgain, setFollowAgain] = useState(false);
  providerRef.current = provider || null;

  const requestStop = useCallback(async (sessionId: string) => {
    try {
      await sessions.stop(sessionId);
    } catch (failure) {
      setStopError(failure as Error);
    }
  }, []);

  const observe = useCallback(
    (chunk: UIMessageChunk) => {
      const current = turn.current;
      if (chunk.type === "start") {
        current.started = true;
        current.messageId = chunk.messageId ?? null;
        const sessionId = (chunk.messageMetadata as { sessionId?: string } | undefined)?.sessionId;
        if (sessionId && sessionId !== sessionRef.current) {
          sessionRef.current = sessionId;
          onSessionStarted(sessionId);
        }
        if (current.stopWanted && sessionRef.current) void requestStop(sessionRef.current);
      } else if (chunk.type === "abort" && current.messageId) {
        const id = current.messageId;
        setOutcomes((o) => ({ ...o, [id]: "cancelled" }));
        setAnnouncement("Stopped.");
      } else if (chunk.type === "error" && current.messageId) {
        const id = current.messageId;
        setOutcomes((o) => ({ ...o, [id]: "error" }));
      } else if (chunk.type === "tool-approval-request") {
        actionsChanged();
      }
    },
    [onSessionStarted, requestStop],
  );

  // The conversation's Chat, made here rather than by useChat: given a transport, useChat wraps
  // it in one of its own that drops `resumeStreamIsReplay` (@ai-sdk/react 3.0.328), and a stream
  // resumed after a dropped connection would then be added to the part already shown instead of
  // replacing it. One Chat and one transport for the conversation's life: they read the refs.
  const handlers = useRef<Required<Pick<ChatInit<ChatMessage>, "onError" | "onFinish">>>({ onError: () => {}, onFinish: () => {} });
  const [conversation] = useState(
    () =>
      new Chat<ChatMessage>({
        id: props.chatId,
        messages: props.initial,
        transport: createTransport(
          { customerId: props.customerId, provider: () => providerRef.current },
          observe,
          () => reloadHistory.current(),
        ),
        onError: (error) => handlers.current.onError(error),
        onFinish: (finish) => handlers.current.onFinish(finish),
      }),
  );
  const chat = useChat<ChatMessage>({
    chat: conversation,
    // A session's answer still being written (this page was reloaded, or it runs in another
    // tab) is followed from its start (GET /chat/{id}/stream); a new chat has none.
    resume: props.sessionId !== null,
  });
  handlers.current = {
    onError: (error) => {
      // A message refused before any answer (DESIGN §7: 400, 404, 409, 422, 429 come first):
      // nothing was stored, so it goes back into the box to be sent again.
      const refused = error instanceof ApiError && turn.current.sent && !turn.current.started;
      if (refused) {
        chat.setMessages((messages) => (messages[messages.length - 1]?.role === "user" ? messages.slice(0, -1) : messages));
        setDraft((d) => d || lastSent.current);
      }
      // Following an answer failed on the way (the server unreachable, or failing): it can be
      // asked for again; the session has it, or its end.
      const unreachable = error instanceof ApiError && (error.status === 0 || error.status >= 500);
      setFollowAgain(!refused && unreachable && sessionRef.current !== null);
    },
    onFinish: ({ isDisconnect }) => {
      setStopping(false);
      turn.current = { ...turn.current, painted: true, finished: true };
      if (isDisconnect) {
        setAnnouncement("The connection dropped. Reconnecting…");
        const resume = () => void chat.resumeStream();
        if (navigator.onLine) window.setTimeout(resume, 1000);
        else window.addEventListener("online", resume, { once: true });
      }
    },
  };

  // When a resume finds nothing in flight, the turn ended meanwhile: the stored history has it.
  const reloadHistory = useRef(() => {});
  reloadHistory.current = () => {
    const sessionId = sessionRef.current;
    if (!sessionId) return;
    void allPages((cursor) => sessions.messages(sessionId, { cursor, limit: 100 })).then((stored) => {
      const loaded = historyOf(stored);
      chat.setMessages(loaded.messages);
      setOutcomes(loaded.outcomes);
    });
  };

  const busy = chat.status === "submitted" || chat.status === "streaming";
  const { onActivity } = props;
  const wasBusy = useRef(busy);
  useEffect(() => {
    if (wasBusy.current !== busy) onActivity?.(busy); // Only a change is news.
    wasBusy.current = busy;
  }, [busy]); // onActivity is read when busy changes; its identity changes with every render of the view

  // The first token of a turn on screen: marked once painted (the benchmark reads it).
  const last = chat.messages[chat.messages.length - 1];
  useLayoutEffect(() => {
    if (turn.current.painted || !last || last.role !== "assistant") return;
    if (last.parts.some((part) => part.type === "text" && part.text.length > 0)) {
      turn.current.painted = true;
      markAfterPaint();
    }
  }, [last]);

  useEffect(() => {
    if (chat.status === "submitted") setAnnouncement("Sending…");
    else if (chat.status === "streaming") setAnnouncement("The agent is answering…");
    else if (chat.status === "ready") setAnnouncement((a) => (a === "Stopped." ? a : "The answer is complete."));
  }, [chat.status]);

  const send = (text: string) => {
    const message = text.trim();
    if (!message || busy) return;
    lastSent.current = message;
    turn.current = { sent: true, messageId: null, started: false, stopWanted: false, painted: false, finished: false };
    setStopError(null);
    setDraft("");
    markSend();
    void chat.sendMessage({ text: message });
  };

  const stop = () => {
    setStopping(true);
    turn.current.stopWanted = true;
    // Stop asks the server (DESIGN §7): the model's call ends within a second, the partial
    // answer is kept as cancelled, and the stream ends with `abort`. Before the answer has
    // started, the request goes as soon as its session is known (see observe).
    if (turn.current.started && sessionRef.current) void requestStop(sessionRef.current);
    // Should the server not end the stream, the page lets go of it.
    window.setTimeout(() => {
      if (turn.current.stopWanted && !turn.current.finished) void chat.stop();
    }, 5000);
  };

  const submit = (event: FormEvent) => {
    event.preventDefault();
    send(draft);
  };
  const keys = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      send(draft);
    }
  };

  // The conversation stays scrolled to its end while the reader is there, as text streams in
  // and as approval cards load; scrolling up to read leaves it where the reader put it.
  const log = useRef<HTMLDivElement>(null);
  const content = useRef<HTMLDivElement>(null);
  const pinned = useRef(true);
  useLayoutEffect(() => {
    const element = log.current;
    if (!element || !content.current) return;
    const follow = () => {
      if (pinned.current) element.scrollTop = element.scrollHeight;
    };
    follow();
    const observer = new ResizeObserver(follow);
    observer.observe(content.current);
    return () => observer.disconnect();
  }, []);

  return (
    <div className="conversation">
      <div
        className="messages"
        ref={log}
        onScroll={(e) => {
          const el = e.currentTarget;
          pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 80;
        }}
        aria-label="Conversation"
        role="region"
        tabIndex={0}
      >
        <div ref={content}>
          {chat.messages.length === 0 && (
            <p className="empty">
              Ask about your accounts — “Which renewals are at risk this quarter?” — or ask the agent to draft a follow-up. Anything it
              wants to send, book or create waits for your approval.
            </p>
          )}
          {chat.messages.map((message, index) => (
            <MessageView
              key={message.id}
              message={message}
              outcome={outcomes[message.id]}
              live={busy && index === chat.messages.length - 1}
            />
          ))}
          {chat.status === "submitted" && <Busy label="Waiting for the agent…" />}
        </div>
      </div>
      <p className="visually-hidden" role="status" aria-live="polite">
        {announcement}
      </p>
      <ErrorMessage
        error={chat.error}
        onRetry={
          followAgain
            ? () => {
                setFollowAgain(false);
                void chat.resumeStream();
              }
            : undefined
        }
      />
      <ErrorMessage error={stopError} />
      <form className="composer" onSubmit={submit} aria-label="Message the agent">
        <label className="visually-hidden" htmlFor={`${props.chatId}-message`}>
          Message
        </label>
        <div className="message-box">
          <textarea
            id={`${props.chatId}-message`}
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            onKeyDown={keys}
            rows={3}
            maxLength={20000}
            placeholder="Message the agent (Enter sends, Shift+Enter for a new line)"
          />
        </div>
        <div className="composer-actions">
          <label className="inline">
            <span>Provider</span>
            <select value={provider} onChange={(e) => setProvider(e.target.value as Provider | "")}>
              <option value="">Default</option>
              <option value="claude">Claude</option>
              <option value="gemini">Gemini</option>
            </select>
          </label>
          {busy ? (
            <button type="button" className="danger" onClick={stop} disabled={stopping}>
              {stopping ? "Stopping…" : "Stop"}
            </button>
          ) : (
            <button type="submit" className="primary" disabled={!draft.trim()}>
              Send
            </button>
          )}
        </div>
      </form>
    </div>
  );
}

