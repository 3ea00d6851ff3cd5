import type { Action, Recipient } from "../api/types";

/** Who an e-mail or meeting goes to. The server's `recipients` says which are known (DESIGN §6);
 * from a server without them, the payload's addresses, not judged. */
export function recipientsOf(action: Action): { recipients: (Omit<Recipient, "known"> & { known?: boolean })[]; judged: boolean } {
  if (action.recipients) return { recipients: action.recipients, judged: true };
  const payload = action.payload as Record<string, unknown>;
  const list = (value: unknown) => (Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : []);
  const recipients = [
    ...list(payload.to).map((email) => ({ email, role: "to" as const })),
    ...list(payload.cc).map((email) => ({ email, role: "cc" as const })),
    ...list(payload.attendees).map((email) => ({ email, role: "attendee" as const })),
  ];
  return { recipients, judged: false };
}
