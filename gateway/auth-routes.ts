// The account routes belong to auth: the gateway forwards them (a JSON body, an HTTP
// Basic header, the bearer token) and passes auth's answer back with the headers a
// client needs. Auth not answering is a 503; tokens already given out keep working
// (bearer.ts). Auth limits logins and registrations per client address, and only the
// gateway sees the client: it names the address (client-address.ts) with the shared
// GATEWAY_SECRET. The bearer routes are checked here first (bearer.ts: a bad token is
// 401 without a call to auth); auth then checks the forwarded token again itself, and
// that the account still exists, so it never acts on a user id it is merely told. An API
// key is refused on every one of these (403, bearer.ts): keys are made and deleted here,
// with a login's token, so a leaked key cannot make more or hide itself.
import { Elysia, t } from "elysia";
import { ApiKeyParams, LoginBody } from "../lib/account-models.ts";
import { CLIENT_ADDRESS_HEADER, GATEWAY_SECRET_HEADER } from "../lib/client-address.ts";
import { limitedJson } from "../lib/json.ts";
import type { Logger } from "../lib/log.ts";
import { CHALLENGES, Unauthorized, Unavailable } from "../lib/problem.ts";
import { accountModels, accountAuthDocs as docs } from "./account-models.ts";
import { bearer, type TokenVerifier } from "./bearer.ts";
import { clientOf, parseProxies } from "./client-address.ts";
import { gatewayModels } from "./models.ts";

const AUTH_TIMEOUT_MS = 5000;
const PASSED_ON = ["content-type", "retry-after", "www-authenticate"];

type Forward = (
  path: string,
  request: Request,
  body: unknown,
  client: string | undefined,
  method?: "POST" | "DELETE" | "GET",
) => Promise<Response>;

/**
 * Sends `body` (and the caller's Authorization header) to auth at `path` (POST unless
 * told), naming the client's address and showing the secret; answers auth's response.
 */
export function authForwarder(authUrl: string, log: Logger, secret?: string): Forward {
  return async (path, request, body, client, method = "POST") => {
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      const authorization = request.headers.get("authorization");
      if (authorization) headers.authorization = authorization;
      if (client) headers[CLIENT_ADDRESS_HEADER] = client;
      if (secret) headers[GATEWAY_SECRET_HEADER] = secret;
      const answer = await fetch(new URL(path, authUrl), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(AUTH_TIMEOUT_MS),
      });
      const passOn = PASSED_ON.flatMap((name) => {
        const value = answer.headers.get(name);
        return value ? [[name, value] as [string, string]] : [];
      });
      return new Response(await asOurs(answer, request), { status: answer.status, headers: passOn });
    } catch (error) {
      log.warn({ event: "auth.unreachable", err: error, path }, "auth did not answer");
      throw new Unavailable("the login service is not answering; try again shortly");
    }
  };
}

/** auth's answer's body; a problem names the gateway's path as its `instance`, the one the client asked for, not auth's. */
async function asOurs(answer: Response, request: Request): Promise<ArrayBuffer | string> {
  if (!answer.headers.get("content-type")?.startsWith("application/problem+json")) return answer.arrayBuffer();
  const problem = (await answer.json()) as Record<string, unknown>;
  return JSON.stringify({ ...problem, instance: new URL(request.url).pathname });
}

/** The reference system's login: HTTP Basic in, the bare token out as text; a refusal asks for Basic credentials again. */
async function bareTokenLogin(forward: Forward, request: Request, client: string | undefined): Promise<Response> {
  if (!/^Basic /i.test(request.headers.get("authorization") ?? ""))
    throw new Unauthorized("send HTTP Basic credentials", CHALLENGES.basic);
  const answer = await forward("/login", request, undefined, client);
  if (answer.status === 401) answer.headers.set("www-authenticate", CHALLENGES.basic);
  if (!answer.ok) return answer;
  const { token } = (await answer.json()) as { token: string };
  return new Response(token, { headers: { "content-type": "text/plain; charset=utf-8" } });
}

export interface AuthRouteOptions {
  authUrl: string;
  log: Logger;
  /** GATEWAY_SECRET: shown to auth beside the client's address. */
  gatewaySecret?: string;
  /** TRUSTED_PROXIES: proxies in front of the gateway whose X-Forwarded-For names the client. */
  trustedProxies?: string;
  /** Checks the bearer token of the account routes that need one. */
  verifier: TokenVerifier;
}

export const authRoutes = ({ authUrl, log, gatewaySecret, trustedProxies = "", verifier }: AuthRouteOptions) => {
  const forward = authForwarder(authUrl, log, gatewaySecret);
  const proxies = parseProxies(trustedProxies);
  /** A route whose JSON body auth takes as it is. */
  const passOn =
    (path: string, method?: "POST" | "DELETE" | "GET") =>
    ({ request, body, server }: { request: Request; body: unknown; server: Parameters<typeof clientOf>[1] }) =>
      forward(path, request, body, clientOf(request, server, proxies), method);
  const json = { parse: limitedJson() };
  return new Elysia({ name: "gateway.auth-routes" })
    .use(gatewayModels)
    .use(accountModels)
    .use(bearer(verifier))
    .post("/auth/register", passOn("/register"), {
      ...json,
      body: "Credentials",
      response: { 201: "Registered", 409: "Problem", 422: "Problem", 429: "Problem", 503: "Problem" },
      detail: docs.register,
    })
    .post("/auth/login", passOn("/login"), {
      ...json,
      body: t.Optional(LoginBody), // HTTP Basic instead needs no body
      response: { 200: "Session", 401: "Problem", 422: "Problem", 429: "Problem", 503: "Problem" },
      detail: docs.login,
    })
    .post("/login", ({ request, server }) => bareTokenLogin(forward, request, clientOf(request, server, proxies)), {
      detail: docs.basicLogin,
    })
    .post("/auth/verify", passOn("/verify"), {
      ...json,
      body: "VerifyBody",
      response: { 200: "Verified", 422: "Problem", 503: "Problem" },
      detail: docs.verify,
    })
    .post("/auth/refresh", passOn("/refresh"), {
      ...json,
      body: "RefreshBody",
      response: { 200: "Session", 401: "Problem", 422: "Problem", 503: "Problem" },
      detail: docs.refresh,
    })
    .post("/auth/logout", passOn("/logout"), {
      ...json,
      body: "RefreshBody",
      detail: docs.logout,
    })
    .post("/auth/password/forgot", passOn("/password/forgot"), {
      ...json,
      body: "ForgotBody",
      detail: docs.forgot,
    })
    .post("/auth/password/reset", passOn("/password/reset"), {
      ...json,
      body: "ResetBody",
      detail: docs.reset,
    })
    .guard({ auth: true }, (app) =>
      app
        .post("/auth/verify/resend", passOn("/verify/resend"), {
          detail: docs.resend,
        })
        .post("/auth/password", passOn("/password"), {
          ...json,
          body: "ChangePasswordBody",
          detail: docs.changePassword,
        })
        .delete("/auth/account", passOn("/account", "DELETE"), {
          ...json,
          body: "DeleteAccountBody",
          detail: docs.deleteAccount,
        })
        .post("/auth/keys", passOn("/keys"), {
          ...json,
          body: "NewApiKeyBody",
          response: {
            201: "CreatedApiKey",
            401: "Problem",
            403: "Problem",
            409: "Problem",
            422: "Problem",
            503: "Problem",
          },
          detail: docs.createKey,
        })
        .get("/auth/keys", passOn("/keys", "GET"), {
          response: { 200: "ApiKeyList", 401: "Problem", 403: "Problem", 503: "Problem" },
          detail: docs.listKeys,
        })
        .delete(
          "/auth/keys/:id",
          ({ request, params, server }) =>
            forward(`/keys/${params.id}`, request, undefined, clientOf(request, server, proxies), "DELETE"),
          { params: ApiKeyParams, detail: docs.deleteKey },
        ),
    );
};
