// The web page at GET / (and at /verify and /reset, where the emailed links lead: the page
// reads their token): web/index.html with its TypeScript and CSS, bundled by
// Bun.build into memory when the plugin is created (no build step, nothing written
// to disk, so it works on a read-only filesystem). Assets are content-hashed and
// cached for good; the page itself is revalidated (ETag) so a deploy shows at once.
//
//   gateway.ts:  .use(webPage())
import { join } from "node:path";
import { Elysia } from "elysia";
import { contentSecurityPolicy, pageHeaders } from "../lib/page-headers.ts";
import { NotFound } from "../lib/problem.ts";

const ASSET_PREFIX = "/web/";

/**
 * What the page may load: its own origin only (the MP3 plays from its signed link, same
 * origin), and blob: URLs for the cover (fetched with the token) and for reading a chosen
 * file's length before it is sent.
 */
const PAGE_HEADERS = pageHeaders(
  contentSecurityPolicy({ "media-src": "'self' blob:", "img-src": "'self' data: blob:" }),
);

interface Built {
  body: Uint8Array<ArrayBuffer>;
  gzip: Uint8Array<ArrayBuffer> | null;
  type: string;
  etag: string;
}

export interface WebBundle {
  page: Built;
  assets: Map<string, Built>;
}

/** Bundles index.html and what it references; fails loudly on a build error. */
export async function buildWebPage(entry = join(import.meta.dir, "index.html")): Promise<WebBundle> {
  const result = await Bun.build({
    entrypoints: [entry],
    minify: true,
    target: "browser",
    publicPath: ASSET_PREFIX,
    naming: { entry: "[name]-[hash].[ext]", chunk: "[name]-[hash].[ext]", asset: "[name]-[hash].[ext]" },
  });
  if (!result.success) throw new AggregateError(result.logs, "the web page did not build");
  let page: Built | undefined;
  const assets = new Map<string, Built>();
  for (const output of result.outputs) {
    const body = new Uint8Array(await output.arrayBuffer());
    const compressible = /^(text\/|application\/(javascript|json)|image\/svg)/.test(output.type);
    const built: Built = {
      body,
      gzip: compressible && body.length > 512 ? (Bun.gzipSync(body) as Uint8Array<ArrayBuffer>) : null,
      type: output.type,
      etag: `"${output.hash ?? Bun.hash(body).toString(36)}"`,
    };
    const name = output.path.replace(/^\.\//, "");
    if (name.endsWith(".html")) page = built;
    else assets.set(name, built);
  }
  if (!page) throw new Error("the web build produced no HTML page");
  return { page, assets };
}

function respond(request: Request, file: Built, headers: Record<string, string>): Response {
  const common = { etag: file.etag, vary: "accept-encoding", "x-content-type-options": "nosniff", ...headers };
  if (request.headers.get("if-none-match") === file.etag) return new Response(null, { status: 304, headers: common });
  const gzip = file.gzip && /\bgzip\b/.test(request.headers.get("accept-encoding") ?? "");
  return new Response(gzip ? file.gzip : file.body, {
    headers: { ...common, "content-type": file.type, ...(gzip ? { "content-encoding": "gzip" } : {}) },
  });
}

/** The paths the page is served at: `/`, and the emailed links' (`PUBLIC_URL/verify?token=…`, `/reset?token=…`). */
export const PAGE_PATHS = ["/", "/verify", "/reset"] as const;

const pageDoc = {
  tags: ["web"],
  responses: { 200: { description: "the page", content: { "text/html": { schema: { type: "string" as const } } } } },
};
const PAGE_DOCS: Record<(typeof PAGE_PATHS)[number], string> = {
  "/": "The web page: upload, follow, play and download your conversions",
  "/verify": "The web page, opened by the verification email's link: it confirms the address with `token`",
  "/reset": "The web page, opened by the reset email's link: it chooses a new password with `token`",
};

/** Serves the page at PAGE_PATHS and its bundled assets under `/web/`. The build starts when this is called. */
export const webPage = (bundle: Promise<WebBundle> = buildWebPage()) => {
  bundle.catch(() => {}); // reported by the first request (as a 500, logged); never an unhandled rejection
  const app = new Elysia({ name: "web" });
  for (const path of PAGE_PATHS)
    app.get(
      path,
      async ({ request }) => respond(request, (await bundle).page, { "cache-control": "no-cache", ...PAGE_HEADERS }),
      { detail: { ...pageDoc, summary: PAGE_DOCS[path] } },
    );
  return app.get(
    `${ASSET_PREFIX}:file`,
    async ({ params, request }) => {
      const file = (await bundle).assets.get(params.file);
      if (!file) throw new NotFound("no such asset");
      return respond(request, file, { "cache-control": "public, max-age=31536000, immutable" });
    },
    { detail: { hide: true } },
  );
};
