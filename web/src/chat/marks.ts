// Performance marks of a chat turn, read by the benchmark (`make bench`, part console): from
// pressing Send to the first token on screen, beside the request and the first delta's arrival.

export const MARKS = {
  send: "cscx:send",
  request: "cscx:chat-request",
  firstDelta: "cscx:first-delta",
  firstTokenPainted: "cscx:first-token-painted",
} as const;

/** A new turn: the previous turn's marks go, so each turn's can be read alone. */
export function markSend(): void {
  for (const name of Object.values(MARKS)) performance.clearMarks(name);
  performance.mark(MARKS.send);
}

export function markOnce(name: (typeof MARKS)[keyof typeof MARKS]): void {
  if (performance.getEntriesByName(name, "mark").length === 0) performance.mark(name);
}

/** Marks once the frame that shows the first token has been painted: a task queued from the
 * frame's animation callback runs after that frame's paint. */
export function markAfterPaint(): void {
  requestAnimationFrame(() => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => markOnce(MARKS.firstTokenPainted);
    channel.port2.postMessage(null);
  });
}
