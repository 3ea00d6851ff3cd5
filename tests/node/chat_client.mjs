// The AI SDK's own chat client, driven by the tests (DESIGN §7): `DefaultChatTransport` as
// `useChat` builds it by default (`api` and headers, nothing else) sends messages and resumes
// streams against the running chat_stream, under `ai` 6.x or 7.x (`ai7`).
//
// One JSON command per line on stdin, one JSON answer per line on stdout, in order:
//   {"op": "send", "handle", "ai": "6"|"7", "api", "headers", "chatId", "messages", "trigger",
//    "messageId"?, "until"?}     transport.sendMessages(...), read until `until` or the end
//   {"op": "resume", "handle", "ai", "api", "headers", "chatId", "until"?}
//                                transport.reconnectToStream({chatId}): 204 is {"status": 204}
//   {"op": "read", "handle", "until"?}   read on
//   {"op": "cut", "handle"}              abort the request mid-stream: its connection closes
//   {"op": "assemble", "ai", "chunks"}   the UIMessage readUIMessageStream makes of the chunks
// `until` is {"type", "count"}: stop once that many chunks of that type have been read in all.
// An answer to send/resume/read is {"handle", "status", "chunks" (the new ones), "done"}, with
// "error" when the SDK threw (for a refused request, the response's text).

import readline from "node:readline";
import * as ai6 from "ai";
import * as ai7 from "ai7";

const SDKS = { 6: ai6, 7: ai7 };
const streams = new Map(); // handle -> {reader, chunks, controller, status}

// The transport's fetch is the platform's: the status is noted on the way, for the tests.
const platformFetch = globalThis.fetch;
let noting = null;
globalThis.fetch = async (input, init) => {
  const response = await platformFetch(input, init);
  if (noting) noting.status = response.status;
  return response;
};

function sdk(version) {
  const found = SDKS[String(version)];
  if (!found) throw new Error(`no ai ${version}`);
  return found;
}

function reached(state, until) {
  if (!until) return false;
  return state.chunks.filter((chunk) => chunk.type === until.type).length >= until.count;
}

async function readOn(handle, until) {
  const state = streams.get(handle);
  const start = state.chunks.length;
  let done = false;
  let error;
  while (!reached(state, until)) {
    let next;
    try {
      next = await state.reader.read();
    } catch (err) {
      error = `${err?.name ?? "Error"}: ${err?.message ?? err}`;
      done = true;
      break;
    }
    if (next.done) {
      done = true;
      break;
    }
    state.chunks.push(next.value);
  }
  if (done) streams.delete(handle);
  return { handle, status: state.status, chunks: state.chunks.slice(start), done, ...(error ? { error } : {}) };
}

async function open(command, start) {
  const { DefaultChatTransport } = sdk(command.ai);
  const transport = new DefaultChatTransport({ api: command.api, headers: command.headers });
  const controller = new AbortController();
  const state = { chunks: [], controller, status: null, reader: null };
  noting = state;
  let stream;
  try {
    stream = await start(transport, controller.signal);
  } catch (err) {
    return { handle: command.handle, status: state.status, chunks: [], done: true, error: String(err?.message ?? err) };
  } finally {
    noting = null;
  }
  if (stream === null) return { handle: command.handle, status: state.status, chunks: [], done: true };
  state.reader = stream.getReader();
  streams.set(command.handle, state);
  return readOn(command.handle, command.until);
}

async function assemble(command) {
  const { readUIMessageStream } = sdk(command.ai);
  const stream = new ReadableStream({
    start(controller) {
      for (const chunk of command.chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
  let message = null;
  const errors = [];
  for await (const snapshot of readUIMessageStream({ stream, onError: (err) => errors.push(String(err?.message ?? err)) })) {
    message = snapshot;
  }
  return { message, errors };
}

async function run(command) {
  switch (command.op) {
    case "send":
      return open(command, (transport, abortSignal) =>
        transport.sendMessages({
          chatId: command.chatId,
          messages: command.messages,
          trigger: command.trigger ?? "submit-message",
          messageId: command.messageId,
          abortSignal,
        }),
      );
    case "resume":
      return open(command, (transport, abortSignal) => transport.reconnectToStream({ chatId: command.chatId, abortSignal }));
    case "read":
      return readOn(command.handle, command.until);
    case "cut": {
      const state = streams.get(command.handle);
      state?.controller.abort();
      await state?.reader.cancel().catch(() => {});
      streams.delete(command.handle);
      return { handle: command.handle, cut: Boolean(state) };
    }
    case "assemble":
      return assemble(command);
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await run(JSON.parse(line));
  } catch (err) {
    answer = { failure: String(err?.stack ?? err) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}
