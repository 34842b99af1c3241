// Opaque tokens (refresh tokens, the tokens in verification and reset links): 32 random
// bytes, base64url. Only their SHA-256 is stored, so a copy of the database lets no one
// in; a random 256-bit token needs no slow hash, and looking it up by its hash takes the
// same time whether it exists or not (an index lookup on a value the caller cannot aim).
import { createHash, randomBytes } from "node:crypto";

export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** A fresh token and the hash to store. */
export function newToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString("base64url");
  return { token, hash: hashToken(token) };
}
