// The OpenAPI 3.1 document of a service, complete. @elysiajs/openapi writes it from the
// routes' schemas and `detail`; this finishes what it leaves out or gets wrong for a
// client, the same way for every route of every service:
// - a route's `detail.responses` (what each status means there) merged into the answers
//   its `response` schemas make, and its `detail.parameters` beside those its `query` and
//   `headers` schemas make (the plugin keeps only one of each two);
// - JSON request bodies under application/json (a route with its own body parser, as every
//   JSON route here has, gets no content type at all), optional ones not required;
// - every error answer as application/problem+json referencing components.schemas.Problem,
//   with an example; 401 on every route that needs credentials, with its WWW-Authenticate
//   challenge; Retry-After on 429 and 503;
// - integers as "integer" (Elysia's coercion makes query and form integers "string or
//   integer"; the plugin makes an enum of numbers a string; a union of literals written by
//   hand, an enum typed by its values), a schema written out again where it is a component
//   replaced by its $ref, a model's own example shown as the example of the body or answer it describes;
// - each model as it was declared, whatever requests were served before (see `registered`).
import { STATUS_CODES } from "node:http";
import { toOpenAPISchema } from "@elysiajs/openapi";
import { type AnyElysia, Elysia } from "elysia";
import { CHALLENGES, Problem } from "./problem.ts";

// biome-ignore lint/suspicious/noExplicitAny: the document is plain JSON, walked and rewritten in place
type Json = Record<string, any>;
interface Route {
  method: string;
  path: string;
  hooks: Json;
}

export interface DocumentOptions {
  /**
   * The document's own parts: `info`, `tags` (what each groups, in the order Swagger UI
   * lists them; tags used but not named come last), `components.securitySchemes` (those
   * no route uses are left out), `webhooks`.
   */
  documentation: Json & { info: { title: string; version: string; description: string } };
  /** Paths left out (Swagger UI's own assets). */
  exclude?: string[];
}

const PROBLEM_REF = "#/components/schemas/Problem";
const OPTIONAL = Symbol.for("TypeBox.Optional");

/** What a status means when a route does not say more. */
const MEANINGS: Record<string, string> = {
  400: "the body could not be read (not valid JSON, or a malformed form)",
  401: "no valid credentials: log in (or send a valid API key) and try again",
  403: "not allowed",
  404: "no such resource, or it is not yours",
  409: "the resource is not in a state that allows this",
  410: "gone: it has expired and is no longer kept",
  413: "the body is too large",
  415: "the body's content type is not one this route takes",
  422: "a field is invalid: `errors` names each field and what it must be",
  429: "too many requests: `Retry-After` says when to try again",
  503: "a store or service this needs is briefly away: try again after `Retry-After`",
};

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value));

/** The registered copies of models that declare no `additionalProperties` (see `registered`). */
const OPEN_MODELS = new WeakSet<object>();

/**
 * A copy of `schema` to register as a model (`.model({ Job: registered(JobView) })`). A copy,
 * because Elysia gives a registered schema an `$id`, and the original, embedded elsewhere
 * (JobPage holds JobView), must not carry a second one. Remembered as declared, because
 * Elysia also writes `additionalProperties: false` into a registered object schema that
 * declares none, in place, when it compiles the first route that takes or answers it (at
 * that route's first request): the document leaves it out again, or it would change with
 * the requests served before it was read (and a closed Job would no longer be the Job inside
 * JobPage, which would then repeat it instead of referring to it).
 */
export function registered<T extends object>(schema: T): T {
  const copy = { ...schema };
  if (!("additionalProperties" in schema)) OPEN_MODELS.add(copy);
  return copy;
}

/** Elysia's coercion unions ("5" or 5) as the plain type they stand for; other unions as they are. */
function uncoerce(schema: Json): Json {
  const branches = schema.anyOf as Json[] | undefined;
  if (!Array.isArray(branches)) return schema;
  const coerced = (branch: Json) =>
    branch.type === "string" && ["integer", "numeric", "boolean"].includes(branch.format as string);
  const real = branches.filter((branch) => !coerced(branch));
  if (real.length !== 1 || real.length === branches.length) return schema;
  const { anyOf: _, default: fallback, ...outer } = schema;
  return { ...outer, ...real[0], ...(fallback !== undefined ? { default: fallback } : {}) };
}

/** An enum typed by its values: the plugin calls every enum of literals a string, the bitrates (128, 192, …) too. */
function typedEnum(schema: Json): Json {
  if (!Array.isArray(schema.enum) || schema.type !== "string") return schema;
  const kinds = new Set(
    schema.enum.map((value: unknown) =>
      Number.isInteger(value) ? "integer" : typeof value === "number" ? "number" : typeof value,
    ),
  );
  if (kinds.has("number")) kinds.delete("integer");
  return { ...schema, type: kinds.size === 1 ? [...kinds][0] : [...kinds] };
}

/** A union of literals written by hand (`anyOf` of `{const, type}`: TypeBox's Literal) as an enum typed by its values. */
function literalEnum(schema: Json): Json {
  const branches = schema.anyOf as Json[] | undefined;
  const literal = (branch: Json) =>
    "const" in branch && Object.keys(branch).every((key) => ["const", "type"].includes(key));
  if (!Array.isArray(branches) || !branches.length || !branches.every(literal)) return schema;
  const { anyOf: _, ...outer } = schema;
  return typedEnum({ ...outer, type: "string", enum: branches.map((branch) => branch.const) });
}

/** Walks every schema-like object of the document, replacing each by `visit`'s answer, depth first. */
function rewrite(value: unknown, visit: (node: Json) => Json): unknown {
  if (Array.isArray(value)) return value.map((item) => rewrite(item, visit));
  if (!value || typeof value !== "object") return value;
  const node: Json = {};
  for (const [key, child] of Object.entries(value)) node[key] = rewrite(child, visit);
  return visit(node);
}

/**
 * Sub-schemas written out again that are a component's schema become its $ref (a description
 * of their own kept). Again until nothing changes: a component whose parts became refs is
 * then recognised in its copies too (a job inside a page of jobs).
 */
function referToComponents(document: Json) {
  const schemas = document.components.schemas as Json;
  const key = ({ description: _, ...rest }: Json) => JSON.stringify(rest);
  for (let before = ""; before !== JSON.stringify(document); ) {
    before = JSON.stringify(document);
    const byShape = new Map(Object.entries(schemas).map(([name, schema]) => [key(schema as Json), name]));
    const refer = (node: Json, own?: string) => {
      if (node.type !== "object" && !node.anyOf) return node;
      const name = byShape.get(key(node));
      if (!name || name === own) return node;
      return node.description && node.description !== schemas[name].description
        ? { $ref: `#/components/schemas/${name}`, description: node.description }
        : { $ref: `#/components/schemas/${name}` };
    };
    // Inside each component only: a component that merely equals another stays itself.
    for (const [name, schema] of Object.entries(schemas) as [string, Json][])
      for (const [field, child] of Object.entries(schema)) schema[field] = rewrite(child, (node) => refer(node, name));
    document.paths = rewrite(document.paths, (node) => refer(node));
  }
}

const resolve = (document: Json, schema: Json | undefined): Json | undefined =>
  schema?.$ref?.startsWith("#/components/schemas/")
    ? document.components.schemas[schema.$ref.slice("#/components/schemas/".length)]
    : schema;

/** Shows a model's first example as the example of each body and answer it describes. */
function addExamples(document: Json, media: Json | undefined) {
  for (const content of Object.values(media ?? {}) as Json[]) {
    if (content.example !== undefined || content.examples) continue;
    const example = resolve(document, content.schema)?.examples?.[0];
    if (example !== undefined) content.example = example;
  }
}

/** The route's own `detail.responses` over the answers its `response` schemas made. */
function mergeResponses(operation: Json, declared: Json | undefined) {
  operation.responses ??= {};
  for (const [status, answer] of Object.entries(declared ?? {}) as [string, Json][]) {
    const made = operation.responses[status] ?? {};
    operation.responses[status] = {
      ...made,
      ...answer,
      ...(made.headers || answer.headers ? { headers: { ...made.headers, ...answer.headers } } : {}),
      ...(answer.content || made.content ? { content: answer.content ?? made.content } : {}),
    };
  }
}

/** The route's own `detail.parameters` beside those its schemas made; its own one wins where both name the same. */
function mergeParameters(operation: Json, declared: Json[] | undefined) {
  if (!declared?.length) return;
  const id = (parameter: Json) =>
    `${parameter.in} ${parameter.in === "header" ? String(parameter.name).toLowerCase() : parameter.name}`;
  const own = new Set(declared.map(id));
  const made = ((operation.parameters ?? []) as Json[]).filter((parameter) => !own.has(id(parameter)));
  operation.parameters = [...made, ...clone(declared)];
}

/** A JSON body the plugin could not place (its parser is the route's own): application/json, required unless optional. */
function completeBody(operation: Json, route: Route) {
  const body = route.hooks.body;
  if (!body || !operation.requestBody) return;
  const request = operation.requestBody as Json;
  if (!Object.keys(request.content ?? {}).length) {
    const schema = typeof body === "string" ? { $ref: `#/components/schemas/${body}` } : clone(body);
    request.content = { "application/json": { schema } };
  }
  if (typeof body === "object" && body[OPTIONAL] === "Optional") request.required = false;
  const declared = route.hooks.detail?.requestBody as Json | undefined;
  if (declared) Object.assign(request, { ...declared, content: { ...request.content, ...declared.content } });
}

/** Whether the plugin made the description up: an answer the route did not describe gets its schema's, else this. */
const madeUp = (description: string | undefined, status: string, schemaDescription?: string) =>
  !description || description === `Response for status ${status}` || description === schemaDescription;

/** Whether the operation can be called without credentials (its security has an empty alternative, or none). */
const anonymous = (operation: Json) =>
  !operation.security?.length || operation.security.some((need: Json) => !Object.keys(need).length);

/** Every error answer as a problem document with an example, its headers, and 401 where credentials are needed. */
function completeProblems(operation: Json, path: string, method: string) {
  const responses = operation.responses as Json;
  if (!anonymous(operation)) responses["401"] ??= {};
  for (const [status, answer] of Object.entries(responses) as [string, Json][]) {
    const code = Number(status);
    if (code < 400) continue;
    const media = answer.content?.["application/problem+json"] ?? answer.content?.["application/json"];
    if (answer.content && media?.schema?.$ref !== PROBLEM_REF) continue; // an answer of its own kind (readiness)
    if (madeUp(answer.description, status, Problem.description))
      answer.description = MEANINGS[status] ?? STATUS_CODES[code] ?? "a problem";
    const example = {
      type: "about:blank",
      title: STATUS_CODES[code],
      status: code,
      detail: answer.description,
      instance: path.replace(/\{(\w+)\}/g, (_, name) => (name === "id" ? "6740c2a1f0e4b3a1c2d3e4f5" : name)),
      ...(code === 422 ? { errors: [{ field: "limit", message: "must be an integer between 1 and 100" }] } : {}),
    };
    answer.headers = { ...answer.headers, ...problemHeaders(operation, code) };
    if (method === "head")
      delete answer.content; // a HEAD answer has no body
    else answer.content = { "application/problem+json": { schema: { $ref: PROBLEM_REF }, example } };
  }
}

function problemHeaders(operation: Json, status: number): Json {
  if (status === 401) {
    const basicOnly = operation.security?.every((need: Json) => "basic" in need);
    return {
      "WWW-Authenticate": {
        description: "how to authenticate",
        schema: { type: "string", example: basicOnly ? CHALLENGES.basic : CHALLENGES.bearer },
      },
    };
  }
  if (status === 429 || status === 503)
    return {
      "Retry-After": { description: "seconds to wait before trying again", schema: { type: "integer", minimum: 1 } },
    };
  return {};
}

/** Success answers: a generic description replaced by the model's own, and examples shown. */
function completeAnswers(document: Json, operation: Json) {
  for (const [status, answer] of Object.entries(operation.responses as Json) as [string, Json][]) {
    if (madeUp(answer.description, status))
      answer.description =
        resolve(document, answer.content?.["application/json"]?.schema)?.description ?? STATUS_CODES[Number(status)];
    addExamples(document, answer.content);
  }
  addExamples(document, operation.requestBody?.content);
  // A query parameter with a default may be left out.
  for (const parameter of (operation.parameters ?? []) as Json[])
    if (parameter.schema?.default !== undefined) parameter.required = false;
}

/** The tags used, those named first and in their order, each with its description. */
function listTags(document: Json, named: { name: string; description?: string }[] = []) {
  const used = new Set<string>();
  for (const methods of Object.values(document.paths) as Json[])
    for (const operation of Object.values(methods) as Json[]) for (const tag of operation.tags ?? []) used.add(tag);
  return [
    ...named.filter((tag) => used.has(tag.name)),
    ...[...used].filter((name) => !named.some((tag) => tag.name === name)).map((name) => ({ name })),
  ];
}

/** Security schemes no operation uses are left out (auth's document has no API keys). */
function usedSchemes(document: Json, schemes: Json) {
  const used = new Set<string>();
  for (const methods of Object.values(document.paths) as Json[])
    for (const operation of Object.values(methods) as Json[])
      for (const need of operation.security ?? []) for (const name of Object.keys(need)) used.add(name);
  return Object.fromEntries(Object.entries(schemes).filter(([name]) => used.has(name)));
}

/** Every route of the app `app` is (or is used by): Elysia keeps the accessor protected. */
const routesOf = (app: AnyElysia) => (app as unknown as { getGlobalRoutes(): Route[] }).getGlobalRoutes();
/** The models registered by name, the very objects Elysia validates with. */
const definitionsOf = (app: AnyElysia) =>
  (app as unknown as { getGlobalDefinitions(): { type: Record<string, object> } }).getGlobalDefinitions().type ?? {};

/** The complete document of `app`'s routes; `documentation`'s own parts (info, tags, security schemes, webhooks) as given. */
export function openapiDocument(app: AnyElysia, { documentation, exclude = [] }: DocumentOptions): Json {
  const generated = toOpenAPISchema(app, { paths: exclude, staticFile: false }) as Json;
  const { components: given = {}, tags, ...rest } = documentation;
  const document: Json = clone({
    openapi: "3.1.2",
    ...rest,
    paths: generated.paths,
    components: { ...given, schemas: { Problem, ...generated.components.schemas, ...given.schemas } },
  });
  const models = definitionsOf(app);
  for (const [name, model] of Object.entries(models))
    if (OPEN_MODELS.has(model)) delete document.components.schemas[name]?.additionalProperties;
  const routes = routesOf(app).filter((route) => !route.hooks?.detail?.hide);
  for (const route of routes) {
    const path = route.path.replace(/:([^/]+)/g, "{$1}");
    const operation = document.paths[path]?.[route.method.toLowerCase()] as Json | undefined;
    if (!operation) continue;
    mergeResponses(operation, route.hooks.detail?.responses);
    mergeParameters(operation, route.hooks.detail?.parameters);
    completeBody(operation, route);
  }
  // Schemas as plain JSON Schema: integers as integers, no Elysia `$id`s, copies of components as $refs.
  const plain = (node: Json) => typedEnum(literalEnum(uncoerce(node)));
  document.components.schemas = rewrite(document.components.schemas, plain);
  document.paths = rewrite(document.paths, plain);
  for (const schema of Object.values(document.components.schemas) as Json[]) delete schema.$id;
  referToComponents(document);
  for (const [path, methods] of Object.entries(document.paths) as [string, Json][])
    for (const [method, operation] of Object.entries(methods) as [string, Json][]) {
      operation.responses ??= {};
      completeProblems(operation, path, method);
      completeAnswers(document, operation);
      // No answers at all is said by leaving them out (an empty object is not valid OpenAPI); test/openapi.test.ts catches it.
      if (!Object.keys(operation.responses).length) delete operation.responses;
    }
  document.tags = listTags(document, tags);
  document.components.securitySchemes = usedSchemes(document, given.securitySchemes ?? {});
  return document;
}

/** Serves the document at `path` (hidden from itself), made again only when routes were added since. */
export const openapiJson = ({ path, ...options }: DocumentOptions & { path: string }) => {
  const plugin = new Elysia({ name: "openapi-document" });
  let made: { routes: number; document: Json } | undefined;
  return plugin.get(
    path,
    () => {
      const routes = routesOf(plugin).length;
      if (made?.routes !== routes) made = { routes, document: openapiDocument(plugin, options) };
      return made.document;
    },
    { detail: { hide: true } },
  );
};
