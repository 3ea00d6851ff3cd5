// The peer for chat benchmarks: the route a web developer would write with the Vercel AI SDK,
// so our chat_stream is measured against the obvious alternative, not a straw man.
//
//   POST /chat {"message": "...", "model"?: "..."} → AI SDK UI message stream v1 (SSE)
//
// Plain node:http (no framework, so the framework's cost is not measured), streamText with the
// official Anthropic provider, answered by pipeUIMessageStreamToResponse: the same protocol,
// headers and [DONE] our server sends. Usage: node bench/peer/chat_peer.mjs [port]  (or PORT=…;
// 0 or nothing picks a free port). Prints "listening <port>" once it accepts connections.
//
// ANTHROPIC_BASE_URL follows the Python SDK's convention that DESIGN §11 uses (no /v1: the client
// appends /v1/messages), while @ai-sdk/anthropic wants the versioned base and appends only
// /messages; so "/v1" is added here. The provider would also read ANTHROPIC_BASE_URL on its own
// and then miss the /v1: the base is therefore always passed explicitly.

import http from "node:http";
import { createAnthropic } from "@ai-sdk/anthropic";
import { streamText } from "ai";

const DEFAULT_MODEL = process.env.ANTHROPIC_MODEL || "claude-sonnet-4-5";
const base = (process.env.ANTHROPIC_BASE_URL || "https://api.anthropic.com").replace(/\/+$/, "");
const anthropic = createAnthropic({
  baseURL: `${base}/v1`,
  apiKey: process.env.ANTHROPIC_API_KEY || "local", // stand-ins accept any key
});

async function readJson(req) {
  const parts = [];
  for await (const part of req) parts.push(part);
  return JSON.parse(Buffer.concat(parts).toString("utf8"));
}

function reply(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

const server = http.createServer(async (req, res) => {
  if (req.method !== "POST" || req.url !== "/chat") return reply(res, 404, { error: "not found" });
  let body;
  try {
    body = await readJson(req);
  } catch {
    return reply(res, 400, { error: "body is not JSON" });
  }
  if (typeof body?.message !== "string" || body.message.length === 0) {
    return reply(res, 400, { error: "message is required" });
  }
  // Stop the upstream call when the client goes away, as our server does (DESIGN §7 "Stop").
  const upstream = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) upstream.abort();
  });
  const result = streamText({
    model: anthropic(typeof body.model === "string" ? body.model : DEFAULT_MODEL),
    messages: [{ role: "user", content: body.message }],
    abortSignal: upstream.signal,
  });
  result.pipeUIMessageStreamToResponse(res);
});

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
server.listen(port, "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});

// Let a benchmark stop it with SIGTERM/SIGINT without leaving sockets half-open.
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
