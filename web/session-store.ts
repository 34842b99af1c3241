// Where a session is kept, and what its access token says. "Remember me" keeps it in
// localStorage (every tab of this browser, across restarts, until the refresh token's 30
// days end); otherwise in sessionStorage (this tab only, gone when it closes). The token's
// claims are read, not checked: the server checks every token it is sent.
import type { Tokens } from "./api.ts";

export interface Session extends Tokens {
  email: string;
  /** kept in localStorage (every tab) rather than sessionStorage (this tab) */
  remember: boolean;
  /** when to renew the access token, by this browser's clock (renewalTime) */
  renewAt: number;
}

/** What the page reads of an access token (auth/access-tokens.ts signs them). */
export interface Claims {
  exp?: number;
  iat?: number;
  email?: string;
  email_verified?: boolean;
}

export const SESSION_KEY = "m3dio.session";

const areaOf = (session: Pick<Session, "remember">) => (session.remember ? localStorage : sessionStorage);

/** The session kept in `area`, unless its refresh token has expired (or it is not one). */
export function readSession(area: Storage): Session | null {
  try {
    const saved = JSON.parse(area.getItem(SESSION_KEY) ?? "null") as Session | null;
    const usable = saved?.token && saved.refreshToken && typeof saved.renewAt === "number";
    return usable && Date.parse(saved.refreshExpiresAt) > Date.now() ? saved : null;
  } catch {
    return null;
  }
}

/** This tab's own session, else the remembered one. */
export const loadSession = () => readSession(sessionStorage) ?? readSession(localStorage);

/** The session as the other tabs sharing its storage see it (null when none). */
export const storedSession = (session: Session) => readSession(areaOf(session));

export function saveSession(session: Session) {
  areaOf(session).setItem(SESSION_KEY, JSON.stringify(session));
}

/** Forgets the session where it is kept; a remembered one's other tabs follow (a storage event). */
export function forgetSession(session: Session) {
  areaOf(session).removeItem(SESSION_KEY);
}

/** The claims of a JWT's payload; none for a token that is not one. */
export function claimsOf(token: string): Claims {
  try {
    const payload = token.split(".")[1]!.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(payload), (char) => char.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return claims && typeof claims === "object" ? (claims as Claims) : {};
  } catch {
    return {};
  }
}

/**
 * When to renew an access token received now (ms, by this browser's clock): a fifth of
 * its life before it expires, at most 5 minutes before (an hour's token: at 55 minutes).
 * Counted from its life (`exp` - `iat`), not its `exp`, so a clock that is off by hours
 * neither renews at once nor too late.
 */
export function renewalTime(tokens: Tokens, now = Date.now()): number {
  const { exp, iat } = claimsOf(tokens.token);
  const life = exp && iat ? (exp - iat) * 1000 : Date.parse(tokens.expiresAt) - now;
  if (!Number.isFinite(life) || life <= 0) return now;
  return now + life - Math.min(5 * 60_000, life / 5);
}
