// API keys at the gateway: whose a key is, asked of auth (`POST /keys/introspect`, with
// GATEWAY_SECRET) and remembered for at most KEY_CACHE_MS, the "no" answers too (a
// flood of made-up keys costs auth one question per key and half-minute). A key deleted
// at auth is thus refused by every gateway replica within KEY_CACHE_MS of the deletion,
// well within the minute the API promises; nothing has to tell the replicas. Questions
// for the same key at the same moment share one call. Auth not answering is a 503 (and
// not remembered): access tokens, checked locally, keep working meanwhile.
import { hashApiKey, isApiKey } from "../lib/api-keys.ts";
import { GATEWAY_SECRET_HEADER } from "../lib/client-address.ts";
import type { Logger } from "../lib/log.ts";
import { Unauthorized, Unavailable } from "../lib/problem.ts";
import type { ApiKeyChecker, Caller } from "./bearer.ts";

/** How long an answer about a key is kept (the contract: at most 30 s, so a deleted key dies within a minute). */
export const KEY_CACHE_MS = 30_000;
/** Answers kept at most (oldest go first): a flood of made-up keys cannot grow the cache past this. */
const MAX_REMEMBERED = 10_000;
const AUTH_TIMEOUT_MS = 5000;
const USER_ID = /^[1-9][0-9]{0,19}$/;

export interface ApiKeyCheckerOptions {
  authUrl: string;
  /** GATEWAY_SECRET: auth answers the lookup only beside it (or, unset, from its own machine). */
  gatewaySecret?: string;
  log: Logger;
  cacheMs?: number;
}

interface Remembered {
  caller: Caller | null;
  until: number;
}

export function apiKeyChecker({ authUrl, gatewaySecret, log, cacheMs = KEY_CACHE_MS }: ApiKeyCheckerOptions) {
  const remembered = new Map<string, Remembered>(); // by the key's hash: no key is held as a map key
  const asking = new Map<string, Promise<Caller | null>>();
  const lookupUrl = new URL("/keys/introspect", authUrl);

  /** auth's answer: the owner, or null for a key it does not know (any more). */
  async function ask(key: string): Promise<Caller | null> {
    let answer: Response;
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (gatewaySecret) headers[GATEWAY_SECRET_HEADER] = gatewaySecret;
      answer = await fetch(lookupUrl, {
        method: "POST",
        headers,
        body: JSON.stringify({ key }),
        signal: AbortSignal.timeout(AUTH_TIMEOUT_MS),
      });
    } catch (error) {
      log.warn({ event: "auth.unreachable", err: error, path: lookupUrl.pathname }, "auth did not answer");
      throw keysUnavailable();
    }
    if (answer.status === 401) {
      await answer.arrayBuffer();
      return null;
    }
    const owner = answer.ok ? ((await answer.json().catch(() => null)) as Record<string, unknown> | null) : null;
    if (!owner || typeof owner.userId !== "string" || !USER_ID.test(owner.userId) || typeof owner.email !== "string") {
      log.error({ event: "api_key.lookup_failed", status: answer.status }, "auth answered the key lookup strangely");
      throw keysUnavailable();
    }
    return {
      id: owner.userId,
      email: owner.email,
      emailVerified: owner.emailVerified === true,
      keyId: Number(owner.keyId),
    };
  }

  function remember(id: string, caller: Caller | null): void {
    remembered.delete(id); // re-inserted last: the oldest answers are the first in the map
    remembered.set(id, { caller, until: Date.now() + cacheMs });
    for (const oldest of remembered.keys()) {
      if (remembered.size <= MAX_REMEMBERED) break;
      remembered.delete(oldest);
    }
  }

  return {
    /** The caller a key speaks for; 401 for a malformed, unknown or deleted key, 503 while auth is away. */
    async owner(key: string): Promise<Caller> {
      if (!isApiKey(key)) throw new Unauthorized("the API key is not valid (keys are m3d_ and 43 characters)");
      const id = hashApiKey(key);
      const held = remembered.get(id);
      let caller: Caller | null;
      if (held && held.until > Date.now()) caller = held.caller;
      else {
        let pending = asking.get(id);
        if (!pending) {
          pending = ask(key)
            .then((found) => {
              remember(id, found);
              return found;
            })
            .finally(() => asking.delete(id));
          asking.set(id, pending);
        }
        caller = await pending;
      }
      if (!caller) throw new Unauthorized("the API key is not valid: it is unknown or was deleted");
      return caller;
    },
  } satisfies ApiKeyChecker;
}

const keysUnavailable = () =>
  new Unavailable("API keys cannot be checked right now (the login service is not answering); try again shortly");
