// A user of m3dio over real HTTP, as the tests drive the gateway: register and log in,
// upload, read and poll a job, follow its live events. One client for every test that
// talks to a gateway on a port (the system's processes, the web stack); the shapes are
// the server's own (`import type`), so a changed view is a type error here, not a
// silently wrong copy.
//
//   const http = gatewayClient(system.gatewayUrl);
//   const user = await http.newUser("crash");
//   const job = await http.upload(user, video, "clip.mp4");
//   expect(await http.finished(user, job.id)).toMatchObject({ status: "done" });

import type { JobView } from "../../gateway.ts";
import type { Registered, Session } from "../../lib/account-models.ts";
import { EventStreamDecoder, type SseEvent } from "../../lib/event-stream.ts";

export type { JobView, SseEvent };
export type Token = typeof Session.static;
export type RegisteredUser = typeof Registered.static;

/** A registered, logged-in user: credentials, token and the header that carries it. */
export interface User {
  /** The user's id (the token's `sub`). */
  id: string;
  email: string;
  password: string;
  token: string;
  headers: { authorization: string };
}

/** A job's event stream read to its end (or until it broke): the answer's status and type, and every event. */
export interface FollowedStream {
  /** Undefined when the request itself failed (`error` then says why). */
  status?: number;
  contentType?: string | null;
  events: SseEvent[];
  /** Why the stream did not end cleanly: the request failed, the body broke, or it outlasted the timeout. */
  error?: unknown;
}

/** The Authorization header of HTTP Basic, as `curl -u email:password` sends it. */
export const basicAuth = (email: string, password: string) => `Basic ${btoa(`${email}:${password}`)}`;
/** The reference flow's login request, `curl -X POST -u email:password $GATEWAY/login`: POST it to /login. */
export const basicLogin = (email: string, password: string): RequestInit => ({
  method: "POST",
  headers: { authorization: basicAuth(email, password) },
});

export const TEST_PASSWORD = "a long enough password";
const JSON_HEADERS = { "content-type": "application/json" };
let users = 0;

/** Where a client finds the emails the system sent (the Resend stand-in's `received`). */
export interface Inbox {
  received: { to: string | string[]; text: string }[];
}

/**
 * A client for the gateway at `baseUrl`; every request is bounded by `requestTimeoutMs` unless it
 * brings its own signal. With an `inbox`, `newUser` verifies the address through the verification
 * email, as a person does (only verified addresses are told when a conversion ends).
 */
export function gatewayClient(
  baseUrl: string,
  { requestTimeoutMs = 20_000, inbox }: { requestTimeoutMs?: number; inbox?: Inbox } = {},
) {
  const call = (path: string, init: RequestInit = {}) =>
    fetch(path.startsWith("http") ? path : `${baseUrl}${path}`, {
      ...init,
      signal: init.signal ?? AbortSignal.timeout(requestTimeoutMs),
    });

  const register = (email: string, password: string) =>
    call("/auth/register", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify({ email, password }) });
  const login = (email: string, password: string) =>
    call("/auth/login", { method: "POST", headers: JSON_HEADERS, body: JSON.stringify({ email, password }) });

  /** Logs in (JSON) and answers the token; throws with the answer unless 200. */
  async function token(email: string, password: string): Promise<string> {
    const answer = await login(email, password);
    if (answer.status !== 200) throw new Error(`login answered ${answer.status}: ${await answer.text()}`);
    return ((await answer.json()) as Token).token;
  }

  /** Registers a fresh user (verified through the inbox, if there is one) and logs in; throws with the answer if a step fails. */
  async function newUser(prefix = "user", password = TEST_PASSWORD): Promise<User> {
    const email = `${prefix}-${++users}-${process.pid}-${Date.now()}@example.com`;
    const registered = await register(email, password);
    if (registered.status !== 201)
      throw new Error(`register answered ${registered.status}: ${await registered.text()}`);
    const { id } = (await registered.json()) as RegisteredUser;
    if (inbox) await verify(inbox, email);
    const bearer = await token(email, password);
    return { id: String(id), email, password, token: bearer, headers: { authorization: `Bearer ${bearer}` } };
  }

  /** Follows the verification email sent to `email` (waiting for it, at most 20 s). */
  async function verify({ received }: Inbox, email: string): Promise<void> {
    const link = /https?:\/\/\S+\/verify\?token=[\w-]+/;
    const deadline = Date.now() + 20_000;
    const find = () => received.find((mail) => [mail.to].flat().includes(email) && link.test(mail.text));
    for (; !find(); await Bun.sleep(25))
      if (Date.now() > deadline) throw new Error(`no verification email to ${email} within 20 s`);
    const sent = find()!;
    const token = new URL(link.exec(sent.text)![0]).searchParams.get("token");
    const answer = await call("/auth/verify", {
      method: "POST",
      headers: JSON_HEADERS,
      body: JSON.stringify({ token }),
    });
    if (answer.status !== 200) throw new Error(`verify answered ${answer.status}: ${await answer.text()}`);
  }

  /** POST the video as multipart `file` (to /jobs, or `route`): the raw answer, for the caller to check. */
  function postVideo(
    user: Pick<User, "headers">,
    video: Uint8Array | Blob,
    filename = "clip.mp4",
    { route = "/jobs", type = "video/mp4", init = {} as RequestInit } = {},
  ): Promise<Response> {
    const form = new FormData();
    form.append("file", new Blob([video as BlobPart], type ? { type } : {}), filename);
    return call(route, { method: "POST", headers: user.headers, body: form, ...init });
  }

  /** Uploads and expects 202; answers the job. */
  async function upload(
    user: Pick<User, "headers">,
    video: Uint8Array | Blob,
    filename = "clip.mp4",
    options: Parameters<typeof postVideo>[3] = {},
  ): Promise<JobView> {
    const answer = await postVideo(user, video, filename, options);
    const text = await answer.text();
    if (answer.status !== 202) throw new Error(`upload answered ${answer.status}: ${text}`);
    return JSON.parse(text) as JobView;
  }

  /** GET /jobs/:id; throws with the answer unless 200. */
  async function job(user: Pick<User, "headers">, id: string): Promise<JobView> {
    const answer = await call(`/jobs/${id}`, { headers: user.headers });
    if (answer.status !== 200) throw new Error(`GET /jobs/${id} answered ${answer.status}: ${await answer.text()}`);
    return (await answer.json()) as JobView;
  }

  /**
   * Polls GET /jobs/:id every `everyMs` until the job is done or failed: every state seen, in
   * order, and every other answer (a status other than 200, a failed request), on which polling
   * goes on (a fault test may be breaking things); the caller decides whether those may happen.
   */
  async function poll(
    user: Pick<User, "headers">,
    id: string,
    timeoutMs = 60_000,
    everyMs = 200,
  ): Promise<{ states: JobView[]; others: string[] }> {
    const deadline = Date.now() + timeoutMs;
    const states: JobView[] = [];
    const others: string[] = [];
    for (;;) {
      try {
        const answer = await call(`/jobs/${id}`, { headers: user.headers, signal: AbortSignal.timeout(5000) });
        if (answer.status === 200) {
          const view = (await answer.json()) as JobView;
          states.push(view);
          if (view.status === "done" || view.status === "failed") return { states, others };
        } else others.push(`${answer.status} ${await answer.text()}`);
      } catch (error) {
        others.push((error as Error).message);
      }
      if (Date.now() > deadline)
        throw new Error(
          `job ${id} not finished within ${timeoutMs} ms; last: ${JSON.stringify(states.at(-1) ?? others.at(-1) ?? "no answer")}`,
        );
      await Bun.sleep(everyMs);
    }
  }

  /** The job once it is done or failed (answers other than 200 while polling are tolerated). */
  async function finished(user: Pick<User, "headers">, id: string, timeoutMs = 60_000): Promise<JobView> {
    return (await poll(user, id, timeoutMs)).states.at(-1)!;
  }

  /** Opens GET /jobs/:id/events and reads it until the server ends it (after done or failed); never throws. */
  async function follow(user: Pick<User, "headers">, id: string, timeoutMs = 60_000): Promise<FollowedStream> {
    const deadline = Date.now() + timeoutMs;
    let answer: Response;
    try {
      answer = await call(`/jobs/${id}/events`, {
        headers: { ...user.headers, accept: "text/event-stream" },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      return { events: [], error };
    }
    const stream = { status: answer.status, contentType: answer.headers.get("content-type") };
    if (answer.status !== 200)
      return { ...stream, events: [], error: new Error(`answered ${answer.status}: ${await answer.text()}`) };
    return { ...stream, ...(await readEvents(answer, Math.max(1, deadline - Date.now()))) };
  }

  return { baseUrl, call, register, login, token, newUser, verify, postVideo, upload, job, poll, finished, follow };
}

export type GatewayClient = ReturnType<typeof gatewayClient>;

/** The job states a stream's `status` events carry, in order. */
export const statesOf = (events: SseEvent[]): JobView[] =>
  events.filter((event) => event.event === "status").map((event) => JSON.parse(event.data) as JobView);

/**
 * Reads a text/event-stream to its end: every event, and, if the body broke or did not end
 * within `timeoutMs`, the error (the events before it are kept). Never throws.
 */
export async function readEvents(
  response: Response,
  timeoutMs: number,
): Promise<{ events: SseEvent[]; error?: unknown }> {
  // Over HTTP the body is bytes; from app.handle (in-process) Elysia's stream may hand out strings.
  const reader = (response.body as ReadableStream<Uint8Array | string>).getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  const stream = new EventStreamDecoder();
  let timer: Timer | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    for (;;) {
      const chunk = await Promise.race([reader.read(), timeout]);
      if (chunk === "timeout")
        return { events, error: new Error(`the event stream did not end within ${timeoutMs} ms`) };
      if (chunk.done) break;
      const text = typeof chunk.value === "string" ? chunk.value : decoder.decode(chunk.value, { stream: true });
      events.push(...stream.push(text));
    }
    events.push(...stream.end());
    return { events };
  } catch (error) {
    return { events, error };
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}
