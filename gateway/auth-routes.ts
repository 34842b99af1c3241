// Registration and login belong to auth: the gateway forwards them (a JSON body, or an
// HTTP Basic header) and passes auth's answer back with the headers a client needs.
// Auth not answering is a 503; tokens already given out keep working (bearer.ts).
// Auth limits logins and registrations per client address, and only the gateway sees
// the client: it names the address (client-address.ts) with the shared GATEWAY_SECRET.
import { Elysia, t } from "elysia";
import { CLIENT_ADDRESS_HEADER, GATEWAY_SECRET_HEADER } from "../lib/client-address.ts";
import { limitedJson } from "../lib/json.ts";
import type { Logger } from "../lib/log.ts";
import { Unauthorized, Unavailable } from "../lib/problem.ts";
import { clientOf, parseProxies } from "./client-address.ts";
import { authDocs, Credentials, gatewayModels } from "./models.ts";

const AUTH_TIMEOUT_MS = 5000;
const PASSED_ON = ["content-type", "retry-after", "www-authenticate"];

type Forward = (path: string, request: Request, body: unknown, client: string | undefined) => Promise<Response>;

/**
 * POSTs `body` (and the caller's Authorization header) to auth at `path`, naming the
 * client's address and showing the secret; answers auth's response.
 */
export function authForwarder(authUrl: string, log: Logger, secret?: string): Forward {
  return async (path, request, body, client) => {
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      const authorization = request.headers.get("authorization");
      if (authorization) headers.authorization = authorization;
      if (client) headers[CLIENT_ADDRESS_HEADER] = client;
      if (secret) headers[GATEWAY_SECRET_HEADER] = secret;
      const answer = await fetch(new URL(path, authUrl), {
        method: "POST",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(AUTH_TIMEOUT_MS),
      });
      const passOn = PASSED_ON.flatMap((name) => {
        const value = answer.headers.get(name);
        return value ? [[name, value] as [string, string]] : [];
      });
      return new Response(await answer.arrayBuffer(), { status: answer.status, headers: passOn });
    } catch (error) {
      log.warn({ event: "auth.unreachable", err: error, path }, "auth did not answer");
      throw new Unavailable("the login service is not answering; try again shortly");
    }
  };
}

/** The reference system's login: HTTP Basic in, the bare token out as text. */
async function bareTokenLogin(forward: Forward, request: Request, client: string | undefined): Promise<Response> {
  if (!/^Basic /i.test(request.headers.get("authorization") ?? ""))
    throw new Unauthorized("send HTTP Basic credentials");
  const answer = await forward("/login", request, undefined, client);
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
}

export const authRoutes = ({ authUrl, log, gatewaySecret, trustedProxies = "" }: AuthRouteOptions) => {
  const forward = authForwarder(authUrl, log, gatewaySecret);
  const proxies = parseProxies(trustedProxies);
  return new Elysia({ name: "gateway.auth-routes" })
    .use(gatewayModels)
    .post(
      "/auth/register",
      ({ request, body, server }) => forward("/register", request, body, clientOf(request, server, proxies)),
      {
        parse: limitedJson(),
        body: "Credentials",
        response: { 201: "Account", 409: "Problem", 422: "Problem", 429: "Problem", 503: "Problem" },
        detail: authDocs.register,
      },
    )
    .post(
      "/auth/login",
      ({ request, body, server }) => forward("/login", request, body, clientOf(request, server, proxies)),
      {
        parse: limitedJson(),
        body: t.Optional(Credentials), // HTTP Basic instead needs no body
        response: { 200: "Token", 401: "Problem", 422: "Problem", 429: "Problem", 503: "Problem" },
        detail: authDocs.login,
      },
    )
    .post("/login", ({ request, server }) => bareTokenLogin(forward, request, clientOf(request, server, proxies)), {
      detail: authDocs.basicLogin,
    });
};
