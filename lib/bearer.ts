// Bearer-token auth for HTTP services that do not sign tokens themselves: tokens
// are verified locally against the issuer's JWKS (fetched once, fetched again when
// a token names an unknown `kid`, by jose's remote key set), so no request costs a
// call to auth. Routes opt in with `{ auth: true }` and receive the caller as `user`.
import { Elysia } from "elysia";
import * as jose from "jose";
import { Unauthorized } from "./problem.ts";

export interface Caller {
  id: string;
  email: string;
}

export function jwksVerifier(jwksUrl: string) {
  const keys = jose.createRemoteJWKSet(new URL(jwksUrl), { timeoutDuration: 5000, cooldownDuration: 30_000 });
  return {
    /** The caller a token speaks for; throws for a bad, expired, tampered, `alg: none` or foreign token. */
    async verify(token: string): Promise<Caller> {
      const { payload } = await jose.jwtVerify(token, keys, { algorithms: ["EdDSA", "ES256"], requiredClaims: ["sub", "exp"] });
      if (typeof payload.email !== "string") throw new Error("token has no email claim");
      return { id: payload.sub!, email: payload.email };
    },
    /** Fetches the keys now (at start, and as the readiness check). */
    reload: () => keys.reload(),
    get fresh() {
      return keys.fresh;
    },
  };
}

export type TokenVerifier = Pick<ReturnType<typeof jwksVerifier>, "verify">;

export function bearerToken(authorization: string | undefined): string | undefined {
  return authorization?.match(/^Bearer\s+([A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]*)\s*$/i)?.[1];
}

export const bearer = (verifier: TokenVerifier) =>
  new Elysia({ name: "bearer" }).macro({
    auth: {
      async resolve({ headers }) {
        const token = bearerToken(headers.authorization);
        if (!token) throw new Unauthorized();
        try {
          return { user: await verifier.verify(token) };
        } catch {
          throw new Unauthorized("the token is invalid or expired; log in again");
        }
      },
    },
  });
