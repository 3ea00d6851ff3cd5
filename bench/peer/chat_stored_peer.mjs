// The fair peer for chat benchmarks: the AI SDK route of chat_peer.mjs doing our work around the
// model call, as a web developer would write it with firebase-admin (issue 19).
//
//   POST /chat {"message": "...", "session_id"?: "..."}  Authorization: Bearer <Firebase ID token>
//
// It verifies the ID token; claims the session (a new one, or the caller's own if it is idle) and
// stores the user's message in one Firestore transaction; gives the model the session's history
// (a new session's is the message alone); and stores the answer and frees the session when the
// model ends, before [DONE] (streamText awaits onFinish in its flush). Its documents go to
// peer_sessions, so the bench's own counts of sessions are not disturbed. Same environment as the
// functions (FIRESTORE_EMULATOR_HOST, FIREBASE_AUTH_EMULATOR_HOST, GOOGLE_CLOUD_PROJECT), same
// model stand-in, same usage and output as chat_peer.mjs.
//
// With PEER_DAILY_TOKEN_BUDGET set, it also keeps the spend DESIGN §4 asks for: the claim's
// transaction first reads the caller's tokens of the day (peer_usage) and refuses with 429 once the
// budget is spent, before anything is written; the answer's tokens are added when it is stored.

import { randomUUID } from "node:crypto";
import http from "node:http";
import { createAnthropic } from "@ai-sdk/anthropic";
import { streamText } from "ai";
import { initializeApp } from "firebase-admin/app";
import { getAuth } from "firebase-admin/auth";
import { FieldValue, getFirestore } from "firebase-admin/firestore";

const DEFAULT_MODEL = process.env.ANTHROPIC_MODEL || "claude-sonnet-4-5";
const base = (process.env.ANTHROPIC_BASE_URL || "https://api.anthropic.com").replace(/\/+$/, "");
const anthropic = createAnthropic({ baseURL: `${base}/v1`, apiKey: process.env.ANTHROPIC_API_KEY || "local" });
initializeApp({ projectId: process.env.GOOGLE_CLOUD_PROJECT });
const auth = getAuth();
const db = getFirestore();
const sessions = db.collection("peer_sessions");
const budget = Number(process.env.PEER_DAILY_TOKEN_BUDGET || 0); // 0: no budget kept

function usageOf(uid) {
  return db.collection("peer_usage").doc(`${uid}-${new Date().toISOString().slice(0, 10)}`);
}

class Refusal extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function readJson(req) {
  const parts = [];
  for await (const part of req) parts.push(part);
  return JSON.parse(Buffer.concat(parts).toString("utf8"));
}

function reply(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function verify(req) {
  const token = /^Bearer (.+)$/.exec(req.headers.authorization || "")?.[1];
  if (!token) throw new Refusal(401, "sign in");
  try {
    return (await auth.verifyIdToken(token)).uid;
  } catch {
    throw new Refusal(401, "sign in");
  }
}

// Claim the session and store the user's message, in one transaction.
async function claim(uid, sessionId, text, turn) {
  const session = sessionId ? sessions.doc(sessionId) : sessions.doc();
  const now = FieldValue.serverTimestamp();
  const message = { owner_id: uid, role: "user", parts: [{ type: "text", text }], created_at: now };
  await db.runTransaction(async (t) => {
    // What judges the claim, in one read: the day's spend (with a budget) and the session named.
    const wanted = [...(budget ? [usageOf(uid)] : []), ...(sessionId ? [session] : [])];
    const read = wanted.length ? await t.getAll(...wanted) : [];
    if (budget) {
      const used = read.shift();
      if ((used.get("input_tokens") ?? 0) + (used.get("output_tokens") ?? 0) >= budget) {
        throw new Refusal(429, "the daily token budget is spent");
      }
    }
    if (sessionId) {
      const current = read.shift();
      if (!current.exists || current.get("owner_id") !== uid) throw new Refusal(404, "no such session");
      if (current.get("status") === "streaming") throw new Refusal(409, "a reply is streaming");
      t.update(session, { status: "streaming", turn, message_count: FieldValue.increment(1), updated_at: now });
    } else {
      t.create(session, { owner_id: uid, title: text.slice(0, 80), status: "streaming", turn, message_count: 1,
                          created_at: now, updated_at: now });
    }
    t.create(session.collection("messages").doc(), message);
  });
  return session;
}

async function history(session, created, text) {
  if (created) return [{ role: "user", content: text }];
  const latest = await session.collection("messages").orderBy("created_at", "desc").limit(100).get();
  return latest.docs.reverse().map((d) => ({ role: d.get("role"), content: d.get("parts")[0]?.text ?? "" }));
}

const server = http.createServer(async (req, res) => {
  if (req.method !== "POST" || req.url !== "/chat") return reply(res, 404, { error: "not found" });
  let uid, body, session, messages;
  const turn = randomUUID();
  try {
    uid = await verify(req);
    body = await readJson(req).catch(() => ({}));
    if (typeof body?.message !== "string" || body.message.length === 0) throw new Refusal(400, "message is required");
    const sessionId = typeof body.session_id === "string" ? body.session_id : null;
    session = await claim(uid, sessionId, body.message, turn);
    messages = await history(session, !sessionId, body.message);
  } catch (error) {
    return reply(res, error.status || 500, { error: error.message });
  }
  const upstream = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) upstream.abort();
  });
  const result = streamText({
    model: anthropic(typeof body.model === "string" ? body.model : DEFAULT_MODEL),
    messages,
    abortSignal: upstream.signal,
    onFinish: async ({ text, usage }) => {
      const batch = db.batch();
      const now = FieldValue.serverTimestamp();
      batch.create(session.collection("messages").doc(turn), {
        owner_id: uid, role: "assistant", parts: [{ type: "text", text }], created_at: now,
        usage: { input_tokens: usage.inputTokens ?? 0, output_tokens: usage.outputTokens ?? 0 },
      });
      batch.update(session, { status: "idle", message_count: FieldValue.increment(1), updated_at: now });
      if (budget) {
        const spent = { input_tokens: FieldValue.increment(usage.inputTokens ?? 0),
                        output_tokens: FieldValue.increment(usage.outputTokens ?? 0) };
        batch.set(usageOf(uid), { owner_id: uid, ...spent }, { merge: true });
      }
      await batch.commit();
    },
  });
  result.pipeUIMessageStreamToResponse(res);
});

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
server.listen(port, "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
