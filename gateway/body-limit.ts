// A request whose declared body (Content-Length) is over what the gateway takes is
// answered 413 problem+json naming the limit, before a byte of it is read. Bun's own
// check (`serve.maxRequestBodySize`) would answer first with a bare 413 and no body, so
// the gateway sets Bun's ceiling out of the way (BUN_BODY_CEILING) and answers itself.
// A body of no declared length (chunked) is bounded where it is read: the upload by
// MAX_UPLOAD_BYTES as it streams (lib/upload.ts), JSON bodies by limitedJson (64 KiB);
// a body no route reads is discarded by Bun as it arrives, never held.
import { Elysia } from "elysia";
import { HttpProblem } from "../lib/problem.ts";
import { formatBytes } from "../lib/upload.ts";

/** Room for the multipart framing around the largest video (boundaries, part headers, small fields). */
export const ENVELOPE_BYTES = 1024 * 1024;

/** Bun's own limit, for the gateway: never reached, so every over-long body gets the answer below. */
export const BUN_BODY_CEILING = Number.MAX_SAFE_INTEGER;

/** The largest body the gateway reads: a video of `maxUploadBytes` in its multipart envelope. */
export const bodyLimitOf = (maxUploadBytes: number) => maxUploadBytes + ENVELOPE_BYTES;

/** onRequest (before routing, so for every path): a declared body over the limit is refused at once. */
export const bodyLimit = (maxUploadBytes: number) => {
  const limit = bodyLimitOf(maxUploadBytes);
  return new Elysia({ name: "gateway.body-limit" }).onRequest(({ request }) => {
    const declared = Number(request.headers.get("content-length") ?? 0);
    if (!(declared > limit)) return;
    throw new HttpProblem(
      413,
      "Content Too Large",
      `the body is ${formatBytes(declared)}; the largest video accepted is ${formatBytes(maxUploadBytes)}`,
      { maxBytes: limit },
      // The client may still be sending: close the connection rather than read what is refused.
      { connection: "close" },
    );
  });
};
