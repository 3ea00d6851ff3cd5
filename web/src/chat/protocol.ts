// How the console's useChat talks to chat_stream (DESIGN §7), in one place.
//
// chat_stream reads the UI message stream protocol v1 that useChat reads. Two parts of §7 are
// still landing in the backend: the AI SDK's default request body for POST /chat, and
// GET /chat/{session_id}/stream to resume. Until they land:
//   - `ourBody` sends the body chat_stream takes today (`message`, `session_id`, ...): delete
//     it and its `prepareSendMessagesRequest` line to send useChat's default body instead;
//   - RESUME_STREAMS is false: set it to true to resume a dropped stream.

import { DefaultChatTransport, type UIMessage, type UIMessageChunk } from "ai";
import { authorizedFetch, serviceUrl } from "../api/client";
import type { ChatRequest, Provider } from "../api/types";
import { MARKS, markOnce } from "./marks";

export const RESUME_STREAMS = false;

export interface MessageMeta {
  sessionId?: string;
}
export type ChatMessage = UIMessage<MessageMeta>;

export interface ChatContext {
  /** The session the chat writes to, once known (null before the first answer of a new chat). */
  sessionId: () => string | null;
  customerId: string | null;
  provider: () => Provider | null;
}

/** The fields chat_stream takes beside the messages, in either body. */
function extraFields(context: ChatContext): Partial<ChatRequest> {
  return {
    ...(context.customerId ? { customer_id: context.customerId } : {}),
    ...(context.provider() ? { provider: context.provider() } : {}),
  };
}

function ourBody(messages: ChatMessage[], context: ChatContext): ChatRequest {
  const last = messages[messages.length - 1];
  const message = (last?.parts ?? []).map((part) => (part.type === "text" ? part.text : "")).join("");
  const sessionId = context.sessionId();
  return { message, ...(sessionId ? { session_id: sessionId } : {}), ...extraFields(context) };
}

/** The SDK's transport, letting the panel see each part as it is read (the session's id in
 * `start`, `abort`, the first text). */
class ConsoleTransport extends DefaultChatTransport<ChatMessage> {
  private readonly observe: (chunk: UIMessageChunk) => void;

  constructor(observe: (chunk: UIMessageChunk) => void, options: ConstructorParameters<typeof DefaultChatTransport<ChatMessage>>[0]) {
    super(options);
    this.observe = observe;
  }

  protected override processResponseStream(stream: ReadableStream<Uint8Array<ArrayBufferLike>>): ReadableStream<UIMessageChunk> {
    const observe = this.observe;
    return super.processResponseStream(stream).pipeThrough(
      new TransformStream<UIMessageChunk, UIMessageChunk>({
        transform(chunk, controller) {
          if (chunk.type === "text-delta") markOnce(MARKS.firstDelta);
          observe(chunk);
          controller.enqueue(chunk);
        },
      }),
    );
  }
}

export function createTransport(
  context: ChatContext,
  observe: (chunk: UIMessageChunk) => void,
  onNothingToResume: () => void,
): ConsoleTransport {
  return new ConsoleTransport(observe, {
    api: serviceUrl("chat_stream", "/chat"),
    credentials: "omit",
    fetch: async (input, init) => {
      const url = String(input);
      if (init?.method === "POST") markOnce(MARKS.request);
      const response = await authorizedFetch(url, init ?? {});
      if (response.status === 204 && url.endsWith("/stream")) onNothingToResume();
      return response;
    },
    body: () => extraFields(context),
    prepareSendMessagesRequest: ({ messages }) => ({ body: ourBody(messages, context) }),
  });
}
