// How the console's useChat talks to chat_stream (DESIGN §7), in one place.
//
// chat_stream reads the body useChat sends by default (`id`, `messages`, `trigger`) and answers
// in the UI message stream protocol v1 that useChat reads. The chat's `id` is the session's: a
// new chat's id is made here and chat_stream creates the session under it, so the session is
// named before its first answer and a page that comes back to it can resume its stream
// (GET /chat/{id}/stream; 204 when nothing is in flight).

import { DefaultChatTransport, type UIMessage, type UIMessageChunk } from "ai";
import { authorizedFetch, serviceUrl } from "../api/client";
import type { ChatRequest, Provider } from "../api/types";
import { MARKS, markOnce } from "./marks";

export interface MessageMeta {
  sessionId?: string;
}
export type ChatMessage = UIMessage<MessageMeta>;

export interface ChatContext {
  /** The customer a new session is about. */
  customerId: string | null;
  provider: () => Provider | null;
}

/** The fields chat_stream takes beside useChat's own. */
function extraFields(context: ChatContext): Partial<ChatRequest> {
  return {
    ...(context.customerId ? { customer_id: context.customerId } : {}),
    ...(context.provider() ? { provider: context.provider() } : {}),
  };
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
    // Every request, the resume's GET too, carries the ID token (authorizedFetch), and a refusal
    // becomes an ApiError with the contract's message and Retry-After.
    fetch: async (input, init) => {
      if (init?.method === "POST") markOnce(MARKS.request);
      const response = await authorizedFetch(String(input), init ?? {});
      if (response.status === 204 && init?.method === "GET") onNothingToResume();
      return response;
    },
    body: () => extraFields(context),
    prepareReconnectToStreamRequest: ({ id }) => ({
      api: serviceUrl("chat_stream", `/chat/${encodeURIComponent(id)}/stream`),
    }),
  });
}
