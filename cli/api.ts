// The command-line client's way to the gateway: the server's address, the credentials
// (an API key, else the login's access token, refreshed when it is about to expire), and
// answers turned into exit codes (cli/errors.ts).
//
// Which server: --server, else M3DIO_SERVER, else the one logged in to, else
// http://localhost:8080. Which credentials: M3DIO_API_KEY, else the stored API key, else
// the stored session. The account routes (API keys) take a session only.
import type { Session } from "../lib/account-models.ts";
import { DEFAULT_SERVER, readConfig, type StoredConfig, updateConfig } from "./config.ts";
import { answerError, CliError, EXIT, unreachable } from "./errors.ts";

export type SessionTokens = typeof Session.static;

/** Which credentials a route takes: none, an API key or a session, or a session only. */
export type AuthMode = "none" | "user-or-key" | "session";

export interface CallOptions extends RequestInit {
  auth?: AuthMode;
  /** Gives up after this long; null for none (uploads, downloads, live events). */
  timeoutMs?: number | null;
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** An access token is refreshed this long before it expires, so it cannot expire on the way. */
const EXPIRY_MARGIN_MS = 60_000;

/** The options every command shares (set before or after the command's name). */
export interface GlobalOptions {
  server?: string;
  quiet?: boolean;
}

/** The server's base URL, checked: a usage error if it is not an http(s) URL. */
export function serverUrl(flag: string | undefined, config: StoredConfig = readConfig()): string {
  const chosen = flag || process.env.M3DIO_SERVER || config.server || DEFAULT_SERVER;
  let url: URL;
  try {
    url = new URL(chosen);
  } catch {
    throw new CliError(EXIT.usage, `the server must be a URL such as ${DEFAULT_SERVER}, not ${chosen}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new CliError(EXIT.usage, `the server must be an http or https URL, not ${chosen}`);
  return url.href.replace(/\/+$/, "");
}

const fresh = (config: StoredConfig) =>
  config.accessToken !== undefined && Date.parse(config.accessExpiresAt ?? "") - EXPIRY_MARGIN_MS > Date.now();

export class Api {
  readonly server: string;

  constructor(globals: GlobalOptions) {
    this.server = serverUrl(globals.server);
  }

  /** Sends a request; any answer comes back, no answer at all is exit 4. */
  async send(route: string, { auth = "user-or-key", timeoutMs = DEFAULT_TIMEOUT_MS, ...init }: CallOptions = {}) {
    const credentials = await this.credentials(auth);
    const answer = await this.raw(route, init, timeoutMs, credentials?.header);
    // A cached access token the server no longer takes (its keys changed): one fresh try, if the body can be sent again.
    const replayable = init.body === undefined || typeof init.body === "string";
    if (answer.status !== 401 || credentials?.kind !== "session" || !replayable) return answer;
    await answer.body?.cancel();
    const again = await this.accessToken(credentials.token);
    return this.raw(route, init, timeoutMs, `Bearer ${again}`);
  }

  /** Sends a request and answers the response if it is a success; otherwise throws with the problem (`what` leads the message). */
  async call(route: string, what: string, options: CallOptions = {}): Promise<Response> {
    const answer = await this.send(route, options);
    if (!answer.ok) throw await answerError(answer, what);
    return answer;
  }

  /** `call`, with a JSON body if `body` is given, answering the JSON the server answers. */
  async json<T>(route: string, what: string, options: CallOptions & { json?: unknown } = {}): Promise<T> {
    const { json, ...init } = options;
    const headers = new Headers(init.headers);
    if (json !== undefined) headers.set("content-type", "application/json");
    const answer = await this.call(route, what, {
      ...init,
      headers,
      ...(json === undefined ? {} : { body: JSON.stringify(json) }),
    });
    return (await answer.json()) as T;
  }

  /** One request as it is, with no answer turned into exit 4. */
  private async raw(route: string, init: RequestInit, timeoutMs: number | null, authorization?: string) {
    const headers = new Headers(init.headers);
    if (authorization) headers.set("authorization", authorization);
    const signal = init.signal ?? (timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs));
    try {
      return await fetch(`${this.server}${route}`, { ...init, headers, signal });
    } catch (error) {
      throw unreachable(this.server, error);
    }
  }

  private async credentials(auth: AuthMode) {
    if (auth === "none") return undefined;
    const config = readConfig();
    const key = process.env.M3DIO_API_KEY || config.apiKey;
    if (auth === "user-or-key" && key) return { kind: "key" as const, header: `Bearer ${key}` };
    if (!config.refreshToken)
      throw new CliError(
        EXIT.auth,
        key
          ? "this needs a login with your email and password (an API key cannot do it): m3dio login"
          : "not logged in: m3dio login",
      );
    const token = await this.accessToken();
    return { kind: "session" as const, token, header: `Bearer ${token}` };
  }

  /**
   * An access token that has a minute left at least (or that is not `rejected`): the stored
   * one, else one from trading the refresh token, under the config's lock so that no two
   * runs trade the same refresh token (a reused one ends the session).
   */
  private async accessToken(rejected?: string): Promise<string> {
    const usable = (config: StoredConfig) =>
      fresh(config) && config.accessToken !== rejected ? config.accessToken : undefined;
    const stored = usable(readConfig());
    if (stored) return stored;
    return updateConfig(async (config) => {
      const meanwhile = usable(config); // another run refreshed while this one waited for the lock
      if (meanwhile) return { config, result: meanwhile };
      if (!config.refreshToken) throw new CliError(EXIT.auth, "not logged in: m3dio login");
      const answer = await this.raw(
        "/auth/refresh",
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ refreshToken: config.refreshToken }),
        },
        DEFAULT_TIMEOUT_MS,
      );
      if (answer.status === 401 || answer.status === 422)
        throw new CliError(EXIT.auth, "the login has ended (logged out, or the password changed): m3dio login");
      if (!answer.ok) throw await answerError(answer, "could not renew the login");
      const session = (await answer.json()) as SessionTokens;
      return { config: { ...config, ...storedSession(session) }, result: session.token };
    });
  }
}

/** The fields of config.json a session fills. */
export const storedSession = (session: SessionTokens): StoredConfig => ({
  refreshToken: session.refreshToken,
  accessToken: session.token,
  accessExpiresAt: session.expiresAt,
});
