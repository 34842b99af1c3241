// The login's credentials, from a JSON body or an HTTP Basic header, checked alike: an
// overlong email or password is 422 naming the field whichever way it came, and never
// reaches MySQL.
import { Value } from "@sinclair/typebox/value";
import { LoginBody } from "../lib/account-models.ts";
import { fieldErrors, invalidFields, Unauthorized } from "../lib/problem.ts";

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
    const errors = fieldErrors(Value.Errors(LoginBody, basic), "credentials");
    if (errors.length) throw invalidFields(errors);
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
