// Write commands: insert, update, delete, findAndModify.
// Per-statement failures go into `writeErrors` with `ok: 1`; ordered batches stop at the first.
import { BSON } from "mongodb";
import { type Collection, CommandError } from "./collection.ts";
import {
  applyUpdate,
  findDocs,
  isOperatorUpdate,
  isPlainDoc,
  matcher,
  project,
  upsertSeed,
  withIdFirst,
} from "./query.ts";
import type { Store } from "./store.ts";
import type { Doc } from "./wire.ts";

export interface Context {
  store: Store;
  db: string;
}

export function collectionName(cmd: Doc, name: string): string {
  const v = cmd[name];
  if (typeof v !== "string" || !v) throw new CommandError(73, `collection name has invalid type ${typeof v}`);
  return v;
}

function statements(cmd: Doc, field: string): Doc[] {
  const v = cmd[field];
  if (!Array.isArray(v) || !v.every(isPlainDoc))
    throw new CommandError(14, `BSON field '${field}' is the wrong type, expected array of objects`);
  return v;
}

function writeError(index: number, e: unknown): Doc {
  if (e instanceof CommandError) return { index, code: e.code, ...e.extra, errmsg: e.message };
  return { index, code: 1, errmsg: e instanceof Error ? e.message : String(e) };
}

/** Runs each statement, collecting write errors the way the server reports them. */
function eachStatement(cmd: Doc, items: Doc[], run: (item: Doc, index: number) => void): Doc[] {
  const ordered = cmd.ordered !== false;
  const writeErrors: Doc[] = [];
  for (let i = 0; i < items.length; i++) {
    try {
      run(items[i]!, i);
    } catch (e) {
      writeErrors.push(writeError(i, e));
      if (ordered) break;
    }
  }
  return writeErrors;
}

function withErrors(reply: Doc, writeErrors: Doc[]): Doc {
  return writeErrors.length ? { ...reply, writeErrors, ok: 1 } : { ...reply, ok: 1 };
}

export function insert(cmd: Doc, ctx: Context): Doc {
  const coll = ctx.store.collection(ctx.db, collectionName(cmd, "insert"), true);
  let n = 0;
  const errors = eachStatement(cmd, statements(cmd, "documents"), (doc) => {
    coll.insert(withIdFirst(doc));
    n++;
  });
  return withErrors({ n }, errors);
}

interface UpdateResult {
  matched: number;
  modified: number;
  upserted?: Doc;
  before?: Doc;
  after?: Doc;
}

interface UpdateSpec {
  q: unknown;
  u: unknown;
  upsert?: boolean;
  multi?: boolean;
  sort?: unknown;
  arrayFilters?: unknown;
}

/** The update shared by `update` and `findAndModify`: match, rewrite, check indexes, store. */
function runUpdate(coll: Collection, spec: UpdateSpec): UpdateResult {
  if (spec.multi && !Array.isArray(spec.u) && !isOperatorUpdate(spec.u)) {
    throw new CommandError(9, "multi update is not supported for replacement-style update");
  }
  const test = matcher(spec.q);
  const targets = spec.sort
    ? findDocs(coll.candidates(spec.q), { filter: spec.q, sort: spec.sort, limit: 1 })
    : spec.multi
      ? coll.candidates(spec.q).filter(test)
      : firstMatch(coll, test, spec.q);
  if (!targets.length) {
    if (!spec.upsert) return { matched: 0, modified: 0 };
    const doc = applyUpdate(upsertSeed(spec.q), spec.q, spec.u, spec.arrayFilters, true);
    coll.insert(doc);
    return { matched: 0, modified: 0, upserted: doc, after: doc };
  }
  let modified = 0;
  let before: Doc | undefined;
  let after: Doc | undefined;
  for (const doc of targets) {
    const next = applyUpdate(doc, spec.q, spec.u, spec.arrayFilters, false);
    before ??= doc;
    after ??= next;
    if (Buffer.compare(serialize(doc), serialize(next)) === 0) continue; // a no-op, as the server counts it
    coll.replace(doc, next);
    modified++;
  }
  return { matched: targets.length, modified, before, after };
}

const serialize = (doc: Doc): Uint8Array => BSON.serialize(doc);

function firstMatch(coll: Collection, test: (doc: Doc) => boolean, filter?: unknown): Doc[] {
  for (const doc of filter === undefined ? coll.docs.values() : coll.candidates(filter)) if (test(doc)) return [doc];
  return [];
}

export function update(cmd: Doc, ctx: Context): Doc {
  const name = collectionName(cmd, "update");
  let n = 0;
  let nModified = 0;
  const upserted: Doc[] = [];
  const errors = eachStatement(cmd, statements(cmd, "updates"), (s, index) => {
    // Only an upsert creates a missing collection.
    const coll = ctx.store.collection(ctx.db, name, s.upsert === true);
    if (!coll) {
      matcher(s.q); // still reject a malformed filter
      return;
    }
    const r = runUpdate(coll, {
      q: s.q,
      u: s.u,
      upsert: s.upsert === true,
      multi: s.multi === true,
      sort: s.sort,
      arrayFilters: s.arrayFilters,
    });
    n += r.matched;
    nModified += r.modified;
    if (r.upserted) {
      n++;
      upserted.push({ index, _id: r.upserted._id });
    }
  });
  return withErrors(upserted.length ? { n, nModified, upserted } : { n, nModified }, errors);
}

export function del(cmd: Doc, ctx: Context): Doc {
  const coll = ctx.store.collection(ctx.db, collectionName(cmd, "delete"));
  let n = 0;
  const errors = eachStatement(cmd, statements(cmd, "deletes"), (s) => {
    if (s.limit !== 0 && s.limit !== 1) throw new CommandError(9, "The limit field in delete objects must be 0 or 1");
    const test = matcher(s.q);
    if (!coll) return;
    const victims = s.limit === 1 ? firstMatch(coll, test, s.q) : coll.candidates(s.q).filter(test);
    for (const doc of victims) coll.remove(doc);
    n += victims.length;
  });
  return withErrors({ n }, errors);
}

export function findAndModify(cmd: Doc, ctx: Context): Doc {
  const name = collectionName(cmd, Object.keys(cmd)[0]!);
  const remove = cmd.remove === true;
  if (remove === (cmd.update !== undefined))
    throw new CommandError(9, "Either an update or remove=true must be specified");
  if (remove && cmd.upsert === true) throw new CommandError(9, "Cannot specify both upsert=true and remove=true");
  if (remove) {
    const coll = ctx.store.collection(ctx.db, name);
    const [doc] = coll ? findDocs(coll.all(), { filter: cmd.query, sort: cmd.sort, limit: 1 }) : [];
    if (doc) coll!.remove(doc);
    return { lastErrorObject: { n: doc ? 1 : 0 }, value: doc ? project(doc, cmd.fields) : null, ok: 1 };
  }
  const coll = ctx.store.collection(ctx.db, name, cmd.upsert === true);
  if (!coll) return { lastErrorObject: { n: 0, updatedExisting: false }, value: null, ok: 1 };
  const r = runUpdate(coll, {
    q: cmd.query,
    u: cmd.update,
    upsert: cmd.upsert === true,
    sort: cmd.sort,
    arrayFilters: cmd.arrayFilters,
  });
  const value = cmd.new === true ? r.after : r.upserted ? undefined : r.before;
  const lastErrorObject: Doc = { n: r.upserted ? 1 : r.matched, updatedExisting: r.matched > 0 };
  if (r.upserted) lastErrorObject.upserted = r.upserted._id;
  return { lastErrorObject, value: value ? project(value, cmd.fields) : null, ok: 1 };
}
