// OpenAPI 3.1 at /docs/json and Swagger UI at /docs, with Swagger UI's assets served
// by the service itself (from swagger-ui-dist), so the docs work offline.
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import { NotFound } from "./problem.ts";

const ASSETS = new Set(["swagger-ui-bundle.js", "swagger-ui.css"]);

export const apiDocs = ({ title, description }: { title: string; description: string }) =>
  new Elysia({ name: "docs" })
    .use(
      openapi({
        path: "/docs",
        provider: "swagger-ui",
        swagger: { cdn: "/docs/assets/swagger-ui-bundle.js", theme: "/docs/assets/swagger-ui.css" },
        // staticFile: false, or routes with a dot (/.well-known/jwks.json) would be left out
        exclude: { paths: ["/docs/assets/:file", "/metrics"], staticFile: false },
        documentation: {
          info: { title, version: "1.0.0", description },
          components: {
            securitySchemes: {
              bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
              basic: { type: "http", scheme: "basic" },
            },
          },
        },
      }),
    )
    .get(
      "/docs/assets/:file",
      ({ params }) => {
        if (!ASSETS.has(params.file)) throw new NotFound("no such asset");
        return new Response(Bun.file(require.resolve(`swagger-ui-dist/${params.file}`)), {
          headers: { "cache-control": "public, max-age=86400" },
        });
      },
      { detail: { hide: true } },
    );
