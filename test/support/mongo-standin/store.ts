// In-memory databases and cursors (collections: collection.ts). Cursors hold references
// to the documents they found, so a later write cannot change a batch that is half sent.
import { randomBytes } from "node:crypto";
import { BSON } from "mongodb";
import { Collection, CommandError } from "./collection.ts";
import { type Doc, MAX_BSON_OBJECT_SIZE } from "./wire.ts";

interface Cursor {
  ns: string;
  docs: Doc[];
  pos: number;
  lastUsed: number;
}

/** Cursors untouched this long are dropped (MongoDB's default cursorTimeoutMillis). */
const CURSOR_TIMEOUT_MS = 10 * 60 * 1000;
/** Room left in a 16 MiB reply for the envelope around a batch. */
const BATCH_BYTES = MAX_BSON_OBJECT_SIZE - 16 * 1024;

export interface Batch {
  id: bigint;
  ns: string;
  docs: Doc[];
}

export class Store {
  readonly dbs = new Map<string, Map<string, Collection>>();
  readonly #cursors = new Map<bigint, Cursor>();

  collection(db: string, name: string, create: true): Collection;
  collection(db: string, name: string, create?: boolean): Collection | undefined;
  collection(db: string, name: string, create = false): Collection | undefined {
    let collections = this.dbs.get(db);
    let coll = collections?.get(name);
    if (coll || !create) return coll;
    if (!name || name.includes("$") || name.includes("\0"))
      throw new CommandError(73, `Invalid collection name: ${name}`);
    if (!collections) {
      collections = new Map();
      this.dbs.set(db, collections);
    }
    coll = new Collection(db, name);
    collections.set(name, coll);
    return coll;
  }

  /**
   * Starts a cursor over `docs` and returns the first batch. The cursor id is
   * 0 when everything fit (or `singleBatch`), as MongoDB answers.
   */
  openCursor(ns: string, docs: Doc[], batchSize: number | undefined, singleBatch = false): Batch {
    const cursor: Cursor = { ns, docs, pos: 0, lastUsed: Date.now() };
    const batch = this.#take(cursor, batchSize ?? 101);
    if (singleBatch || cursor.pos >= docs.length) return { id: 0n, ns, docs: batch };
    this.#sweep();
    let id: bigint;
    do id = randomBytes(8).readBigInt64LE() & 0x7fffffffffffffffn;
    while (id === 0n || this.#cursors.has(id));
    this.#cursors.set(id, cursor);
    return { id, ns, docs: batch };
  }

  getMore(id: bigint, batchSize: number | undefined): Batch {
    const cursor = this.#cursors.get(id);
    if (!cursor) throw new CommandError(43, `cursor id ${id} not found`);
    const batch = this.#take(cursor, batchSize || Number.POSITIVE_INFINITY);
    if (cursor.pos >= cursor.docs.length) {
      this.#cursors.delete(id);
      return { id: 0n, ns: cursor.ns, docs: batch };
    }
    cursor.lastUsed = Date.now();
    return { id, ns: cursor.ns, docs: batch };
  }

  killCursor(id: bigint): boolean {
    return this.#cursors.delete(id);
  }

  /** Up to `count` documents, stopping before the batch would overflow a 16 MiB reply (always at least one). */
  #take(cursor: Cursor, count: number): Doc[] {
    const out: Doc[] = [];
    let bytes = 0;
    while (out.length < count && cursor.pos < cursor.docs.length) {
      const doc = cursor.docs[cursor.pos]!;
      // + key ("123") and type byte of the array element.
      const size = BSON.calculateObjectSize(doc) + 2 + String(out.length).length;
      if (out.length && bytes + size > BATCH_BYTES) break;
      bytes += size;
      out.push(doc);
      cursor.pos++;
    }
    return out;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [id, cursor] of this.#cursors) {
      if (now - cursor.lastUsed > CURSOR_TIMEOUT_MS) this.#cursors.delete(id);
    }
  }
}
