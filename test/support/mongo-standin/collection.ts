// In-memory collections and their unique indexes, and the server's command errors.
// Stored documents are never mutated: an update stores a new object.
import { Query } from "mingo";
import { resolve } from "mingo/util";
import { Binary, BSON, ObjectId, UUID } from "mongodb";
import type { Doc } from "./wire.ts";

const CODE_NAMES: Record<number, string> = {
  2: "BadValue",
  9: "FailedToParse",
  14: "TypeMismatch",
  26: "NamespaceNotFound",
  27: "IndexNotFound",
  43: "CursorNotFound",
  48: "NamespaceExists",
  59: "CommandNotFound",
  66: "ImmutableField",
  67: "CannotCreateIndex",
  72: "InvalidOptions",
  73: "InvalidNamespace",
  85: "IndexOptionsConflict",
  86: "IndexKeySpecsConflict",
  11000: "DuplicateKey",
};

/** An error with MongoDB's code; becomes `{ok: 0, ...}` or a `writeErrors` entry. */
export class CommandError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly extra: Doc = {},
  ) {
    super(message);
  }
  get codeName(): string {
    return CODE_NAMES[this.code] ?? "UnknownError";
  }
}

/**
 * A string that is equal for two values exactly when MongoDB's index would
 * treat them as the same key (1 == 1.0 == NumberLong(1); field order matters in
 * embedded documents). Used for `_id` and unique-index lookups.
 */
export function keyString(value: unknown): string {
  if (value === undefined || value === null) return "null";
  switch (typeof value) {
    case "number":
      return `n${Object.is(value, -0) ? 0 : value}`;
    case "bigint":
      return `n${value}`;
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return `b${value}`;
  }
  if (value instanceof Date) return `d${value.getTime()}`;
  if (value instanceof ObjectId) return `o${value.toHexString()}`;
  if (value instanceof Binary) return `x${value.sub_type}:${Buffer.from(value.buffer).toString("base64")}`;
  if (value instanceof RegExp) return `r${value}`;
  if (Array.isArray(value)) return `[${value.map(keyString).join(",")}]`;
  const bsonType = (value as { _bsontype?: string })._bsontype;
  if (bsonType) return `${bsonType}:${String(value)}`;
  return `{${Object.entries(value as Doc)
    .map(([k, v]) => `${JSON.stringify(k)}:${keyString(v)}`)
    .join(",")}}`;
}

/** How MongoDB prints a key value in E11000 messages: `{ email: "a@b.c" }`. */
function showKey(keyValue: Doc): string {
  const show = (v: unknown): string => {
    if (v instanceof ObjectId) return `ObjectId('${v.toHexString()}')`;
    if (v instanceof Date) return `new Date(${v.getTime()})`;
    if (typeof v === "string") return JSON.stringify(v);
    if (typeof v === "number" || typeof v === "bigint" || typeof v === "boolean") return String(v);
    if (v === null || v === undefined) return "null";
    return BSON.EJSON.stringify(v as Doc, { relaxed: true });
  };
  const parts = Object.entries(keyValue).map(([k, v]) => `${k}: ${show(v)}`);
  return parts.length ? `{ ${parts.join(", ")} }` : "{}";
}

export class Index {
  readonly name: string;
  readonly keyPattern: Doc;
  readonly unique: boolean;
  readonly sparse: boolean;
  readonly #partial: Query | undefined;
  /** For unique indexes: key string -> key string of the owning document's `_id`. */
  readonly entries = new Map<string, string>();

  constructor(readonly spec: Doc) {
    this.name = String(spec.name);
    this.keyPattern = spec.key as Doc;
    this.unique = spec.unique === true || this.name === "_id_";
    this.sparse = spec.sparse === true;
    const partial = spec.partialFilterExpression;
    this.#partial = partial && typeof partial === "object" ? new Query(partial as Doc) : undefined;
  }

  /** The indexed values of `doc` (missing fields are null, as in MongoDB), or undefined if not indexed. */
  keyValue(doc: Doc): Doc | undefined {
    const out: Doc = {};
    let present = false;
    for (const field of Object.keys(this.keyPattern)) {
      const v = resolve(doc, field);
      if (v !== undefined) present = true;
      out[field] = v ?? null;
    }
    if (this.sparse && !present) return undefined;
    if (this.#partial && !this.#partial.test(doc)) return undefined;
    return out;
  }
}

export class Collection {
  /** `_id` key string -> document; a Map keeps insertion (natural) order and keeps a slot when replaced. */
  readonly docs = new Map<string, Doc>();
  readonly indexes: Index[] = [new Index({ v: 2, key: { _id: 1 }, name: "_id_" })];
  readonly uuid = new UUID();

  constructor(
    readonly db: string,
    readonly name: string,
  ) {}

  get ns(): string {
    return `${this.db}.${this.name}`;
  }

  all(): Doc[] {
    return Array.from(this.docs.values());
  }

  // ── lookups through an index's first field, as MongoDB's would (GridFS's `files_id`) ──
  // Without them every query scanned the whole collection: a read of one video's chunks
  // slowed as other files' chunks piled up, and benchmarks measured that as the caller's.
  /** For each indexed first field: key string of a value → `_id` key strings, in insertion order. */
  readonly #byField = new Map<string, Map<string, Set<string>>>();
  /** Fields some document holds an array in (a multikey index): equality there is not a lookup. */
  readonly #multikey = new Set<string>();
  /** Insertion order of each document, so narrowed results keep the natural order. */
  readonly #order = new Map<string, number>();
  #inserted = 0;

  #lookup(doc: Doc, id: string, add: boolean): void {
    for (const [field, values] of this.#byField) {
      const value = resolve(doc, field);
      if (Array.isArray(value)) {
        if (add) this.#multikey.add(field);
        continue;
      }
      const key = keyString(value);
      const ids = values.get(key);
      if (add) {
        if (ids) ids.add(id);
        else values.set(key, new Set([id]));
      } else {
        ids?.delete(id);
        if (ids?.size === 0) values.delete(key);
      }
    }
  }

  /** Starts lookups through `field` (an index's first field), filled from the documents there now. */
  #addLookup(field: string): void {
    if (field === "_id" || this.#byField.has(field)) return;
    const values = new Map<string, Set<string>>();
    this.#byField.set(field, values);
    for (const [id, doc] of this.docs) {
      const value = resolve(doc, field);
      if (Array.isArray(value)) this.#multikey.add(field);
      else {
        const key = keyString(value);
        if (!values.has(key)) values.set(key, new Set());
        values.get(key)!.add(id);
      }
    }
  }

  /**
   * The documents `filter` can match: those an equality on `_id` or on an index's first
   * field names (at the top level, a plain value), in natural order; else all of them.
   */
  candidates(filter: unknown): Doc[] {
    if (!filter || typeof filter !== "object" || Array.isArray(filter)) return this.all();
    const plain = (value: unknown) =>
      value !== undefined &&
      value !== null &&
      !Array.isArray(value) &&
      !(value instanceof RegExp) &&
      !(typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype);
    const equal = filter as Doc;
    if (plain(equal._id)) {
      const doc = this.docs.get(keyString(equal._id));
      return doc ? [doc] : [];
    }
    for (const [field, values] of this.#byField) {
      if (this.#multikey.has(field) || !plain(equal[field])) continue;
      const ids = [...(values.get(keyString(equal[field])) ?? [])];
      ids.sort((a, b) => this.#order.get(a)! - this.#order.get(b)!);
      const docs = ids.map((id) => this.docs.get(id)!);
      return this.#withinRange(docs, field, equal);
    }
    return this.all();
  }

  /**
   * `docs` cut to a numeric range the filter puts on an index's second field after `field`
   * (GridFS's `{files_id, n: {$gte, $lt}}`), as the index would serve it; the query still
   * checks every condition afterwards.
   */
  #withinRange(docs: Doc[], field: string, filter: Doc): Doc[] {
    for (const index of this.indexes) {
      const [first, second] = Object.keys(index.keyPattern);
      const range = second && first === field ? filter[second] : undefined;
      if (!range || typeof range !== "object" || Object.getPrototypeOf(range) !== Object.prototype) continue;
      const bounds = Object.entries(range as Doc);
      const numeric = bounds.every(
        ([op, value]) => ["$gte", "$gt", "$lte", "$lt"].includes(op) && typeof value === "number",
      );
      if (!numeric || !bounds.length) continue;
      // Not a number (an int64, say): left to the query.
      const inRange = (value: unknown) =>
        typeof value !== "number" ||
        bounds.every(([op, bound]) => {
          const limit = bound as number;
          return op === "$gte"
            ? value >= limit
            : op === "$gt"
              ? value > limit
              : op === "$lte"
                ? value <= limit
                : value < limit;
        });
      return docs.filter((doc) => inRange(resolve(doc, second as string)));
    }
    return docs;
  }

  /** Throws E11000 if `doc` collides in a unique index with a document other than `self` (an `_id` key string). */
  #checkUnique(doc: Doc, self?: string): void {
    for (const index of this.indexes) {
      if (!index.unique) continue;
      const keyValue = index.keyValue(doc);
      if (!keyValue) continue;
      const owner = index.entries.get(keyString(Object.values(keyValue)));
      if (owner !== undefined && owner !== self) {
        throw new CommandError(
          11000,
          `E11000 duplicate key error collection: ${this.ns} index: ${index.name} dup key: ${showKey(keyValue)}`,
          { keyPattern: index.keyPattern, keyValue },
        );
      }
    }
  }

  #index(doc: Doc, id: string, add: boolean): void {
    for (const index of this.indexes) {
      if (!index.unique) continue;
      const keyValue = index.keyValue(doc);
      if (!keyValue) continue;
      const key = keyString(Object.values(keyValue));
      if (add) index.entries.set(key, id);
      else if (index.entries.get(key) === id) index.entries.delete(key);
    }
  }

  insert(doc: Doc): void {
    this.#checkUnique(doc);
    const id = keyString(doc._id);
    this.docs.set(id, doc);
    this.#order.set(id, this.#inserted++);
    this.#index(doc, id, true);
    this.#lookup(doc, id, true);
  }

  /** Stores `next` in place of `prev` (same `_id`), checking unique indexes first. */
  replace(prev: Doc, next: Doc): void {
    const id = keyString(prev._id);
    if (keyString(next._id) !== id) {
      throw new CommandError(66, "Performing an update on the path '_id' would modify the immutable field '_id'");
    }
    this.#checkUnique(next, id);
    this.#index(prev, id, false);
    this.#lookup(prev, id, false);
    this.docs.set(id, next);
    this.#index(next, id, true);
    this.#lookup(next, id, true);
  }

  remove(doc: Doc): void {
    const id = keyString(doc._id);
    this.#index(doc, id, false);
    this.#lookup(doc, id, false);
    this.docs.delete(id);
    this.#order.delete(id);
  }

  /** Adds an index; returns false if an identical one exists. Conflicts and duplicate data throw like MongoDB. */
  createIndex(spec: Doc): boolean {
    const key = spec.key;
    if (!key || typeof key !== "object" || !Object.keys(key).length)
      throw new CommandError(67, "Index key pattern must be a non-empty object");
    const name =
      typeof spec.name === "string"
        ? spec.name
        : Object.entries(key as Doc)
            .map(([k, v]) => `${k}_${v}`)
            .join("_");
    const sameName = this.indexes.find((i) => i.name === name);
    const sameKey = this.indexes.find((i) => keyString(i.keyPattern) === keyString(key));
    const index = new Index({ v: 2, ...spec, key, name });
    if (sameName) {
      if (keyString(sameName.keyPattern) !== keyString(key)) {
        throw new CommandError(
          86,
          `An existing index has the same name as the requested index. Requested index: ${name}, existing index: ${sameName.name}`,
        );
      }
      if (sameName.unique !== index.unique || sameName.sparse !== index.sparse) {
        throw new CommandError(
          85,
          `An equivalent index already exists with the same name but different options. Requested index: ${name}`,
        );
      }
      return false;
    }
    if (
      sameKey &&
      sameKey.unique === index.unique &&
      sameKey.sparse === index.sparse &&
      !spec.partialFilterExpression
    ) {
      throw new CommandError(85, `Index already exists with a different name: ${sameKey.name}`);
    }
    if (index.unique) {
      for (const doc of this.docs.values()) {
        const keyValue = index.keyValue(doc);
        if (!keyValue) continue;
        const k = keyString(Object.values(keyValue));
        if (index.entries.has(k)) {
          throw new CommandError(
            11000,
            `Index build failed: E11000 duplicate key error collection: ${this.ns} index: ${name} dup key: ${showKey(keyValue)}`,
            {
              keyPattern: index.keyPattern,
              keyValue,
            },
          );
        }
        index.entries.set(k, keyString(doc._id));
      }
    }
    this.indexes.push(index);
    this.#addLookup(Object.keys(key as Doc)[0]!);
    return true;
  }
}
