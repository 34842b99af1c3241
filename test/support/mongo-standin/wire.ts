// MongoDB wire protocol: framing of a byte stream into messages, decoding of the
// two request kinds the driver sends (OP_QUERY for the first handshake, OP_MSG
// for everything else) and encoding of replies (OP_REPLY / OP_MSG).
// Reference: https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/
import { BSON } from "mongodb";

export type Doc = Record<string, unknown>;

export const OP_REPLY = 1;
export const OP_QUERY = 2004;
export const OP_COMPRESSED = 2012;
export const OP_MSG = 2013;

const HEADER_BYTES = 16;
const CHECKSUM_PRESENT = 1 << 0;
const MORE_TO_COME = 1 << 1;

export const MAX_BSON_OBJECT_SIZE = 16 * 1024 * 1024;
export const MAX_MESSAGE_SIZE_BYTES = 48_000_000;

/**
 * How request documents become JS values. int64 becomes `bigint` so that a
 * stored Long goes back out as int64 (bson serialises bigint as int64) instead
 * of silently turning into a double; Binary stays `Binary` (GridFS chunks keep
 * their subtype); ObjectId and Date are always kept by bson.
 */
export const DESERIALIZE: BSON.DeserializeOptions = { useBigInt64: true, promoteBuffers: false, promoteValues: true };

export type Request =
  | { op: "query"; requestId: number; db: string; command: Doc }
  | { op: "msg"; requestId: number; command: Doc; moreToCome: boolean };

/** Thrown for bytes that are not a well-formed message; the connection is closed. */
export class ProtocolError extends Error {}

/**
 * Collects the chunks of one connection and hands out whole messages. Chunks
 * are kept in a list and copied once per message, so a 48 MB insert arriving
 * in 64 KiB reads costs one copy, not one per read.
 */
export class MessageReader {
  #chunks: Buffer[] = [];
  #size = 0;

  push(chunk: Buffer): Buffer[] {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    const messages: Buffer[] = [];
    for (;;) {
      if (this.#size < 4) break;
      const length = this.#peekLength();
      if (length < HEADER_BYTES || length > MAX_MESSAGE_SIZE_BYTES + HEADER_BYTES) {
        throw new ProtocolError(`invalid message length ${length}`);
      }
      if (this.#size < length) break;
      messages.push(this.#take(length));
    }
    return messages;
  }

  #peekLength(): number {
    let first = this.#chunks[0]!;
    if (first.length < 4) {
      // The length prefix itself was split across reads.
      first = Buffer.concat(this.#chunks);
      this.#chunks = [first];
    }
    return first.readInt32LE(0);
  }

  #take(length: number): Buffer {
    // A fresh buffer per message: decoded Binary values are views into it and
    // must not share memory with later reads.
    const out = Buffer.allocUnsafeSlow(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.#chunks[0]!;
      const need = length - filled;
      if (chunk.length <= need) {
        chunk.copy(out, filled);
        filled += chunk.length;
        this.#chunks.shift();
      } else {
        chunk.copy(out, filled, 0, need);
        filled += need;
        this.#chunks[0] = chunk.subarray(need);
      }
    }
    this.#size -= length;
    return out;
  }
}

function readCString(buf: Buffer, start: number): [string, number] {
  const end = buf.indexOf(0, start);
  if (end < 0) throw new ProtocolError("unterminated cstring");
  return [buf.toString("utf8", start, end), end + 1];
}

function readDocument(buf: Buffer, start: number, limit: number): [Doc, number] {
  if (start + 4 > limit) throw new ProtocolError("truncated document");
  const size = buf.readInt32LE(start);
  if (size < 5 || start + size > limit) throw new ProtocolError("document overruns its section");
  const doc = BSON.deserialize(buf.subarray(start, start + size), DESERIALIZE) as Doc;
  return [doc, start + size];
}

/** Decodes one complete message (as returned by MessageReader). */
export function decodeRequest(msg: Buffer): Request {
  const requestId = msg.readInt32LE(4);
  const opCode = msg.readInt32LE(12);
  if (opCode === OP_QUERY) {
    // flags(4) fullCollectionName numberToSkip(4) numberToReturn(4) query [fieldSelector]
    const [ns, afterName] = readCString(msg, HEADER_BYTES + 4);
    const [command] = readDocument(msg, afterName + 8, msg.length);
    const dot = ns.indexOf(".");
    return { op: "query", requestId, db: dot < 0 ? ns : ns.slice(0, dot), command };
  }
  if (opCode === OP_MSG) {
    const flags = msg.readUInt32LE(HEADER_BYTES);
    const end = msg.length - (flags & CHECKSUM_PRESENT ? 4 : 0);
    let pos = HEADER_BYTES + 4;
    let body: Doc | undefined;
    const sequences: [string, Doc[]][] = [];
    while (pos < end) {
      const kind = msg[pos++];
      if (kind === 0) {
        [body, pos] = readDocument(msg, pos, end);
      } else if (kind === 1) {
        // Document sequence: size(4, includes itself) identifier docs...
        const sectionEnd = pos + msg.readInt32LE(pos);
        if (sectionEnd > end) throw new ProtocolError("document sequence overruns message");
        let [identifier, at] = readCString(msg, pos + 4);
        const docs: Doc[] = [];
        while (at < sectionEnd) {
          const [doc, next] = readDocument(msg, at, sectionEnd);
          docs.push(doc);
          at = next;
        }
        sequences.push([identifier, docs]);
        pos = sectionEnd;
      } else {
        throw new ProtocolError(`unknown OP_MSG section kind ${kind}`);
      }
    }
    if (!body) throw new ProtocolError("OP_MSG without a body section");
    // Sequences are the command's array arguments (insert.documents, update.updates, ...).
    for (const [identifier, docs] of sequences) {
      const existing = body[identifier];
      body[identifier] = Array.isArray(existing) ? [...existing, ...docs] : docs;
    }
    return { op: "msg", requestId, command: body, moreToCome: (flags & MORE_TO_COME) !== 0 };
  }
  // OP_COMPRESSED is never negotiated (hello has no `compression`), older opcodes are gone.
  throw new ProtocolError(`unsupported opCode ${opCode}`);
}

let nextRequestId = 1;

function header(length: number, responseTo: number, opCode: number): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES);
  buf.writeInt32LE(length, 0);
  buf.writeInt32LE(nextRequestId++ & 0x7fffffff, 4);
  buf.writeInt32LE(responseTo, 8);
  buf.writeInt32LE(opCode, 12);
  return buf;
}

/** OP_REPLY with one document: the answer to an OP_QUERY command. */
export function encodeReply(responseTo: number, doc: Doc): Buffer {
  const body = BSON.serialize(doc);
  const fixed = Buffer.alloc(20); // responseFlags(4) cursorID(8) startingFrom(4) numberReturned(4)
  fixed.writeInt32LE(1, 16);
  return Buffer.concat([header(HEADER_BYTES + 20 + body.length, responseTo, OP_REPLY), fixed, body]);
}

/** OP_MSG with a single kind-0 section, no flags. */
export function encodeMsg(responseTo: number, doc: Doc): Buffer {
  const body = BSON.serialize(doc);
  const fixed = Buffer.alloc(5); // flagBits(4) = 0, section kind(1) = 0
  return Buffer.concat([header(HEADER_BYTES + 5 + body.length, responseTo, OP_MSG), fixed, body]);
}
