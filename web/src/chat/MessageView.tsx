// One message of the conversation, its parts rendered by type as they stream: text, the
// agent's look-ups, and its proposals as approval cards.

import { type DynamicToolUIPart, type ToolUIPart, getToolOrDynamicToolName, isToolOrDynamicToolUIPart } from "ai";
import { memo } from "react";
import { ApprovalCard } from "../actions/ApprovalCard";
import type { ChatMessage } from "./protocol";

export type Outcome = "complete" | "cancelled" | "error";

const ACTION_TOOLS = new Set(["draft_email", "send_email", "book_meeting", "create_task"]);

function actionIdOf(tool: string, output: unknown): string | null {
  if (!ACTION_TOOLS.has(tool) || !output || typeof output !== "object") return null;
  const id = (output as { action_id?: unknown }).action_id;
  return typeof id === "string" ? id : null;
}

const TOOLS: Record<string, [running: string, done: string]> = {
  list_customers: ["Looking through your customers…", "Looked through your customers"],
  get_customer: ["Reading the customer…", "Read the customer"],
  list_contracts: ["Reading contracts…", "Read contracts"],
  list_tasks: ["Reading tasks…", "Read tasks"],
  calendar_free_busy: ["Checking your calendar…", "Checked your calendar"],
  draft_email: ["Drafting an e-mail…", "Proposed an e-mail draft"],
  send_email: ["Writing an e-mail…", "Proposed an e-mail"],
  book_meeting: ["Planning a meeting…", "Proposed a meeting"],
  create_task: ["Writing a task…", "Proposed a task"],
};

interface Props {
  message: ChatMessage;
  outcome?: Outcome;
  /** True while this message is the one streaming in. */
  live: boolean;
}

export const MessageView = memo(function MessageView({ message, outcome, live }: Props) {
  const who = message.role === "user" ? "You" : "Agent";
  return (
    <article className={`message message-${message.role}`} aria-label={`${who} said`}>
      <h3 className="visually-hidden">{who}</h3>
      {message.parts.map((part, index) => {
        if (part.type === "text") {
          return (
            <div key={index} className="text">
              {part.text}
            </div>
          );
        }
        if (isToolOrDynamicToolUIPart(part)) return <ToolPart key={part.toolCallId} part={part} live={live} />;
        return null;
      })}
      {outcome === "cancelled" && (
        <p className="turn-end" role="note">
          Stopped: the answer was cut here.
        </p>
      )}
      {outcome === "error" && (
        <p className="turn-end error" role="note">
          The answer broke off with an error.
        </p>
      )}
    </article>
  );
});

function ToolPart({ part, live }: { part: ToolUIPart | DynamicToolUIPart; live: boolean }) {
  const name = getToolOrDynamicToolName(part);
  const [running, done] = TOOLS[name] ?? [`Using ${name}…`, `Used ${name}`];
  // A proposal is its action's card, whether it waits for approval or was approved without
  // asking (the CSM's auto-approve), which its output then says.
  const actionId = part.approval?.id ?? actionIdOf(name, part.state === "output-available" ? part.output : null);
  if (actionId) return <ApprovalCard actionId={actionId} />;
  if (part.state === "output-error") {
    return (
      <div className="tool tool-error" role="note">
        {done}: it failed. <span className="muted">{part.errorText}</span>
      </div>
    );
  }
  if (part.state === "output-available") {
    return (
      <details className="tool">
        <summary>{done}</summary>
        <pre>{JSON.stringify({ input: part.input, output: part.output }, null, 2)}</pre>
      </details>
    );
  }
  if (!live) {
    return <div className="tool muted">{done.replace(/^Proposed/, "Was proposing")}: interrupted.</div>;
  }
  return (
    <div className="tool running" role="status">
      <span className="spinner" aria-hidden="true" />
      {running}
    </div>
  );
}
