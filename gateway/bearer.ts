// Bearer-token auth for HTTP services that do not sign tokens themselves: tokens
// are verified locally against the issuer's JWKS (fetched once, fetched again when
// a token names an unknown `kid`, by jose's remote key set), so no request costs a
// call to auth. Routes opt in with `{ auth: true }` and receive the caller as `user`.
import { Elysia } from "elysia";
import * as jose from "jose";
import { Unauthorized, Unavailable } from "../lib/problem.ts";
import { MAX_TOKEN_SECONDS, TOKEN_AUDIENCE, TOKEN_ISSUER } from "../lib/tokens.ts";

export interface Caller {
  id: string;
  email: string;
  /** The token's `email_verified` claim: auth has seen the owner open the verification link (false when absent). */
  emailVerified: boolean;
}

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

export type TokenVerifier = Pick<ReturnType<typeof jwksVerifier>, "verify" | "ready">;

export function bearerToken(authorization: string | undefined): string | undefined {
  return authorization?.match(/^Bearer\s+([A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]*)\s*$/i)?.[1];
}

/** The caller an Authorization header speaks for: 401 without a valid token, 503 while auth's keys cannot be fetched. */
export async function authenticate(verifier: TokenVerifier, authorization: string | undefined): Promise<Caller> {
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
    auth: {
      async resolve({ headers }) {
        return { user: await authenticate(verifier, headers.authorization) };
      },
    },
  });
