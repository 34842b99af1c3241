// A JSON body parser with a size cap, for routes that take small JSON documents.
// Elysia's default parser reads any body whole, and the gateway must accept 2 GiB
// uploads elsewhere, so a huge JSON body would otherwise be buffered in memory.
import { BadRequest, ContentTooLarge, UnsupportedMediaType } from "./problem.ts";
import { formatBytes } from "./upload.ts";

export const JSON_BODY_LIMIT = 64 * 1024;

/** Use as a route's `parse` option: no body → undefined; not JSON → 415; too large → 413; malformed → 400. */
export const limitedJson =
  (maxBytes = JSON_BODY_LIMIT) =>
  async ({ request }: { request: Request }): Promise<unknown> => {
    if (!request.body) return undefined;
    const type = request.headers.get("content-type") ?? "";
    if (!/^application\/([a-z.+-]*\+)?json\b/i.test(type) && type !== "") {
      throw new UnsupportedMediaType("send the body as application/json");
    }
    if (Number(request.headers.get("content-length") ?? 0) > maxBytes) throw tooLarge(maxBytes);
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of request.body) {
      size += chunk.byteLength;
      if (size > maxBytes) throw tooLarge(maxBytes);
      chunks.push(chunk);
    }
    if (size === 0) return undefined;
    try {
      return JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      throw new BadRequest("the body is not valid JSON");
    }
  };

const tooLarge = (maxBytes: number) => new ContentTooLarge(`a JSON body may be at most ${formatBytes(maxBytes)}`);
