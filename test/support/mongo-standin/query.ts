// The query language itself comes from mingo: matching, sorting, projection,
// update operators and aggregation. This file adapts it to stored documents
// (which must never be mutated) and to MongoDB's error codes.

import { Aggregator, ProcessingMode, Query } from "mingo";
import type { Options } from "mingo/types";
import { updateOne } from "mingo/updater";
import { cloneDeep, isEqual, MingoError, resolve, setValue } from "mingo/util";
import { ObjectId } from "mongodb";
import { CommandError } from "./collection.ts";
import type { Doc } from "./wire.ts";

// mingo compares ObjectId, Binary and other BSON classes through their
// toString() (hex for ObjectId, so equality and sort order are MongoDB's) and
// Dates by time. It cannot compare bigint (our int64) with number, nor order
// bigints (it compares their strings), so matching and sorting see int64 as a
// number: "shadow" documents, made once per stored document, only when needed.
const baseOptions: Partial<Options> = { idKey: "_id", useStrictMode: true, scriptEnabled: false };

/** Turns mingo's parse errors (unknown operator, bad argument) into BadValue like the server's. */
export function wrap<T>(work: () => T): T {
  try {
    return work();
  } catch (e) {
    if (e instanceof CommandError) throw e;
    if (e instanceof MingoError || e instanceof Error) throw new CommandError(2, e.message);
    throw e;
  }
}

export function isPlainDoc(v: unknown): v is Doc {
  return typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

/** `v` with every bigint turned into a number; the same reference when there was none. */
function numeric<T>(v: T): T {
  if (typeof v === "bigint") return Number(v) as T;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    v.forEach((x: unknown, i) => {
      const y = numeric(x);
      if (y === x) return;
      out ??= v.slice();
      out[i] = y;
    });
    return (out ?? v) as T;
  }
  if (isPlainDoc(v)) {
    let out: Doc | undefined;
    for (const [k, x] of Object.entries(v)) {
      const y = numeric(x);
      if (y === x) continue;
      out ??= { ...v };
      out[k] = y;
    }
    return (out ?? v) as T;
  }
  return v;
}

// Stored documents never change, so a shadow stays valid for the document's life.
const shadows = new WeakMap<Doc, Doc>();
function shadow(doc: Doc): Doc {
  let s = shadows.get(doc);
  if (!s) {
    s = numeric(doc);
    shadows.set(doc, s);
  }
  return s;
}

function asDoc(v: unknown, what: string): Doc {
  if (v === undefined || v === null) return {};
  if (!isPlainDoc(v)) throw new CommandError(14, `"${what}" had the wrong type. Expected object`);
  return v;
}

export function matcher(filter: unknown): (doc: Doc) => boolean {
  const query = wrap(() => new Query(numeric(asDoc(filter, "filter")), baseOptions));
  return (doc) => wrap(() => query.test(shadow(doc)));
}

/** Sort spec without `$natural` (natural order is what we have anyway) and `$meta`. */
function sortSpec(sort: unknown): { spec: Record<string, 1 | -1> | undefined; reverse: boolean } {
  const spec: Record<string, 1 | -1> = {};
  let reverse = false;
  for (const [k, v] of Object.entries(asDoc(sort, "sort"))) {
    if (k === "$natural") reverse = Number(v) < 0;
    else if (typeof v === "number" || typeof v === "bigint") spec[k] = Number(v) < 0 ? -1 : 1;
    else if (v !== null && typeof v === "object")
      continue; // {$meta: ...}
    else throw new CommandError(2, `Illegal key in $sort specification: ${k}: ${String(v)}`);
  }
  return { spec: Object.keys(spec).length ? spec : undefined, reverse };
}

export interface FindOptions {
  filter?: unknown;
  sort?: unknown;
  projection?: unknown;
  skip?: number;
  limit?: number;
}

/** filter → sort → skip → limit → projection, as the server orders them. */
export function findDocs(docs: Doc[], opts: FindOptions): Doc[] {
  return wrap(() => {
    const { spec, reverse } = sortSpec(opts.sort);
    const query = new Query(numeric(asDoc(opts.filter, "filter")), baseOptions);
    // mingo works on shadows (a fresh array: it sorts the array it is given);
    // the stored documents are what we return.
    const original = new Map<Doc, Doc>();
    const source = docs.map((doc) => {
      const s = shadow(doc);
      if (s !== doc) original.set(s, doc);
      return s;
    });
    if (reverse) source.reverse();
    const cursor = query.find<Doc>(source);
    if (spec) cursor.sort(spec);
    if (opts.skip) cursor.skip(opts.skip);
    if (opts.limit) cursor.limit(opts.limit);
    const found = cursor.all().map((s) => original.get(s) ?? s);
    const projection = asDoc(opts.projection, "projection");
    return Object.keys(projection).length ? new Query({}, baseOptions).find<Doc>(found, projection).all() : found;
  });
}

export function project(doc: Doc, projection: unknown): Doc {
  const p = asDoc(projection, "fields");
  if (!Object.keys(p).length) return doc;
  return wrap(() => new Query({}, baseOptions).find<Doc>([doc], p).all()[0] ?? {});
}

export function aggregate(docs: Doc[], pipeline: unknown, resolveCollection: (name: string) => Doc[]): Doc[] {
  if (!Array.isArray(pipeline)) throw new CommandError(14, "'pipeline' option must be specified as an array");
  return wrap(() =>
    new Aggregator(numeric(pipeline as Doc[]), {
      ...baseOptions,
      // Stages like $addFields would otherwise write into stored documents.
      processingMode: ProcessingMode.CLONE_INPUT,
      collectionResolver: (name) => resolveCollection(name).map(shadow),
    }).run<Doc>(docs.map(shadow)),
  );
}

// What mingo's updater implements, plus $setOnInsert (handled here).
const UPDATE_OPERATORS = new Set([
  "$addToSet",
  "$bit",
  "$currentDate",
  "$inc",
  "$max",
  "$min",
  "$mul",
  "$pop",
  "$pull",
  "$pullAll",
  "$push",
  "$rename",
  "$set",
  "$setOnInsert",
  "$unset",
]);

/** True for `{$set: ...}`-style updates, false for replacements; unknown operators fail like the server. */
export function isOperatorUpdate(u: unknown): u is Doc {
  if (!isPlainDoc(u)) return false;
  const keys = Object.keys(u);
  const ops = keys.filter((k) => k.startsWith("$"));
  const unknown = ops.length ? keys.find((k) => !UPDATE_OPERATORS.has(k)) : undefined;
  if (unknown)
    throw new CommandError(
      9,
      `Unknown modifier: ${unknown}. Expected a valid update modifier or pipeline-style update specified as an array`,
    );
  return ops.length > 0;
}

/**
 * The document `update` makes of `doc` (a new object; `doc` is untouched).
 * `inserting` is true for an upsert's new document, where `$setOnInsert` applies.
 */
export function applyUpdate(doc: Doc, filter: unknown, u: unknown, arrayFilters: unknown, inserting: boolean): Doc {
  if (Array.isArray(u) || isOperatorUpdate(u)) {
    const copy = cloneDeep(doc) as Doc;
    let modifier: Doc | Doc[] = u as Doc | Doc[];
    if (!Array.isArray(modifier)) {
      // mingo has no $setOnInsert: it is a $set that only applies when inserting.
      const { $setOnInsert, ...rest } = modifier;
      modifier = rest;
      if (inserting && isPlainDoc($setOnInsert))
        modifier = { ...rest, $set: { ...asDoc(rest.$set, "$set"), ...$setOnInsert } };
      if (!Object.keys(modifier).length) return copy;
    }
    if (!Array.isArray(modifier)) modifier = { ...modifier }; // numericOperands rewrites operands in place
    const longPaths = Array.isArray(modifier) ? [] : numericOperands(copy, modifier);
    const docs = [copy];
    // The filter only matters to mingo for the positional `$` operator; it
    // re-tests the document with it, which bigint fields would confuse.
    const positional =
      !Array.isArray(modifier) &&
      Object.values(modifier).some((e) => isPlainDoc(e) && Object.keys(e).some((k) => /\.\$(\.|$)/.test(k)));
    wrap(() =>
      updateOne(docs, positional && !inserting ? asDoc(filter, "q") : {}, modifier as Doc, {
        arrayFilters: Array.isArray(arrayFilters) ? (arrayFilters as Doc[]) : [],
        cloneMode: "copy",
      }),
    );
    const next = docs[0]!; // a pipeline update replaces the array slot
    for (const path of longPaths) {
      const v = resolve(next, path);
      if (Number.isSafeInteger(v)) setValue(next, path, BigInt(v as number));
    }
    if (!isEqual(next._id, doc._id) && doc._id !== undefined) {
      throw new CommandError(66, "Performing an update on the path '_id' would modify the immutable field '_id'");
    }
    return withIdFirst(next, doc._id);
  }
  // Replacement: keeps the _id.
  const replacement = asDoc(u, "u");
  if (replacement._id !== undefined && doc._id !== undefined && !isEqual(replacement._id, doc._id)) {
    throw new CommandError(66, "The _id field cannot be changed");
  }
  return withIdFirst(replacement, doc._id);
}

const ARITHMETIC = ["$inc", "$mul", "$min", "$max"];

/**
 * mingo's arithmetic and $min/$max cannot mix bigint and number. Where either
 * the field or the operand is int64, both become numbers before the update and
 * the paths are returned, so the result can become int64 again (as int64 op
 * int32 stays int64 in MongoDB). Mutates `copy` and `modifier` (both private copies).
 */
function numericOperands(copy: Doc, modifier: Doc): string[] {
  const paths: string[] = [];
  for (const op of ARITHMETIC) {
    const expr = modifier[op];
    if (!isPlainDoc(expr)) continue;
    let args: Doc | undefined;
    for (const [path, arg] of Object.entries(expr)) {
      const current = path.includes("$") ? undefined : resolve(copy, path);
      if (typeof arg !== "bigint" && typeof current !== "bigint") continue;
      if (typeof current === "bigint") setValue(copy, path, Number(current));
      args ??= { ...expr };
      args[path] = numeric(arg);
      paths.push(path);
    }
    if (args) modifier[op] = args;
  }
  return paths;
}

/** `doc` with `_id` as its first field (MongoDB moves it there), generating one if absent. */
export function withIdFirst(doc: Doc, id: unknown = doc._id): Doc {
  const { _id, ...rest } = doc;
  return { _id: _id ?? id ?? new ObjectId(), ...rest };
}

/**
 * The seed of an upsert's new document: the filter's equality conditions
 * (`{a: 1}`, `{a: {$eq: 1}}`, also inside `$and`), dotted paths expanded.
 */
export function upsertSeed(filter: unknown): Doc {
  const seed: Doc = {};
  const collect = (f: Doc): void => {
    for (const [k, v] of Object.entries(f)) {
      if (k === "$and" && Array.isArray(v)) {
        for (const part of v) if (isPlainDoc(part)) collect(part);
      } else if (!k.startsWith("$")) {
        if (isPlainDoc(v) && Object.keys(v).some((o) => o.startsWith("$"))) {
          if ("$eq" in v) seed[k] = v.$eq;
        } else {
          seed[k] = v;
        }
      }
    }
  };
  collect(asDoc(filter, "q"));
  // `_id` is set directly: mingo refuses a $set of `_id`, as MongoDB refuses it in an update,
  // but an upsert's filter on `_id` names the new document's id.
  const { _id, ...fields } = seed;
  const doc: Doc = _id === undefined ? {} : { _id };
  if (Object.keys(fields).length) {
    const docs = [doc];
    wrap(() => updateOne(docs, {}, { $set: fields }, {}));
    return docs[0]!;
  }
  return doc;
}
