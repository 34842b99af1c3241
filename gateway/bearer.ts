// Bearer-token auth for HTTP services that do not sign tokens themselves: tokens
// are verified locally against the issuer's JWKS (fetched once, fetched again when
// a token names an unknown `kid`, by jose's remote key set), so no request costs a
// call to auth. API keys (`Bearer m3d_…`) are looked up at auth instead, each answer
// kept at most 30 s (gateway/api-keys.ts). Routes opt in with the `auth` macro option
// and receive the caller as `user`:
//   { auth: true }           an access token only (the account routes: a key is 403)
//   { auth: "user-or-key" }  an access token or an API key (job, download, usage and webhook routes)
// Document such a route with `security: USER_OR_KEY` (below), so the OpenAPI document names both.
import { Elysia } from "elysia";
import * as jose from "jose";
import { ApiKeyNotAccepted, looksLikeApiKey } from "../lib/api-keys.ts";
import { Unauthorized, Unavailable } from "../lib/problem.ts";
import { MAX_TOKEN_SECONDS, TOKEN_AUDIENCE, TOKEN_ISSUER } from "../lib/tokens.ts";

export interface Caller {
  id: string;
  email: string;
  /** The token's `email_verified` claim: auth has seen the owner open the verification link (false when absent). */
  emailVerified: boolean;
  /** The API key the request came with (its id at auth); absent for an access token. */
  keyId?: number;
}

/** Whose an API key is (gateway/api-keys.ts): throws 401 for a key that is not (any more), 503 if it cannot tell. */
export interface ApiKeyChecker {
  owner(key: string): Promise<Caller>;
}

/** Which credentials a route takes: an access token only (`true`), or an API key as well. */
export type AuthMode = true | "user-or-key";

/** The OpenAPI `security` of a route that takes an access token or an API key (lib/docs.ts names both schemes). */
export const USER_OR_KEY: Record<string, string[]>[] = [{ bearer: [] }, { apiKey: [] }];

/** auth's keys could not be fetched and none held fits the token: it cannot be checked now, which is not the token's fault. */
export class KeysUnavailable extends Error {
  override name = "KeysUnavailable";
}

const REFRESH_RETRY_MS = 30_000;
/** Clocks of auth and the gateway may differ this much (seconds), in `iat` and `exp`. */
const CLOCK_TOLERANCE_S = 30;
/** auth's user ids: bigint auto-increment, as decimal text. Anything else never reaches MongoDB. */
const USER_ID = /^[1-9][0-9]{0,19}$/;

/**
 * Keys are held without expiry and refreshed in the background every `refreshMs`
 * (10 min), keeping the ones held when a refresh fails. jose's own cache expiry would
 * instead make every token fail once the cache is 10 minutes old and auth is away:
 * with auth down, valid tokens must keep working. A token naming an unknown `kid`
 * still fetches at once (key rotation).
 */
export function jwksVerifier(jwksUrl: string, { refreshMs = 10 * 60_000 }: { refreshMs?: number } = {}) {
  const remote = jose.createRemoteJWKSet(new URL(jwksUrl), {
    timeoutDuration: 5000,
    cooldownDuration: 30_000,
    cacheMaxAge: Infinity,
  });
  let loadedAt = 0; // last successful fetch
  let triedAt = 0; // last background refresh attempt
  const reload = async () => {
    await remote.reload();
    loadedAt = Date.now();
  };
  const keys: jose.JWTVerifyGetKey = async (header, token) => {
    const now = Date.now();
    if (loadedAt && now - loadedAt > refreshMs && now - triedAt > Math.min(refreshMs, REFRESH_RETRY_MS)) {
      triedAt = now;
      void reload().catch(() => {}); // stale keys serve meanwhile, and after a failure
    }
    try {
      const key = await remote(header, token);
      loadedAt ||= Date.now(); // the first use fetched them
      return key;
    } catch (error) {
      if (error instanceof jose.errors.JWKSNoMatchingKey || error instanceof jose.errors.JWKSMultipleMatchingKeys)
        throw error;
      throw new KeysUnavailable(`auth's keys could not be fetched: ${(error as Error).message}`, { cause: error });
    }
  };
  return {
    /**
     * The caller a token speaks for; throws for a bad, expired, tampered, `alg: none` or
     * foreign token, one not issued by auth for the gateway, one issued in the future or
     * longer ago than any token lives, and one whose `sub` or `email` is not what auth writes.
     */
    async verify(token: string): Promise<Caller> {
      const { payload } = await jose.jwtVerify(token, keys, {
        algorithms: ["EdDSA", "ES256"],
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        requiredClaims: ["sub", "exp", "iat"],
        maxTokenAge: MAX_TOKEN_SECONDS, // also refuses an `iat` in the future
        clockTolerance: CLOCK_TOLERANCE_S,
      });
      if (typeof payload.sub !== "string" || !USER_ID.test(payload.sub)) throw new Error("token's sub is no user id");
      if (typeof payload.email !== "string" || payload.email.length > 254) throw new Error("token has no email claim");
      return { id: payload.sub, email: payload.email, emailVerified: payload.email_verified === true };
    },
    /** Resolves once keys are held, fetching them if none are yet (at start, and as the readiness check). */
    async ready(): Promise<void> {
      if (!loadedAt) await reload();
    },
  };
}

export type TokenVerifier = Pick<ReturnType<typeof jwksVerifier>, "verify" | "ready"> & {
  /** API keys; without a checker, a key is refused (401) even where keys are accepted. */
  apiKeys?: ApiKeyChecker;
};

/** The verifier, knowing API keys too. */
export const withApiKeys = (verifier: TokenVerifier, apiKeys: ApiKeyChecker): TokenVerifier => ({
  verify: (token) => verifier.verify(token),
  ready: () => verifier.ready(),
  apiKeys: verifier.apiKeys ?? apiKeys,
});

export function bearerToken(authorization: string | undefined): string | undefined {
  return authorization?.match(/^Bearer\s+([A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]*)\s*$/i)?.[1];
}

/**
 * The caller an Authorization header speaks for: 401 without a valid token, 503 while
 * auth's keys cannot be fetched. An API key is looked up where `mode` accepts keys, and
 * is 403 elsewhere (a key cannot manage the account).
 */
export async function authenticate(
  verifier: TokenVerifier,
  authorization: string | undefined,
  mode: AuthMode = true,
): Promise<Caller> {
  const credential = authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (credential && looksLikeApiKey(credential)) {
    if (mode !== "user-or-key") throw new ApiKeyNotAccepted();
    if (!verifier.apiKeys) throw new Unauthorized("API keys are not accepted here");
    return verifier.apiKeys.owner(credential);
  }
  const token = bearerToken(authorization);
  if (!token) throw new Unauthorized();
  try {
    return await verifier.verify(token);
  } catch (error) {
    if (error instanceof KeysUnavailable)
      throw new Unavailable(
        "tokens cannot be checked right now (the login service is not answering); try again shortly",
      );
    throw new Unauthorized("the token is invalid or expired; log in again");
  }
}

export const bearer = (verifier: TokenVerifier) =>
  new Elysia({ name: "bearer" }).macro({
    auth: (mode: AuthMode) => ({
      async resolve({ headers }) {
        return { user: await authenticate(verifier, headers.authorization, mode) };
      },
    }),
  });
