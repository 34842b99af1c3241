// HTTP outcomes other than success are RFC 9457 problem documents. Handlers throw
// one of the small classes below; `problems` maps them (and Elysia's own errors)
// to application/problem+json once, for every route of the app that uses it.
import { STATUS_CODES } from "node:http";
import { Value } from "@sinclair/typebox/value";
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
/** The challenges a 401 answers with: a bearer token (an access token or an API key), or HTTP Basic credentials. */
export const CHALLENGES = { bearer: 'Bearer realm="m3dio"', basic: 'Basic realm="m3dio", charset="UTF-8"' };
export class Unauthorized extends HttpProblem {
  constructor(detail = "a valid bearer token is required", challenge = CHALLENGES.bearer) {
    super(401, "Unauthorized", detail, {}, { "WWW-Authenticate": challenge });
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
/** 410: what the request needs is no longer kept (expired and removed, or being removed). */
export class Gone extends HttpProblem {
  constructor(detail: string) {
    super(410, "Gone", detail);
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
    code !== "VALIDATION" && typeof (error as { status?: unknown }).status === "number"
      ? (error as { status: number }).status
      : 500;
  if (status < 500)
    return new HttpProblem(status, STATUS_CODES[status] ?? "Client Error", String((error as Error).message ?? error));
  log.error({ event: "http.unhandled_error", err: error, method: request.method, path }, "unhandled error");
  return new HttpProblem(500, "Internal Server Error", "something went wrong on our side; it has been logged");
}

// ── validation failures in words ────────────────────────────────────────────
// Elysia (TypeBox) reports what failed in its own terms ("Expected union value"); a
// client is told instead, per field, what the field must be, from the schema itself:
// `limit must be an integer between 1 and 100`. One mapping for every route of every service.

export interface FieldError {
  field: string;
  message: string;
}

/** One failure as TypeBox's `Value.Errors` and Elysia's `error.all` give it. */
export interface SchemaIssue {
  path: string;
  schema: unknown;
  value: unknown;
  type?: number;
}

type Schema = Record<string, unknown> & { [key: symbol]: unknown };
const KIND = Symbol.for("TypeBox.Kind");
/** TypeBox's ValueErrorType for a property the schema does not allow. */
const ADDITIONAL_PROPERTY = 42;

/** The numeric branch of Elysia's coercion unions (query and form fields: "5" or 5), else the schema. */
function uncoerced(schema: Schema): Schema {
  const branches = schema.anyOf as Schema[] | undefined;
  if (!Array.isArray(branches)) return schema;
  const real = branches.filter((branch) => !(branch.type === "string" && COERCED_FORMATS.has(branch.format as string)));
  if (real.length !== 1 || real.length === branches.length) return schema;
  return real[0]!;
}
const COERCED_FORMATS = new Set(["integer", "numeric", "boolean", "ObjectString", "ArrayString"]);

const list = (values: unknown[]) => values.map((value) => String(value)).join(", ");

function range(schema: Schema): string {
  const { minimum: min, maximum: max, exclusiveMinimum: above, exclusiveMaximum: below } = schema;
  if (min !== undefined && max !== undefined) return ` between ${min} and ${max}`;
  if (min !== undefined) return ` of ${min} or more`;
  if (max !== undefined) return ` of ${max} or less`;
  if (above !== undefined) return ` greater than ${above}`;
  if (below !== undefined) return ` less than ${below}`;
  return "";
}

function text(schema: Schema): string {
  const format = schema.format as string | undefined;
  if (format === "email") return "an email address";
  if (format === "uri" || format === "url") return "a URL";
  if (format === "date-time") return "a date and time (ISO 8601)";
  const { minLength: min, maxLength: max } = schema as { minLength?: number; maxLength?: number };
  const like = Array.isArray(schema.examples) && schema.pattern ? ` like ${schema.examples[0]}` : "";
  if (like) return `text${like}`;
  if (min !== undefined && max !== undefined) return min === max ? `${min} characters` : `${min} to ${max} characters`;
  if (max !== undefined) return `at most ${max} characters`;
  if (min === 1) return "text, not empty";
  if (min !== undefined) return `at least ${min} characters`;
  return "text";
}

/** What a value of `schema` is, as a noun phrase: "an integer between 1 and 100", "one of mp3, ogg". */
export function expected(given: unknown): string {
  const schema = uncoerced((given ?? {}) as Schema);
  if (Array.isArray(schema.enum)) return `one of ${list(schema.enum)}`;
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  const branches = schema.anyOf as Schema[] | undefined;
  if (Array.isArray(branches)) {
    if (branches.every((branch) => branch.const !== undefined))
      return `one of ${list(branches.map((branch) => branch.const))}`;
    return [...new Set(branches.map(expected))].join(" or ");
  }
  const kind = schema[KIND];
  if (kind === "File" || kind === "Files") return "a file";
  switch (schema.type) {
    case "integer":
      return `an integer${range(schema)}`;
    case "number":
      return `a number${range(schema)}`;
    case "boolean":
      return "true or false";
    case "string":
      return text(schema);
    case "array":
      return schema.maxItems !== undefined ? `a list of at most ${schema.maxItems} items` : "a list";
    case "object": {
      const required = (schema.required ?? []) as string[];
      return required.length ? `a JSON object with ${required.join(", ")}` : "a JSON object";
    }
    case "null":
      return "null";
    default:
      return "a valid value";
  }
}

/** The field a JSON pointer names, in dots ("/options/bitrate" → options.bitrate); `root` for the whole value. */
const fieldOf = (path: string, root: string) =>
  path
    .replace(/^\//, "")
    .split("/")
    .map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"))
    .join(".") || root;

/** Each failing field once, with what it must be: a schema's own `error` text first, else its expectation in words. */
export function fieldErrors(issues: Iterable<SchemaIssue>, root = "body"): FieldError[] {
  const byField = new Map<string, string>();
  for (const issue of issues) {
    const field = fieldOf(issue.path, root);
    if (byField.has(field)) continue;
    const own = (issue.schema as { error?: unknown } | undefined)?.error;
    byField.set(
      field,
      issue.type === ADDITIONAL_PROPERTY
        ? "is not a field of this request"
        : issue.value === undefined && field !== root
          ? "is required"
          : typeof own === "string"
            ? own
            : `must be ${expected(issue.schema)}`,
    );
  }
  return [...byField].map(([field, message]) => ({ field, message }));
}

/** 422 naming each field, its detail a sentence: "limit must be an integer between 1 and 100; cursor is required". */
export function invalidFields(errors: FieldError[]): Unprocessable {
  return new Unprocessable(errors.map((error) => `${error.field} ${error.message}`).join("; "), errors);
}

type RouteList = () => { method: string; path: string; hooks: Record<string, unknown> }[];
type Models = () => { type: Record<string, unknown> };
const SOURCES = ["query", "body", "params", "headers"] as const;

/**
 * The fields whose coerced value did not decode: Elysia checks a query's "500" against
 * "an integer, or text that is one", and only then decodes it against `maximum: 100`,
 * where a failure no longer says which field it was. Each top-level field of the
 * route's schemas is decoded again on its own, to name it.
 */
function decodeFailures(context: Record<string, unknown>, routes: RouteList, models: Models): SchemaIssue[] {
  const method = (context.request as Request).method;
  const hooks = routes().find((route) => route.method === method && route.path === context.route)?.hooks ?? {};
  const guarded = (hooks.standaloneValidator ?? []) as Record<string, unknown>[];
  return SOURCES.flatMap((source) => {
    const raw = context[source] as Record<string, unknown> | undefined;
    return [hooks[source], ...guarded.map((validator) => validator[source])].flatMap((given) => {
      const schema = (typeof given === "string" ? models().type[given] : given) as Schema | undefined;
      const properties = (schema?.properties ?? {}) as Record<string, Schema>;
      return Object.entries(properties).flatMap(([name, property]) => {
        const value = raw?.[name];
        if (value === undefined) return [];
        try {
          Value.Decode(property as never, value);
          return [];
        } catch {
          return [{ path: `/${name}`, schema: property, value }];
        }
      });
    });
  });
}

interface ElysiaValidation {
  type: string;
  all: SchemaIssue[];
  validator: unknown;
  value: unknown;
}

/** A request that does not fit a route's schema: 422 naming each field in words. */
function validationProblem(
  error: ElysiaValidation,
  context: Record<string, unknown>,
  routes: RouteList,
  models: Models,
): HttpProblem {
  if (error.type !== "property") return invalidFields(fieldErrors(error.all, error.type));
  const found = decodeFailures(context, routes, models);
  return invalidFields(
    fieldErrors(found.length ? found : [{ path: "", schema: error.validator, value: error.value }], "value"),
  );
}

/** Maps every error to problem+json once, for every route of the app; unexpected ones are logged and answered 500 without details. */
export const problems = (log: Logger, options: ProblemOptions = {}) => {
  const plugin = new Elysia({ name: "problems" });
  // The app's routes and models (a used plugin sees the app's: Elysia keeps these accessors protected), read only after a failure.
  const app = plugin as unknown as { getGlobalRoutes: RouteList; getGlobalDefinitions: Models };
  const routes: RouteList = () => app.getGlobalRoutes();
  const models: Models = () => app.getGlobalDefinitions();
  return plugin.onError({ as: "global" }, (context) => {
    const { code, error, request, path, set } = context;
    // An answer that does not fit its own schema is this service's bug, not the client's: 500.
    const problem =
      code === "VALIDATION" && error.type !== "response"
        ? validationProblem(error as unknown as ElysiaValidation, context as never, routes, models)
        : toProblem(code, error, request, path, log, options);
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
};
