// API keys for programs: made, listed and deleted by their owner with a login's access
// token (never with a key: a leaked key cannot mint more keys or hide itself), and looked up
// for the gateway, which asks `POST /keys/introspect` whose a key is and keeps the answer at
// most 30 s (gateway/api-keys.ts), so a deleted key stops working within a minute everywhere.
// Keys are stored as their SHA-256 (lib/api-keys.ts); an account's keys go when it is
// deleted (auth/deletion.ts).
import { and, count, desc, eq, isNull, lt, or } from "drizzle-orm";
import type { MySql2Database } from "drizzle-orm/mysql2";
import { Elysia } from "elysia";
import { apiKeys, users } from "../db/schema.ts";
import {
  ApiKeyList,
  ApiKeyParams,
  CreatedApiKey,
  KeyIntrospectionBody,
  KeyOwner,
  NewApiKeyBody,
} from "../lib/account-models.ts";
import { hashApiKey, isApiKey, newApiKey, SHOWN_KEY_CHARS } from "../lib/api-keys.ts";
import { limitedJson } from "../lib/json.ts";
import { Conflict, HttpProblem, NotFound, Problem, Unauthorized } from "../lib/problem.ts";
import { bearerCaller } from "./access-tokens.ts";
import { fromGateway } from "./client-address.ts";
import type { AuthParts } from "./parts.ts";

/** Keys one account may hold: enough for every program, few enough to list on one page. */
export const MAX_KEYS_PER_ACCOUNT = 50;
/** `last_used_at` moves at most this often per key: a busy key costs no write per request. */
export const LAST_USED_EVERY_MS = 60_000;

type Created = typeof CreatedApiKey.static;
type Listed = typeof ApiKeyList.static;
type Owner = typeof KeyOwner.static;

export function apiKeyStore(db: MySql2Database) {
  return {
    /**
     * A new key for the account (Conflict past MAX_KEYS_PER_ACCOUNT); the key itself is in this
     * answer only. The user's row is locked meanwhile, so requests at once cannot pass the limit together.
     */
    async create(userId: number, name: string): Promise<Created> {
      const { key, hash } = newApiKey();
      const prefix = key.slice(0, SHOWN_KEY_CHARS);
      return db.transaction(async (tx) => {
        await tx.select({ id: users.id }).from(users).where(eq(users.id, userId)).for("update");
        const [held] = await tx.select({ keys: count() }).from(apiKeys).where(eq(apiKeys.userId, userId));
        if ((held?.keys ?? 0) >= MAX_KEYS_PER_ACCOUNT)
          throw new Conflict(`an account holds at most ${MAX_KEYS_PER_ACCOUNT} API keys; delete one first`);
        const createdAt = new Date();
        const [row] = await tx
          .insert(apiKeys)
          .values({ userId, name, keyHash: hash, prefix, createdAt })
          .$returningId();
        return { id: row!.id, name, key, createdAt: createdAt.toISOString() };
      });
    },

    /** The account's keys, newest first, without the keys themselves. */
    async list(userId: number): Promise<Listed> {
      const rows = await db.select().from(apiKeys).where(eq(apiKeys.userId, userId)).orderBy(desc(apiKeys.id));
      return {
        items: rows.map((row) => ({
          id: row.id,
          name: row.name,
          prefix: row.prefix,
          createdAt: row.createdAt.toISOString(),
          lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
        })),
      };
    },

    /** Deletes the account's key `id`; answers whether it had one. */
    async remove(userId: number, id: number): Promise<boolean> {
      const [result] = await db.delete(apiKeys).where(and(eq(apiKeys.id, id), eq(apiKeys.userId, userId)));
      return result.affectedRows > 0;
    },

    /** Whose the key is (an account not being deleted), or undefined; marks it used (at most once a minute). */
    async owner(key: string, now = new Date()): Promise<Owner | undefined> {
      if (!isApiKey(key)) return undefined;
      const [row] = await db
        .select({ keyId: apiKeys.id, userId: users.id, email: users.email, verifiedAt: users.emailVerifiedAt })
        .from(apiKeys)
        .innerJoin(users, eq(users.id, apiKeys.userId))
        .where(and(eq(apiKeys.keyHash, hashApiKey(key)), isNull(users.deletingAt)))
        .limit(1);
      if (!row) return undefined;
      const before = new Date(now.getTime() - LAST_USED_EVERY_MS);
      await db
        .update(apiKeys)
        .set({ lastUsedAt: now })
        .where(and(eq(apiKeys.id, row.keyId), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, before))));
      return { userId: String(row.userId), email: row.email, emailVerified: row.verifiedAt !== null, keyId: row.keyId };
    },
  };
}
export type ApiKeyStore = ReturnType<typeof apiKeyStore>;

/** 403: the internal lookup asked by someone other than the gateway (no GATEWAY_SECRET, or a wrong one). */
class NotFromGateway extends HttpProblem {
  constructor() {
    super(403, "Forbidden", "only the gateway may look keys up");
  }
}

export interface ApiKeyRouteOptions {
  /** GATEWAY_SECRET: the internal lookup believes only a request that shows it (or, unset, this machine). */
  gatewaySecret: string | undefined;
}

export const apiKeyRoutes = (parts: AuthParts, { gatewaySecret }: ApiKeyRouteOptions) => {
  const { log, apiKeys: keys } = parts;
  return new Elysia({ name: "auth.api-keys" })
    .use(bearerCaller(parts.tokens, parts.accounts))
    .post(
      "/keys",
      async ({ body, caller, status }) => {
        const created = await keys.create(caller.id, body.name.trim());
        log.info({ event: "api_key.created", userId: String(caller.id), keyId: created.id }, "API key made");
        return status(201, created);
      },
      {
        caller: true,
        parse: limitedJson(),
        body: NewApiKeyBody,
        response: { 201: CreatedApiKey, 401: Problem, 403: Problem, 409: Problem, 422: Problem },
        detail: { tags: ["auth"], summary: "Make an API key (bearer access token; the key is shown once)" },
      },
    )
    .get("/keys", ({ caller }) => keys.list(caller.id), {
      caller: true,
      response: { 200: ApiKeyList, 401: Problem, 403: Problem },
      detail: { tags: ["auth"], summary: "Your API keys, newest first, without the keys themselves" },
    })
    .delete(
      "/keys/:id",
      async ({ params, caller, status }) => {
        if (!(await keys.remove(caller.id, params.id))) throw new NotFound("no such API key");
        log.info({ event: "api_key.deleted", userId: String(caller.id), keyId: params.id }, "API key deleted");
        return status(204, undefined);
      },
      {
        caller: true,
        params: ApiKeyParams,
        detail: { tags: ["auth"], summary: "Delete an API key: it stops working within a minute" },
      },
    )
    .post(
      "/keys/introspect",
      async ({ body, request, server }) => {
        if (!fromGateway(request.headers, server?.requestIP(request)?.address, gatewaySecret)) {
          log.warn({ event: "api_key.lookup_refused" }, "a key lookup came without the gateway's secret");
          throw new NotFromGateway();
        }
        const owner = await keys.owner(body.key);
        if (!owner) throw new Unauthorized("the API key is not valid (unknown or deleted)");
        return owner;
      },
      {
        parse: limitedJson(),
        body: KeyIntrospectionBody,
        response: { 200: KeyOwner, 401: Problem, 403: Problem, 422: Problem },
        detail: {
          tags: ["internal"],
          summary: "Whose an API key is (the gateway asks; GATEWAY_SECRET required)",
        },
      },
    );
};
