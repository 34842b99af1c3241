// The login's credentials, from a JSON body or an HTTP Basic header, checked alike: an
// overlong email or password is 422 naming the field whichever way it came, and never
// reaches MySQL.
import { Value } from "@sinclair/typebox/value";
import { t } from "elysia";
import { Unauthorized, Unprocessable } from "../lib/problem.ts";

/** Login checks only the lengths (an account may predate a rule of registration's). */
export const LoginBody = t.Object({
  email: t.String({ maxLength: 254, error: "must be at most 254 characters" }),
  password: t.String({ maxLength: 256, error: "must be at most 256 characters" }),
});

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** The login's credentials: HTTP Basic wins over a JSON body (Elysia checked that one); neither is 401. */
export function credentialsOf(
  authorization: string | undefined,
  body: { email?: string; password?: string } | null | undefined,
): { email: string; password: string } {
  const basic = basicCredentials(authorization);
  const credentials = basic ?? body;
  if (!credentials?.email || !credentials.password) {
    throw new Unauthorized("send {email, password} as JSON or HTTP Basic credentials");
  }
  if (basic) {
    const errors = [...Value.Errors(LoginBody, basic)].map((error) => ({
      field: error.path.replace(/^\//, ""),
      message: (error.schema as { error?: string }).error ?? error.message,
    }));
    if (errors.length)
      throw new Unprocessable(`invalid HTTP Basic credentials: ${errors.map((e) => e.field).join(", ")}`, errors);
  }
  return { email: normaliseEmail(credentials.email), password: credentials.password };
}

/** `Authorization: Basic base64(email:password)` → credentials; anything else → undefined. */
function basicCredentials(header: string | undefined): { email: string; password: string } | undefined {
  const match = header?.match(/^Basic\s+([A-Za-z0-9+/=]+)\s*$/i);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { email: normaliseEmail(decoded.slice(0, colon)), password: decoded.slice(colon + 1) };
}
