// Reading a text/event-stream (Server-Sent Events) as a client: the decoder the tests'
// client and the command-line client share. Text goes in as it arrives, in pieces of
// any size; whole events come out. Pure string work: no server imports.

/** One server-sent event: its name (`message` when unnamed), id and data lines joined. */
export interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

/** Cuts the arriving text into events; `end()` answers the last one when the stream ends without a blank line. */
export class EventStreamDecoder {
  private buffer = "";

  /** The events completed by `text`. */
  push(text: string): SseEvent[] {
    this.buffer += text.replace(/\r\n?/g, "\n");
    const events: SseEvent[] = [];
    for (let end = this.buffer.indexOf("\n\n"); end >= 0; end = this.buffer.indexOf("\n\n")) {
      const event = parseEvent(this.buffer.slice(0, end));
      if (event) events.push(event);
      this.buffer = this.buffer.slice(end + 2);
    }
    return events;
  }

  /** The event left in the buffer when the stream ended, if it carries data. */
  end(): SseEvent[] {
    const last = parseEvent(this.buffer);
    this.buffer = "";
    return last ? [last] : [];
  }
}

/** One event block's fields (comments skipped); undefined when it carries no data. */
function parseEvent(block: string): SseEvent | undefined {
  const event: SseEvent = { event: "message", data: "" };
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.event = value;
    else if (field === "id") event.id = value;
    else if (field === "data") data.push(value);
  }
  event.data = data.join("\n");
  return data.length ? event : undefined;
}
