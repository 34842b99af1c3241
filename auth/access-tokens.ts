// The access tokens auth signs (JWTs: lib/tokens.ts names issuer and audience) and the
// check of the ones the gateway passes on to the account routes. Auth checks those itself
// with its own key rather than believing a user id the gateway names: a request that
// reaches auth some other way proves nothing without a token auth signed, and a token
// of an account being deleted (or gone) is refused here, which the gateway cannot know.
import { randomUUID } from "node:crypto";
import { Elysia } from "elysia";
import * as jose from "jose";
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
  return {
    /** A token for the user: `sub`, `email`, `email_verified`, and `sid` when it belongs to a session. */
    async sign(user: User, sessionId?: string): Promise<AccessToken> {
      const issuedAt = Math.floor(Date.now() / 1000);
      const exp = issuedAt + ttlSeconds;
      const token = await new jose.SignJWT({
        email: user.email,
        email_verified: user.emailVerified,
        ...(sessionId ? { sid: sessionId } : {}),
      })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT" })
        .setSubject(String(user.id))
        .setIssuer(TOKEN_ISSUER)
        .setAudience(TOKEN_AUDIENCE)
        .setIssuedAt(issuedAt)
        .setExpirationTime(exp)
        .setJti(randomUUID())
        .sign(key.privateKey);
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

/** Routes opt in with `{ caller: true }` and receive the account behind the bearer token as `caller`. */
export const bearerCaller = (tokens: AccessTokens, accounts: AccountStore) =>
  new Elysia({ name: "auth.bearer" }).macro({
    caller: {
      async resolve({ headers }): Promise<{ caller: Caller }> {
        const token = headers.authorization?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
        if (!token) throw new Unauthorized();
        const claims = await tokens.verify(token).catch(() => undefined);
        const user = claims && (await accounts.find(claims.userId));
        if (!claims || !user) throw new Unauthorized("the token is invalid or expired; log in again");
        return { caller: { ...user, sessionId: claims.sessionId } };
      },
    },
  });
