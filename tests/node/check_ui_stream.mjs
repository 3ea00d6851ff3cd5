// Test oracle for the AI SDK UI message stream protocol v1 (DESIGN §7).
//
// Reads a raw SSE response body from stdin (the bytes as our server sent them) and judges it with
// the AI SDK's own code, once with each pinned major — `ai` 6.x, and 7.x installed as `ai7` — so
// "valid" means "what `useChat` of both accepts", and both must assemble the same message:
//   1. events are split by eventsource-parser, the same library and version the SDK's client uses;
//   2. each `data:` JSON is validated with the SDK's exported `uiMessageChunkSchema`;
//   3. no chunk carries a key that the SDK's schema branch for its `type` does not define (the SDK's
//      zod objects are `looseObject`s and let unknown keys through; DESIGN forbids them);
//   4. the body is sent through `DefaultChatTransport` (the transport `useChat` uses; given a fake
//      fetch) and `readUIMessageStream`, which assemble the final UIMessage and throw on sequencing
//      errors such as a text-delta before its text-start.
// Prints {"ok", "errors", "chunks", "message", "done"} as one JSON line; exit 0 when ok, else 1.
// With --batch, stdin is a JSON array of base64 bodies and stdout a JSON array of verdicts (exit 0
// unless the oracle itself broke): importing `ai` costs most of a run, so a suite pays it once.

import * as ai6 from "ai";
import * as ai7 from "ai7";
import { EventSourceParserStream } from "eventsource-parser/stream";
import * as z from "zod/v4";

const SDKS = [
  ["ai 6", ai6],
  ["ai 7", ai7],
];

// The SDK exports the chunk schema only as a LazySchema wrapper ({jsonSchema, validate}); its
// JSON Schema cannot be built (the `data-*` branch is a z.custom) and the zod union is private to a
// closure. Zod's documented error-map hook gets every raw issue with `inst`, the schema that raised
// it, so one failing validation of a non-object hands us the very union the SDK validates with.
// Its branches' shapes are then the source of the allowed keys: no hand-written key list to drift.
async function sdkChunkBranches({ uiMessageChunkSchema }) {
  let union;
  z.config({
    customError: (issue) => {
      if (issue.code === "invalid_union" && issue.inst?._zod?.def?.options) union = issue.inst;
      return undefined; // keep zod's own messages
    },
  });
  try {
    await uiMessageChunkSchema().validate(null);
  } finally {
    z.config({ customError: undefined });
  }
  const options = union?._zod.def.options ?? [];
  const branches = options
    .map((schema) => ({ schema, shape: schema._zod.def.shape }))
    .filter(({ shape }) => shape?.type);
  if (branches.length === 0 || branches.length !== options.length) {
    throw new Error("cannot read the object branches of ai's uiMessageChunkSchema (zod or ai changed?)");
  }
  return branches;
}

// Branches whose `type` schema (a literal, or the custom `data-*` check) accepts this type value.
async function branchesFor(branches, type) {
  const matching = [];
  for (const branch of branches) {
    const result = await branch.shape.type["~standard"].validate(type);
    if (!result.issues) matching.push(branch);
  }
  return matching;
}

function describeIssues(issues) {
  return issues.map((i) => `${i.path?.length ? i.path.join(".") : "(chunk)"}: ${i.message}`).join("; ");
}

async function checkEvents(bytes, { uiMessageChunkSchema }, branches, errors, chunks) {
  let done = false;
  const events = [];
  const parser = new EventSourceParserStream({
    // The SDK ignores malformed lines; our server must not send them.
    onError: (err) => errors.push(`SSE: ${err.message}`),
  });
  const stream = new Response(bytes).body.pipeThrough(new TextDecoderStream()).pipeThrough(parser);
  for await (const event of stream) events.push(event);

  for (const [n, { event, id, data }] of events.entries()) {
    const where = `event ${n}`;
    // The SDK reads only `data`; DESIGN §7 sends nothing else but comments.
    if (event !== undefined) errors.push(`${where}: unexpected "event: ${event}" field`);
    if (id !== undefined) errors.push(`${where}: unexpected "id: ${id}" field`);
    if (done) errors.push(`${where}: data after [DONE]`);
    if (data === "[DONE]") {
      done = true;
      continue;
    }
    let chunk;
    try {
      chunk = JSON.parse(data);
    } catch (err) {
      errors.push(`${where}: data is not JSON: ${err.message}`);
      chunks.push(null);
      continue;
    }
    const type = chunk?.type;
    chunks.push(typeof type === "string" ? type : null);
    const label = `${where} (${typeof type === "string" ? type : JSON.stringify(type)})`;

    const verdict = await uiMessageChunkSchema().validate(chunk);
    const matching = await branchesFor(branches, type);
    if (matching.length === 0) {
      errors.push(`${label}: unknown chunk type`);
      continue;
    }
    if (!verdict.success) {
      // The verdict is the SDK's; re-running the matching branch only says which field is wrong.
      const { issues } = await matching[0].schema["~standard"].validate(chunk);
      errors.push(`${label}: fails ai's chunk schema: ${issues ? describeIssues(issues) : verdict.error.message}`);
    }
    const allowed = new Set(matching.flatMap(({ shape }) => Object.keys(shape)));
    const extra = Object.keys(chunk).filter((key) => !allowed.has(key));
    if (extra.length) errors.push(`${label}: keys not in ai's chunk type: ${extra.join(", ")}`);
  }
  if (!done) errors.push("stream did not end with data: [DONE]");
  return done;
}

// The client path of useChat: DefaultChatTransport.sendMessages → parseJsonEventStream with
// uiMessageChunkSchema (throws on the first invalid chunk) → processUIMessageStream, here through
// the public readUIMessageStream, whose last snapshot is the message useChat would hold.
async function assemble(bytes, { DefaultChatTransport, readUIMessageStream }, errors) {
  const transport = new DefaultChatTransport({
    api: "http://oracle.invalid/chat",
    fetch: async () =>
      new Response(bytes, { headers: { "content-type": "text/event-stream", "x-vercel-ai-ui-message-stream": "v1" } }),
  });
  const chunkStream = await transport.sendMessages({
    chatId: "oracle",
    messages: [],
    trigger: "submit-message",
    messageId: undefined,
    abortSignal: undefined,
  });

  // An `error` chunk is a legal part: processUIMessageStream reports it through onError as a plain
  // Error(errorText) and goes on (useChat instead stops there with status "error"). Anything else
  // reaching onError is the SDK rejecting the stream. A tap tells the two apart.
  const errorChunkTexts = [];
  const tapped = chunkStream.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        if (chunk.type === "error") errorChunkTexts.push(chunk.errorText);
        controller.enqueue(chunk);
      },
    }),
  );
  let message = null;
  const onError = (err) => {
    if (err?.constructor === Error && errorChunkTexts.length && err.message === errorChunkTexts[0]) {
      errorChunkTexts.shift();
      return;
    }
    // First line only: a TypeValidationError appends the whole zod union report, and the
    // per-event checks above already said which field is wrong.
    const text = String(err?.message ?? err).split("\n")[0];
    errors.push(`ai rejected the stream: ${err?.name ?? "Error"}: ${text}`);
  };
  for await (const snapshot of readUIMessageStream({ stream: tapped, onError })) message = snapshot;
  return message;
}

const branchesBySdk = new Map();

// One SDK's verdict: its errors (each prefixed with the SDK's name), the chunk types and the message.
async function judgeWith(name, sdk, bytes) {
  const errors = [];
  const chunks = [];
  let done = false;
  let message = null;
  try {
    if (!branchesBySdk.has(name)) branchesBySdk.set(name, sdkChunkBranches(sdk));
    done = await checkEvents(bytes, sdk, await branchesBySdk.get(name), errors, chunks);
    message = await assemble(bytes, sdk, errors);
  } catch (err) {
    errors.push(`oracle failure: ${err?.stack ?? err}`);
  }
  return { errors: errors.map((e) => `${name}: ${e}`), chunks, message, done };
}

async function judge(bytes) {
  const errors = [];
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    errors.push("body is not valid UTF-8"); // the SDK would silently replace the bad bytes
  }
  const verdicts = [];
  for (const [name, sdk] of SDKS) verdicts.push(await judgeWith(name, sdk, bytes));
  for (const verdict of verdicts) errors.push(...verdict.errors);
  const [first, ...others] = verdicts;
  for (const [index, other] of others.entries()) {
    if (JSON.stringify(other.message) !== JSON.stringify(first.message)) {
      errors.push(`${SDKS[index + 1][0]} assembles another message than ${SDKS[0][0]}`);
    }
  }
  return { ok: errors.length === 0, errors, chunks: first.chunks, message: first.message, done: first.done };
}

async function main() {
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  const input = Buffer.concat(parts);
  if (process.argv.includes("--batch")) {
    const verdicts = [];
    for (const body of JSON.parse(input.toString("utf8"))) {
      verdicts.push(await judge(new Uint8Array(Buffer.from(body, "base64"))));
    }
    process.stdout.write(`${JSON.stringify(verdicts)}\n`);
    return;
  }
  const verdict = await judge(new Uint8Array(input));
  process.stdout.write(`${JSON.stringify(verdict)}\n`);
  process.exitCode = verdict.ok ? 0 : 1;
}

await main();
