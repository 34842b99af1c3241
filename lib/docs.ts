// OpenAPI 3.1 at /docs/json and Swagger UI at /docs, with Swagger UI's assets served
// by the service itself (from swagger-ui-dist), so the docs work offline. The page is
// answered with the protective headers of every page (lib/page-headers.ts): its CSP
// allows this origin and, by hash, the page's one inline script and style, nothing else.
import { SwaggerUIRender } from "@elysiajs/openapi/swagger";
import { Elysia } from "elysia";
import { openapiJson } from "./openapi.ts";
import { contentSecurityPolicy, inlineHash, pageHeaders } from "./page-headers.ts";
import { NotFound } from "./problem.ts";

const ASSETS = new Set(["swagger-ui-bundle.js", "swagger-ui.css"]);

/** What each group of operations is for, in the order Swagger UI lists them (lib/openapi.ts keeps those used). */
const TAGS = [
  { name: "jobs", description: "Convert a video or audio file to MP3, follow the job, download the MP3" },
  { name: "webhooks", description: "Be told by a POST to your URL when a job ends" },
  { name: "account", description: "Your quotas and what you use of them" },
  { name: "auth", description: "Register, log in, sessions, the address's verification, passwords" },
  { name: "api keys", description: "Keys for programs: `Authorization: Bearer m3d_…` on the job and webhook routes" },
  { name: "compatibility", description: "The reference system's curl flow: Basic login, /upload, /download" },
  { name: "health", description: "Liveness and readiness, for orchestrators" },
  { name: "web", description: "The web page" },
];

/** Swagger UI's page and the headers it is answered with (hashes of its inline script and style in the CSP). */
function swaggerPage(title: string, description: string) {
  const html = SwaggerUIRender(
    { title, description, version: "1.0.0" },
    {
      url: "/docs/json",
      dom_id: "#swagger-ui",
      autoDarkMode: true,
      cdn: "/docs/assets/swagger-ui-bundle.js",
      theme: "/docs/assets/swagger-ui.css",
      validatorUrl: "none", // no badge fetched from swagger.io
    },
  );
  const inline = (tag: string) =>
    [...html.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((match) => inlineHash(match[1]!));
  const policy = contentSecurityPolicy({
    "script-src": ["'self'", ...inline("script")].join(" "),
    "style-src": ["'self'", ...inline("style")].join(" "),
  });
  return { html, headers: { ...pageHeaders(policy), "content-type": "text/html; charset=utf-8" } };
}

/** `webhooks`: what the service posts to its users' URLs (OpenAPI 3.1's top-level `webhooks`), if anything. */
export const apiDocs = ({
  title,
  description,
  webhooks,
}: {
  title: string;
  description: string;
  webhooks?: Record<string, object>;
}) => {
  const page = swaggerPage(title, description);
  return new Elysia({ name: "docs" })
    .use(
      openapiJson({
        path: "/docs/json",
        exclude: ["/docs/assets/:file"],
        documentation: {
          info: { title, version: "1.0.0", description },
          tags: TAGS,
          ...(webhooks ? { webhooks } : {}),
          components: {
            securitySchemes: {
              bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
              apiKey: {
                type: "http",
                scheme: "bearer",
                bearerFormat: "m3d_… API key",
                description:
                  "An API key (`POST /auth/keys`) as `Authorization: Bearer m3d_…`: job, download, usage and webhook routes only, not the account routes.",
              },
              basic: { type: "http", scheme: "basic" },
            },
          },
        },
      }),
    )
    .get("/docs", () => new Response(page.html, { headers: page.headers }), { detail: { hide: true } })
    .get(
      "/docs/assets/:file",
      ({ params }) => {
        if (!ASSETS.has(params.file)) throw new NotFound("no such asset");
        return new Response(Bun.file(require.resolve(`swagger-ui-dist/${params.file}`)), {
          headers: { "cache-control": "public, max-age=86400", "x-content-type-options": "nosniff" },
        });
      },
      { detail: { hide: true } },
    );
};
