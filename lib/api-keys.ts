// API keys as both sides see them: auth makes and checks them (auth/api-keys.ts), the
// gateway tells them from access tokens and asks auth whose they are (gateway/api-keys.ts).
// A key is `m3d_` and 32 random bytes in base64url; only its SHA-256 is stored.
import { createHash, randomBytes } from "node:crypto";
import { HttpProblem } from "./problem.ts";

export const API_KEY_PREFIX = "m3d_";
const API_KEY_PATTERN = /^m3d_[A-Za-z0-9_-]{43}$/;
/** How many of a key's characters a list shows: the prefix and 8 more (48 bits, enough to tell keys apart). */
export const SHOWN_KEY_CHARS = API_KEY_PREFIX.length + 8;

/** Whether a bearer credential is meant as an API key (well formed or not): it starts `m3d_`. */
export const looksLikeApiKey = (credential: string) => credential.startsWith(API_KEY_PREFIX);
/** Whether it is a well-formed key (anything else is refused without asking auth). */
export const isApiKey = (credential: string) => API_KEY_PATTERN.test(credential);

/** A fresh key, and the hash to store. */
export function newApiKey(): { key: string; hash: string } {
  const key = `${API_KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
  return { key, hash: hashApiKey(key) };
}

export const hashApiKey = (key: string) => createHash("sha256").update(key).digest("hex");

/** 403: an API key on a route that needs a login (the account routes): saying so, not "invalid token". */
export class ApiKeyNotAccepted extends HttpProblem {
  constructor() {
    super(
      403,
      "Forbidden",
      "an API key cannot do that: the account routes (/auth/…) need the access token of a login (POST /auth/login)",
    );
  }
}
