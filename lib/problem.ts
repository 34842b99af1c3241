// HTTP outcomes other than success are RFC 9457 problem documents. Handlers throw
// one of the small classes below; `problems` maps them (and Elysia's own errors)
// to application/problem+json once, for every route of the app that uses it.
import { STATUS_CODES } from "node:http";
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

export interface ProblemOptions {
  /**
   * Errors that mean a store or broker this service needs is briefly away (not the
   * request's fault, not a bug): answered 503 with Retry-After, so clients try again.
   */
  unavailable?: (error: unknown) => boolean;
}

/** The problem an error stands for: its own, or one mapped from its kind. Never undefined. */
function toProblem(
  code: string | number,
  error: unknown,
  request: Request,
  path: string,
  log: Logger,
  options: ProblemOptions,
): HttpProblem {
  // A body parser's own problem (too large, not JSON) arrives wrapped in Elysia's ParseError.
  if (error instanceof HttpProblem) return error;
  if (code === "PARSE" && (error as Error).cause instanceof HttpProblem) return (error as Error).cause as HttpProblem;
  if (options.unavailable?.(error)) {
    log.warn({ event: "store.unavailable", err: error, path }, "a store is unavailable");
    return new Unavailable("storage is briefly unavailable; try again shortly");
  }
  if (code === "PARSE") return new BadRequest("the request body could not be parsed");
  if (code === "NOT_FOUND") return new NotFound(`no route for ${request.method} ${path}`);
  const status =
    typeof (error as { status?: unknown }).status === "number" ? (error as { status: number }).status : 500;
  if (status < 500)
    return new HttpProblem(status, STATUS_CODES[status] ?? "Client Error", String((error as Error).message ?? error));
  log.error({ event: "http.unhandled_error", err: error, method: request.method, path }, "unhandled error");
  return new HttpProblem(500, "Internal Server Error", "something went wrong on our side; it has been logged");
}

/** A validation failure: 422 naming every field, with the schema's own message where it has one. */
function validationProblem(error: { all: unknown[]; type: string }): HttpProblem {
  const errors = (error.all as Record<string, unknown>[]).map((issue) => ({
    field:
      typeof issue.path === "string" && issue.path ? issue.path.replace(/^\//, "").replaceAll("/", ".") : error.type,
    // A schema's own `error` text ("must be an email address") beats TypeBox's generic one.
    message:
      typeof (issue.schema as { error?: unknown } | undefined)?.error === "string"
        ? (issue.schema as { error: string }).error
        : typeof issue.message === "string" && issue.message
          ? issue.message
          : typeof issue.summary === "string"
            ? issue.summary
            : "is invalid",
  }));
  const fields = [...new Set(errors.map((e) => e.field))].join(", ");
  return new Unprocessable(`invalid ${error.type}: ${fields}`, errors);
}

/** Maps every error to problem+json once, for every route of the app; unexpected ones are logged and answered 500 without details. */
export const problems = (log: Logger, options: ProblemOptions = {}) =>
  new Elysia({ name: "problems" }).onError({ as: "global" }, ({ code, error, request, path, set }) => {
    const problem =
      code === "VALIDATION" ? validationProblem(error) : toProblem(code, error, request, path, log, options);
    set.status = problem.status; // what lib/metrics.ts counts: the answer, not Elysia's guess from the error
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
  });
