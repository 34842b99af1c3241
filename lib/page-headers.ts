// The protective headers of every HTML page a service serves (the gateway's web page,
// Swagger UI at /docs): a Content-Security-Policy naming what the page may load, and no
// framing, no referrer, no MIME sniffing.

/** Directives every page starts from: its own origin only, no plugins, no <base>, no framing. */
const BASE_POLICY: Record<string, string> = {
  "default-src": "'self'",
  "script-src": "'self'",
  "style-src": "'self'",
  "img-src": "'self' data:",
  "connect-src": "'self'",
  "object-src": "'none'",
  "base-uri": "'none'",
  "form-action": "'self'",
  "frame-ancestors": "'none'",
};

/** The CSP of a page: the base directives with `directives` replacing or adding to them. */
export function contentSecurityPolicy(directives: Record<string, string> = {}): string {
  return Object.entries({ ...BASE_POLICY, ...directives })
    .map(([name, value]) => `${name} ${value}`)
    .join("; ");
}

/** The headers an HTML page is answered with, given its CSP. */
export const pageHeaders = (policy: string): Record<string, string> => ({
  "content-security-policy": policy,
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
});

/** `'sha256-…'`, the CSP source that allows one inline script or style with exactly this text. */
export const inlineHash = (text: string) => `'sha256-${new Bun.CryptoHasher("sha256").update(text).digest("base64")}'`;
