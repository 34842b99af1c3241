// Server-Sent Events (the text/event-stream format of the HTML standard), parsed from a
// fetch body: the page reads a job's live status with fetch, not EventSource, because
// EventSource cannot send the bearer token.

export interface ServerEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * A Server-Sent Events parser (the text/event-stream format of the HTML standard):
 * feed it text as it arrives, in chunks split anywhere, and it hands back the
 * complete events. Handles LF, CR and CRLF line ends, comments and multi-line data.
 */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  private id: string | undefined;

  push(chunk: string): ServerEvent[] {
    this.buffer += chunk;
    const events: ServerEvent[] = [];
    for (;;) {
      const end = this.buffer.search(/\r\n|\r|\n/);
      // A lone CR at the very end may be the first half of a CRLF: wait for more.
      if (end === -1 || (end === this.buffer.length - 1 && this.buffer[end] === "\r")) break;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + (this.buffer.startsWith("\r\n", end) ? 2 : 1));
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  private line(line: string): ServerEvent | undefined {
    if (line === "") {
      const event = this.data.length
        ? {
            event: this.event || "message",
            data: this.data.join("\n"),
            ...(this.id !== undefined ? { id: this.id } : {}),
          }
        : undefined;
      this.data = [];
      this.event = "";
      return event;
    }
    if (line.startsWith(":")) return undefined; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
    return undefined;
  }
}
