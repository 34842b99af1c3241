// Registration and login belong to auth: the gateway forwards them (a JSON body, or an
// HTTP Basic header) and passes auth's answer back with the headers a client needs.
// Auth not answering is a 503; tokens already given out keep working (bearer.ts).
import { Elysia, t } from "elysia";
import { limitedJson } from "../lib/json.ts";
import type { Logger } from "../lib/log.ts";
import { Unauthorized, Unavailable } from "../lib/problem.ts";
import { authDocs, Credentials, gatewayModels } from "./models.ts";

const AUTH_TIMEOUT_MS = 5000;
const PASSED_ON = ["content-type", "retry-after", "www-authenticate"];

type Forward = (path: string, request: Request, body: unknown) => Promise<Response>;

/** POSTs `body` (and the caller's Authorization header) to auth at `path`; answers auth's response. */
export function authForwarder(authUrl: string, log: Logger): Forward {
  return async (path, request, body) => {
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      const authorization = request.headers.get("authorization");
      if (authorization) headers.authorization = authorization;
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
async function bareTokenLogin(forward: Forward, request: Request): Promise<Response> {
  if (!/^Basic /i.test(request.headers.get("authorization") ?? ""))
    throw new Unauthorized("send HTTP Basic credentials");
  const answer = await forward("/login", request, undefined);
  if (!answer.ok) return answer;
  const { token } = (await answer.json()) as { token: string };
  return new Response(token, { headers: { "content-type": "text/plain; charset=utf-8" } });
}

export const authRoutes = ({ authUrl, log }: { authUrl: string; log: Logger }) => {
  const forward = authForwarder(authUrl, log);
  return new Elysia({ name: "gateway.auth-routes" })
    .use(gatewayModels)
    .post("/auth/register", ({ request, body }) => forward("/register", request, body), {
      parse: limitedJson(),
      body: "Credentials",
      response: { 201: "Account", 409: "Problem", 422: "Problem", 503: "Problem" },
      detail: authDocs.register,
    })
    .post("/auth/login", ({ request, body }) => forward("/login", request, body), {
      parse: limitedJson(),
      body: t.Optional(Credentials), // HTTP Basic instead needs no body
      response: { 200: "Token", 401: "Problem", 429: "Problem", 503: "Problem" },
      detail: authDocs.login,
    })
    .post("/login", ({ request }) => bareTokenLogin(forward, request), { detail: authDocs.basicLogin });
};
