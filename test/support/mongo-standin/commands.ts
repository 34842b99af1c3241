// Command dispatch plus the read, catalog and admin commands.
// Each handler takes the request body and returns the reply body; errors are
// thrown as CommandError and turned into `{ok: 0, errmsg, code, codeName}` here.
import { flatten, resolve, unique } from "mingo/util";
import { CommandError } from "./collection.ts";
import { aggregate, findDocs, isPlainDoc, matcher } from "./query.ts";
import type { Batch } from "./store.ts";
import { type Doc, MAX_BSON_OBJECT_SIZE, MAX_MESSAGE_SIZE_BYTES } from "./wire.ts";
import { type Context, collectionName, del, findAndModify, insert, update } from "./writes.ts";

export interface CommandContext extends Context {
  connectionId: number;
}

type Handler = (cmd: Doc, ctx: CommandContext) => Doc;

const VERSION = "7.0.0";

/** A number argument (int32, double or int64 on the wire), or undefined when absent. */
function num(cmd: Doc, field: string): number | undefined {
  const v = cmd[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  throw new CommandError(14, `BSON field '${field}' is the wrong type '${typeof v}', expected a number`);
}

function nonNegative(cmd: Doc, field: string): number | undefined {
  const v = num(cmd, field);
  if (v !== undefined && v < 0) throw new CommandError(2, `${field} must be a non-negative number, got ${v}`);
  return v;
}

function cursorReply(batch: Batch, first: boolean): Doc {
  return { cursor: { id: batch.id, ns: batch.ns, [first ? "firstBatch" : "nextBatch"]: batch.docs }, ok: 1 };
}

function cursorBatchSize(cmd: Doc): number | undefined {
  const c = cmd.cursor;
  return isPlainDoc(c) ? nonNegative(c, "batchSize") : undefined;
}

const hello: Handler = (_cmd, ctx) => ({
  helloOk: true,
  // Both spellings: `ismaster` for the legacy handshake, `isWritablePrimary` for hello.
  ismaster: true,
  isWritablePrimary: true,
  maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
  maxMessageSizeBytes: MAX_MESSAGE_SIZE_BYTES,
  maxWriteBatchSize: 100_000,
  localTime: new Date(),
  // No logicalSessionTimeoutMinutes and no topologyVersion: the driver then uses
  // neither sessions/transactions nor the streaming monitor protocol.
  connectionId: ctx.connectionId,
  minWireVersion: 0,
  maxWireVersion: 21,
  readOnly: false,
  ok: 1,
});

const ok: Handler = () => ({ ok: 1 });

function find(cmd: Doc, ctx: CommandContext): Doc {
  const name = collectionName(cmd, "find");
  const coll = ctx.store.collection(ctx.db, name);
  const limit = nonNegative(cmd, "limit");
  const docs = coll
    ? findDocs(coll.candidates(cmd.filter), {
        filter: cmd.filter,
        sort: cmd.sort,
        projection: cmd.projection,
        skip: nonNegative(cmd, "skip"),
        limit,
      })
    : [];
  const batchSize = nonNegative(cmd, "batchSize");
  // batchSize 0 is an empty first batch with an open cursor, as on the server.
  const first = batchSize ?? (limit ? Math.min(limit, 101) : 101);
  return cursorReply(ctx.store.openCursor(`${ctx.db}.${name}`, docs, first, cmd.singleBatch === true), true);
}

function getMore(cmd: Doc, ctx: CommandContext): Doc {
  const id = cmd.getMore;
  if (typeof id !== "bigint" && typeof id !== "number") throw new CommandError(14, "getMore id must be a long");
  return cursorReply(ctx.store.getMore(BigInt(id), nonNegative(cmd, "batchSize")), false);
}

function killCursors(cmd: Doc, ctx: CommandContext): Doc {
  const killed: bigint[] = [];
  const notFound: bigint[] = [];
  for (const raw of Array.isArray(cmd.cursors) ? cmd.cursors : []) {
    if (typeof raw !== "bigint" && typeof raw !== "number") continue;
    const id = BigInt(raw);
    (ctx.store.killCursor(id) ? killed : notFound).push(id);
  }
  return { cursorsKilled: killed, cursorsNotFound: notFound, cursorsAlive: [], cursorsUnknown: [], ok: 1 };
}

function count(cmd: Doc, ctx: CommandContext): Doc {
  const coll = ctx.store.collection(ctx.db, collectionName(cmd, "count"));
  const limit = Math.abs(num(cmd, "limit") ?? 0);
  const n = coll
    ? findDocs(coll.candidates(cmd.query), { filter: cmd.query, skip: nonNegative(cmd, "skip"), limit }).length
    : 0;
  return { n, ok: 1 };
}

function distinct(cmd: Doc, ctx: CommandContext): Doc {
  const coll = ctx.store.collection(ctx.db, collectionName(cmd, "distinct"));
  const key = cmd.key;
  if (typeof key !== "string") throw new CommandError(14, "BSON field 'distinct.key' is missing or not a string");
  const docs = coll ? findDocs(coll.candidates(cmd.query), { filter: cmd.query }) : [];
  // Arrays are unwound one level, as the server does for distinct.
  const values = flatten(docs.map((d) => resolve(d, key)).filter((v) => v !== undefined));
  return { values: unique(values), ok: 1 };
}

function aggregateCommand(cmd: Doc, ctx: CommandContext): Doc {
  const target = cmd.aggregate;
  if (!isPlainDoc(cmd.cursor))
    throw new CommandError(9, "The 'cursor' option is required, except for aggregate with the explain argument");
  const collections = ctx.store.dbs.get(ctx.db);
  const source = typeof target === "string" ? (collections?.get(target)?.all() ?? []) : [];
  const docs = aggregate(source, cmd.pipeline, (name) => collections?.get(name)?.all() ?? []);
  const ns = typeof target === "string" ? `${ctx.db}.${target}` : `${ctx.db}.$cmd.aggregate`;
  return cursorReply(ctx.store.openCursor(ns, docs, cursorBatchSize(cmd)), true);
}

function listCollections(cmd: Doc, ctx: CommandContext): Doc {
  const test = matcher(cmd.filter);
  const infos = Array.from(ctx.store.dbs.get(ctx.db)?.values() ?? [])
    .map(
      (c): Doc => ({
        name: c.name,
        type: "collection",
        options: {},
        info: { readOnly: false, uuid: c.uuid },
        idIndex: { v: 2, key: { _id: 1 }, name: "_id_" },
      }),
    )
    .filter(test)
    .map((d) => (cmd.nameOnly === true ? { name: d.name, type: d.type } : d));
  return cursorReply(ctx.store.openCursor(`${ctx.db}.$cmd.listCollections`, infos, cursorBatchSize(cmd)), true);
}

function listIndexes(cmd: Doc, ctx: CommandContext): Doc {
  const name = collectionName(cmd, "listIndexes");
  const coll = ctx.store.collection(ctx.db, name);
  if (!coll) throw new CommandError(26, `ns does not exist: ${ctx.db}.${name}`);
  const specs = coll.indexes.map((i) => i.spec);
  return cursorReply(ctx.store.openCursor(`${ctx.db}.$cmd.listIndexes.${name}`, specs, cursorBatchSize(cmd)), true);
}

function createIndexes(cmd: Doc, ctx: CommandContext): Doc {
  const name = collectionName(cmd, "createIndexes");
  const specs = cmd.indexes;
  if (!Array.isArray(specs) || !specs.length || !specs.every(isPlainDoc))
    throw new CommandError(2, "Must specify at least one index to create");
  const existed = ctx.store.collection(ctx.db, name) !== undefined;
  const coll = ctx.store.collection(ctx.db, name, true);
  const numIndexesBefore = coll.indexes.length;
  let created = 0;
  for (const spec of specs) if (coll.createIndex(spec)) created++;
  const reply: Doc = {
    numIndexesBefore,
    numIndexesAfter: coll.indexes.length,
    createdCollectionAutomatically: !existed,
  };
  if (!created) reply.note = "all indexes already exist";
  return { ...reply, ok: 1 };
}

function dropIndexes(cmd: Doc, ctx: CommandContext): Doc {
  const name = collectionName(cmd, "dropIndexes");
  const coll = ctx.store.collection(ctx.db, name);
  if (!coll) throw new CommandError(26, `ns not found ${ctx.db}.${name}`);
  const nIndexesWas = coll.indexes.length;
  const wanted = cmd.index;
  const names = wanted === "*" ? coll.indexes.slice(1).map((i) => i.name) : Array.isArray(wanted) ? wanted : [wanted];
  for (const target of names) {
    const i = coll.indexes.findIndex((x) =>
      typeof target === "string"
        ? x.name === target
        : isPlainDoc(target) && JSON.stringify(x.keyPattern) === JSON.stringify(target),
    );
    if (i < 0) throw new CommandError(27, `index not found with name [${String(target)}]`);
    if (i === 0) throw new CommandError(72, "cannot drop _id index");
    coll.indexes.splice(i, 1);
  }
  return { nIndexesWas, ok: 1 };
}

function create(cmd: Doc, ctx: CommandContext): Doc {
  const name = collectionName(cmd, "create");
  if (ctx.store.collection(ctx.db, name)) throw new CommandError(48, `Collection ${ctx.db}.${name} already exists.`);
  ctx.store.collection(ctx.db, name, true);
  return { ok: 1 };
}

function drop(cmd: Doc, ctx: CommandContext): Doc {
  const name = collectionName(cmd, "drop");
  const coll = ctx.store.collection(ctx.db, name);
  if (!coll) throw new CommandError(26, "ns not found");
  ctx.store.dbs.get(ctx.db)?.delete(name);
  return { nIndexesWas: coll.indexes.length, ns: coll.ns, ok: 1 };
}

function dropDatabase(_cmd: Doc, ctx: CommandContext): Doc {
  ctx.store.dbs.delete(ctx.db);
  return { dropped: ctx.db, ok: 1 };
}

function listDatabases(cmd: Doc, ctx: CommandContext): Doc {
  const databases = Array.from(ctx.store.dbs.keys()).map((name) => ({ name, sizeOnDisk: 0, empty: false }));
  return cmd.nameOnly === true
    ? { databases: databases.map(({ name }) => ({ name })), ok: 1 }
    : { databases, totalSize: 0, ok: 1 };
}

const buildInfo: Handler = () => ({
  version: VERSION,
  versionArray: [7, 0, 0, 0],
  gitVersion: "m3dio-mongo-standin",
  bits: 64,
  maxBsonObjectSize: MAX_BSON_OBJECT_SIZE,
  storageEngines: ["memory"],
  ok: 1,
});

const HANDLERS: Record<string, Handler> = {
  hello,
  ismaster: hello,
  isMaster: hello,
  ping: ok,
  buildInfo,
  buildinfo: buildInfo,
  insert,
  find,
  getMore,
  killCursors,
  update,
  delete: del,
  findAndModify,
  findandmodify: findAndModify,
  count,
  aggregate: aggregateCommand,
  distinct,
  create,
  createIndexes,
  dropIndexes,
  deleteIndexes: dropIndexes,
  listIndexes,
  listCollections,
  listDatabases,
  drop,
  dropDatabase,
  // Harmless answers for what drivers and tools send around the edges.
  endSessions: ok,
  killAllSessions: ok,
  getParameter: () => ({ ok: 1 }),
  serverStatus: () => ({
    host: "127.0.0.1",
    version: VERSION,
    process: "mongod",
    uptime: Math.floor(process.uptime()),
    localTime: new Date(),
    ok: 1,
  }),
  hostInfo: () => ({ system: { hostname: "127.0.0.1" }, os: { type: process.platform }, extra: {}, ok: 1 }),
  whatsmyuri: () => ({ you: "127.0.0.1", ok: 1 }),
  getLastError: () => ({ n: 0, err: null, ok: 1 }),
  connectionStatus: () => ({ authInfo: { authenticatedUsers: [], authenticatedUserRoles: [] }, ok: 1 }),
  getCmdLineOpts: () => ({ argv: ["mongo-standin"], parsed: {}, ok: 1 }),
};

function errorReply(e: unknown): Doc {
  if (e instanceof CommandError) return { ok: 0, errmsg: e.message, code: e.code, codeName: e.codeName, ...e.extra };
  return { ok: 0, errmsg: e instanceof Error ? e.message : String(e), code: 1, codeName: "InternalError" };
}

/** Runs one command; never throws. */
export function runCommand(cmd: Doc, ctx: CommandContext): Doc {
  const name = Object.keys(cmd)[0];
  const handler = name === undefined ? undefined : HANDLERS[name];
  if (!handler) {
    return { ok: 0, errmsg: `no such command: '${name ?? ""}'`, code: 59, codeName: "CommandNotFound" };
  }
  try {
    return handler(cmd, ctx);
  } catch (e) {
    return errorReply(e);
  }
}
