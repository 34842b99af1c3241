// Reading a service's OpenAPI document as a client would rely on it: what is missing from
// each operation (the rules of test/openapi.test.ts), and whether a real answer is one the
// document describes (its status, content type, headers and, with ajv, its body).
import Ajv2020, { type ValidateFunction } from "ajv/dist/2020";

// biome-ignore lint/suspicious/noExplicitAny: the document is plain JSON
export type Json = Record<string, any>;
export const METHODS = ["get", "head", "post", "put", "patch", "delete"] as const;
const PROBLEM_REF = "#/components/schemas/Problem";

/** Every operation of the document, as `METHOD /path` with the operation. */
export const operationsOf = (document: Json) =>
  Object.entries(document.paths as Json).flatMap(([path, methods]) =>
    METHODS.filter((method) => methods[method]).map((method) => ({
      name: `${method.toUpperCase()} ${path}`,
      path,
      method,
      operation: methods[method] as Json,
    })),
  );

/** A schema that says more than "any text": a value that can be refused (422). */
function constrained(schema: Json | undefined): boolean {
  if (!schema) return false;
  const { description: _d, examples: _e, example: _x, default: _f, ...rest } = schema;
  return JSON.stringify(rest) !== JSON.stringify({ type: "string" });
}

/** Whether the operation takes input that can fail validation: a body, a required or typed parameter. */
export const validatesInput = (operation: Json) =>
  Boolean(operation.requestBody) ||
  ((operation.parameters ?? []) as Json[]).some(
    (parameter) => (parameter.in === "query" && parameter.required) || constrained(parameter.schema),
  );

/**
 * What the operation's documentation lacks, in words (empty when it is complete): a summary,
 * a tag, a success answer, 401 where credentials are needed, 422 where input is validated,
 * every problem as application/problem+json referencing Problem (but HEAD's: no body), with
 * WWW-Authenticate on 401 and Retry-After on 429 and 503, and a body's schema with an example.
 * `ownKinds` lists answers that are not problems ("GET /health/ready 503").
 */
export function missingDocs(name: string, operation: Json, ownKinds: string[] = []): string[] {
  const missing: string[] = [];
  const responses = (operation.responses ?? {}) as Json;
  const statuses = Object.keys(responses);
  if (!operation.summary?.trim()) missing.push("a summary");
  if (!operation.tags?.length) missing.push("a tag");
  if (!statuses.some((status) => /^2\d\d$/.test(status))) missing.push("a success answer (2xx)");
  if (operation.security?.some((need: Json) => Object.keys(need).length) && !responses["401"])
    missing.push("401 (it takes credentials)");
  if (validatesInput(operation) && !responses["422"]) missing.push("422 (it validates input)");
  for (const status of statuses) {
    const answer = responses[status] as Json;
    if (!answer.description?.trim()) missing.push(`${status}: a description`);
    if (Number(status) < 400 || ownKinds.includes(`${name} ${status}`)) continue;
    const header = { 401: "WWW-Authenticate", 429: "Retry-After", 503: "Retry-After" }[status];
    if (header && !answer.headers?.[header]) missing.push(`${status}: the ${header} header`);
    if (name.startsWith("HEAD ")) continue; // no body, so no problem document
    const media = Object.keys(answer.content ?? {});
    if (media.join() !== "application/problem+json" || answer.content[media[0]!].schema?.$ref !== PROBLEM_REF)
      missing.push(`${status}: application/problem+json referencing Problem (has ${media.join(", ") || "no content"})`);
    if (answer.content?.["application/problem+json"]?.example === undefined) missing.push(`${status}: an example`);
  }
  if (operation.requestBody) {
    const content = (operation.requestBody.content ?? {}) as Json;
    const media = Object.entries(content);
    if (!media.length) missing.push("the request body's content types");
    for (const [type, body] of media) if (!body.schema) missing.push(`a schema for the ${type} body`);
    const example = (body: Json) => body.example !== undefined || body.examples !== undefined;
    if (media.length && !media.some(([, body]) => example(body))) missing.push("an example of the request body");
    if (content["application/json"] && !example(content["application/json"]))
      missing.push("an example of the JSON body");
  }
  return missing;
}

/** Where the document types a value "a string or an integer" (Elysia's coercion leaking into the document). */
export function coercedIntegers(value: unknown, at = "#"): string[] {
  if (Array.isArray(value)) return value.flatMap((item, index) => coercedIntegers(item, `${at}/${index}`));
  if (!value || typeof value !== "object") return [];
  const node = value as Json;
  const here = node.type === "string" && ["integer", "numeric"].includes(node.format) ? [at] : [];
  return [...here, ...Object.entries(node).flatMap(([key, child]) => coercedIntegers(child, `${at}/${key}`))];
}

/** Every `$ref` of the document that names nothing in it. */
export function danglingRefs(document: Json): string[] {
  const refs: string[] = [];
  const walk = (value: unknown) => {
    if (Array.isArray(value)) return value.forEach(walk);
    if (!value || typeof value !== "object") return;
    for (const [key, child] of Object.entries(value)) {
      if (key === "$ref" && typeof child === "string") refs.push(child);
      else walk(child);
    }
  };
  walk(document);
  const resolves = (ref: string) =>
    ref
      .replace(/^#\//, "")
      .split("/")
      .reduce<unknown>((node, part) => (node as Json | undefined)?.[part], document) !== undefined;
  return [...new Set(refs)].filter((ref) => !resolves(ref));
}

const DEFS = "https://m3dio.test/openapi.json";

/**
 * Checks real answers against the document: `answer(method, path, response)` finds the
 * operation and the status, and answers what does not fit (empty when the answer is one
 * the document describes): an undeclared status or content type, a declared header that
 * is missing, a JSON body its schema refuses (ajv, draft 2020-12, the document's formats).
 */
export function answerChecker(document: Json) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat("date-time", (text: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(text));
  ajv.addFormat("uri", (text: string) => URL.canParse(text));
  ajv.addFormat("email", /^[^@\s]+@[^@\s]+$/);
  ajv.addFormat("binary", () => true);
  // The document's components as one schema, its refs absolute, so any schema of the document can point into it.
  const absolute = (schema: unknown) =>
    JSON.parse(JSON.stringify(schema).replaceAll('"#/components/schemas/', `"${DEFS}#/$defs/`));
  ajv.addSchema({ $id: DEFS, $defs: absolute(document.components.schemas) });
  const compiled = new Map<string, ValidateFunction>();
  const validator = (schema: Json) => {
    const key = JSON.stringify(schema);
    if (!compiled.has(key)) compiled.set(key, ajv.compile(absolute(schema)));
    return compiled.get(key)!;
  };

  /** What `value` lacks to fit `schema`, in ajv's words. */
  const mismatches = (schema: Json, value: unknown) => {
    const validate = validator(schema);
    return validate(value)
      ? []
      : (validate.errors ?? []).map((error) => `${error.instancePath || "/"} ${error.message}`);
  };

  function operation(method: string, path: string): Json {
    const found = operationsOf(document).find((entry) => entry.method === method.toLowerCase() && entry.path === path);
    if (!found) throw new Error(`the document has no ${method} ${path}`);
    return found.operation;
  }

  /** The media type the answer declares for `contentType`, allowing the document's wildcards (audio/*). */
  const declaredType = (content: Json, contentType: string) => {
    const type = contentType.split(";")[0]!.trim();
    return Object.keys(content).find(
      (key) => key === type || (key.endsWith("/*") && type.startsWith(key.slice(0, -1))),
    );
  };

  async function answer(method: string, path: string, response: Response): Promise<string[]> {
    const declared = (operation(method, path).responses as Json)[String(response.status)] as Json | undefined;
    if (!declared) return [`status ${response.status} is not declared`];
    const problems: string[] = [];
    // Every declared header is sent, unless the document says it may not be (`required: false`).
    for (const [header, about] of Object.entries((declared.headers ?? {}) as Json))
      if (about.required !== false && !response.headers.has(header))
        problems.push(`header ${header} is declared but missing`);
    const content = (declared.content ?? {}) as Json;
    if (!Object.keys(content).length) {
      if ((await response.arrayBuffer()).byteLength) problems.push("a body where the document declares none");
      return problems;
    }
    const contentType = response.headers.get("content-type") ?? "";
    const type = declaredType(content, contentType);
    if (!type) return [...problems, `content type ${contentType} is not declared (${Object.keys(content).join(", ")})`];
    if (!/json$/.test(type)) return problems;
    return [...problems, ...mismatches(content[type].schema, await response.json())];
  }

  return { operation, answer, mismatches };
}
