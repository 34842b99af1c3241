// HTTP outcomes other than success are RFC 9457 problem documents. Handlers throw
// one of the small classes below; `problems` maps them (and Elysia's own errors)
// to application/problem+json once, for every route of the app that uses it.
import { Elysia, t } from "elysia";
import type { Logger } from "./log.ts";

export const Problem = t.Object(
  {
    type: t.String({ description: "a URI naming the kind of problem; about:blank when the status says it all" }),
    title: t.String(),
    status: t.Integer(),
    detail: t.Optional(t.String()),
    instance: t.Optional(t.String()),
    errors: t.Optional(t.Array(t.Object({ field: t.String(), message: t.String() }))),
  },
  { additionalProperties: true, description: "RFC 9457 problem details" },
);
export type ProblemBody = typeof Problem.static;

export class HttpProblem extends Error {
  override name = "HttpProblem";
  constructor(
    readonly status: number,
    readonly title: string,
    detail?: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? title);
  }
  get detail(): string {
    return this.message;
  }
}

export class BadRequest extends HttpProblem {
  constructor(detail: string) {
    super(400, "Bad Request", detail);
  }
}
export class Unauthorized extends HttpProblem {
  constructor(detail = "a valid bearer token is required") {
    super(401, "Unauthorized", detail, {}, { "WWW-Authenticate": 'Bearer realm="m3dio"' });
  }
}
export class NotFound extends HttpProblem {
  constructor(detail = "no such resource") {
    super(404, "Not Found", detail);
  }
}
export class Conflict extends HttpProblem {
  constructor(detail: string) {
    super(409, "Conflict", detail);
  }
}
export class ContentTooLarge extends HttpProblem {
  constructor(detail: string) {
    super(413, "Content Too Large", detail);
  }
}
export class UnsupportedMediaType extends HttpProblem {
  constructor(detail: string) {
    super(415, "Unsupported Media Type", detail);
  }
}
export class Unprocessable extends HttpProblem {
  constructor(detail: string, errors: { field: string; message: string }[] = []) {
    super(422, "Unprocessable Content", detail, errors.length ? { errors } : {});
  }
}
export class TooManyRequests extends HttpProblem {
  constructor(detail: string, retryAfterSeconds: number) {
    const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
    super(429, "Too Many Requests", detail, { retryAfter: seconds }, { "Retry-After": String(seconds) });
  }
}
export class Unavailable extends HttpProblem {
  constructor(detail: string) {
    super(503, "Service Unavailable", detail, {}, { "Retry-After": "5" });
  }
}

export function problemResponse(problem: ProblemBody, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(problem), {
    status: problem.status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

/** Maps every error to problem+json; unexpected ones are logged and answered 500 without details. */
export const problems = (log: Logger) =>
  new Elysia({ name: "problems" }).onError({ as: "global" }, ({ code, error, request, path }) => {
    // A body parser's own problem (too large, not JSON) arrives wrapped in Elysia's ParseError.
    const problem =
      error instanceof HttpProblem
        ? error
        : code === "PARSE" && error.cause instanceof HttpProblem
          ? error.cause
          : undefined;
    if (problem) {
      return problemResponse(
        {
          type: "about:blank",
          title: problem.title,
          status: problem.status,
          detail: problem.detail,
          instance: path,
          ...problem.extra,
        },
        problem.headers,
      );
    }
    switch (code) {
      case "VALIDATION": {
        const errors = error.all.map((issue) => ({
          field: "path" in issue && issue.path ? issue.path.replace(/^\//, "").replaceAll("/", ".") : error.type,
          // A schema's own `error` text ("must be an email address") beats TypeBox's generic one.
          message:
            "schema" in issue && typeof issue.schema?.error === "string"
              ? issue.schema.error
              : "message" in issue && issue.message
                ? issue.message
                : (issue.summary ?? "is invalid"),
        }));
        const fields = [...new Set(errors.map((e) => e.field))].join(", ");
        return problemResponse({
          type: "about:blank",
          title: "Unprocessable Content",
          status: 422,
          detail: `invalid ${error.type}: ${fields}`,
          instance: path,
          errors,
        });
      }
      case "PARSE":
        return problemResponse({
          type: "about:blank",
          title: "Bad Request",
          status: 400,
          detail: "the request body could not be parsed",
          instance: path,
        });
      case "NOT_FOUND":
        return problemResponse({
          type: "about:blank",
          title: "Not Found",
          status: 404,
          detail: `no route for ${request.method} ${path}`,
          instance: path,
        });
      default: {
        const status =
          typeof (error as { status?: unknown }).status === "number" ? (error as { status: number }).status : 500;
        if (status < 500) {
          return problemResponse({
            type: "about:blank",
            title: "Bad Request",
            status,
            detail: String((error as Error).message ?? error),
            instance: path,
          });
        }
        log.error({ err: error, method: request.method, path }, "unhandled error");
        return problemResponse({
          type: "about:blank",
          title: "Internal Server Error",
          status: 500,
          detail: "something went wrong on our side; it has been logged",
          instance: path,
        });
      }
    }
  });
