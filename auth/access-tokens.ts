// The access tokens auth signs (JWTs: lib/tokens.ts names issuer and audience) and the
// check of the ones the gateway passes on to the account routes. Auth checks those itself
// with its own key rather than believing a user id the gateway names: a request that
// reaches auth some other way proves nothing without a token auth signed, and a token
// of an account being deleted (or gone) is refused here, which the gateway cannot know.
import { randomUUID } from "node:crypto";
import { jwt } from "@elysiajs/jwt";
import { Elysia } from "elysia";
import * as jose from "jose";
import { ApiKeyNotAccepted, looksLikeApiKey } from "../lib/api-keys.ts";
import { Unauthorized } from "../lib/problem.ts";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "../lib/tokens.ts";
import type { AccountStore, User } from "./accounts.ts";
import type { SigningKey } from "./keys.ts";

export interface AccessToken {
  token: string;
  expiresAt: string;
}

/** The caller of an account route: the account, and the session its token came from (`sid`), if any. */
export interface Caller extends User {
  sessionId?: string;
}

export function accessTokens(key: SigningKey, ttlSeconds: number) {
  const publicKey = jose.importJWK(key.publicJwk, key.alg);
  // Signing is @elysiajs/jwt's (the stack's JWT plugin), used outside a request through its
  // decorator; checking is jose's with the public half, as the gateway checks (the plugin
  // would verify with the secret it was given, here the private key, which EdDSA cannot).
  const signer = jwt({
    name: "tokens",
    secret: key.privateKey,
    alg: key.alg,
    kid: key.kid,
    iss: TOKEN_ISSUER,
    aud: TOKEN_AUDIENCE,
  }).decorator.tokens;
  return {
    /** A token for the user: `sub`, `email`, `email_verified`, and `sid` when it belongs to a session. */
    async sign(user: User, sessionId?: string): Promise<AccessToken> {
      const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
      const token = await signer.sign({
        sub: String(user.id),
        email: user.email,
        email_verified: user.emailVerified,
        ...(sessionId ? { sid: sessionId } : {}),
        jti: randomUUID(),
        exp,
      });
      return { token, expiresAt: new Date(exp * 1000).toISOString() };
    },
    /** The user id and session a token of ours names; throws for anything else. */
    async verify(token: string): Promise<{ userId: number; sessionId?: string }> {
      const { payload } = await jose.jwtVerify(token, await publicKey, {
        algorithms: [key.alg],
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        requiredClaims: ["sub", "exp"],
      });
      const userId = Number(payload.sub);
      if (!Number.isSafeInteger(userId) || userId < 1) throw new Error("token's sub is no user id");
      return { userId, sessionId: typeof payload.sid === "string" ? payload.sid : undefined };
    },
  };
}
export type AccessTokens = ReturnType<typeof accessTokens>;

/**
 * Routes opt in with `{ caller: true }` and receive the account behind the bearer token as
 * `caller`. Only an access token will do: an API key is 403 (lib/api-keys.ts).
 */
export const bearerCaller = (tokens: AccessTokens, accounts: AccountStore) =>
  new Elysia({ name: "auth.bearer" }).macro({
    caller: {
      async resolve({ headers }): Promise<{ caller: Caller }> {
        const token = headers.authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
        if (!token) throw new Unauthorized();
        if (looksLikeApiKey(token)) throw new ApiKeyNotAccepted();
        const claims = await tokens.verify(token).catch(() => undefined);
        const user = claims && (await accounts.find(claims.userId));
        if (!claims || !user) throw new Unauthorized("the token is invalid or expired; log in again");
        return { caller: { ...user, sessionId: claims.sessionId } };
      },
    },
  });
