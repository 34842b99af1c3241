// gateway: the only public entry. Forwards registration and login to auth,
// verifies tokens locally (JWKS), streams uploads into GridFS, records jobs,
// publishes them to the `video` queue, and serves status, live progress, the MP3,
// the OpenAPI document with Swagger UI, and the web page.
import { Type } from "@sinclair/typebox";
import { create as contentDisposition } from "content-disposition";
import { Elysia, sse, t } from "elysia";
import { Counter } from "prom-client";
import { bearer, type Caller, jwksVerifier, type TokenVerifier } from "./gateway/bearer.ts";
import { jobIntake } from "./gateway/intake.ts";
import { LogLevel, loadConfig, Port, Url } from "./lib/config.ts";
import { apiDocs } from "./lib/docs.ts";
import { type FileStore, fileStore, mp3Filename } from "./lib/files.ts";
import { health } from "./lib/health.ts";
import { JOB_PHASES, JOB_STATUSES, type Job, type JobStore, jobStore, parseJobId } from "./lib/jobs.ts";
import { limitedJson } from "./lib/json.ts";
import { MAX_LINK_LENGTH, parseAllowList } from "./lib/link.ts";
import { createLogger, type Logger } from "./lib/log.ts";
import { createMetrics } from "./lib/metrics.ts";
import { connectMongo, isMongoUnavailable, type Mongo } from "./lib/mongo.ts";
import {
  Conflict,
  NotFound,
  Problem,
  problemResponse,
  problems,
  Unauthorized,
  Unavailable,
  Unprocessable,
} from "./lib/problem.ts";
import { connectQueue, type Queue } from "./lib/queue.ts";
import { stopServing } from "./lib/shutdown.ts";
import { webPage } from "./web/serve.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const GatewayConfig = Type.Object({
  PORT: Port(8080),
  LOG_LEVEL: LogLevel,
  AUTH_URL: Url(["http", "https"], "http://127.0.0.1:3001", "an http(s):// URL of the auth service"),
  MONGODB_URL: Url(["mongodb", "mongodb\\+srv"], "mongodb://127.0.0.1:27017/m3dio", "a mongodb:// URL"),
  AMQP_URL: Url(["amqp", "amqps"], "amqp://guest:guest@127.0.0.1:5672", "an amqp:// URL"),
  MAX_UPLOAD_BYTES: Type.Integer({ minimum: 1, default: 2 * 1024 ** 3, description: "largest video accepted" }),
  PUBLIC_URL: Url(["http", "https"], "http://localhost:8080", "the gateway's public http(s):// address"),
  URL_ALLOW_HOSTS: Type.String({
    default: "",
    description: "hosts or CIDRs links may reach (the same list as the converter's)",
  }),
});
export type GatewayConfig = typeof GatewayConfig.static;

const AUTH_TIMEOUT_MS = 5000;
// The event stream re-reads the job: quickly while it is changing (a short job is done
// within a few hundred ms), slowly once it sits still (a long queue wait costs little).
const SSE_POLL_FAST_MS = 100;
const SSE_POLL_MS = 500;
const SSE_FAST_FOR_MS = 5000;
const SSE_KEEPALIVE_MS = 15_000;

// ── models ──────────────────────────────────────────────────────────────────
export const JobView = t.Object({
  id: t.String(),
  status: t.UnionEnum(JOB_STATUSES),
  phase: t.Optional(
    t.UnionEnum(JOB_PHASES, {
      description:
        "while converting (and after, the last one): `downloading` a link's video, then `converting` it; absent while queued",
    }),
  ),
  progress: t.Integer({
    minimum: 0,
    maximum: 100,
    description:
      "the whole job: for a link, downloading fills 0-50 (when the server tells the size) and converting 50-100; for an upload, converting fills 0-100",
  }),
  error: t.Optional(t.String({ description: "why the job failed, in words for a person" })),
  source: t.Object({
    kind: t.Union([t.Literal("upload"), t.Literal("url")]),
    filename: t.String(),
    url: t.Optional(t.String({ description: "the link the video comes from (kind url)" })),
    bytes: t.Integer({ description: "the video's size; 0 for a link until it is downloaded" }),
    contentType: t.String(),
  }),
  audio: t.Optional(
    t.Object({
      bytes: t.Integer(),
      durationSec: t.Number(),
      fileId: t.String({ description: "the MP3's file id, for GET /download?fid=" }),
    }),
  ),
  createdAt: t.String({ format: "date-time" }),
  updatedAt: t.String({ format: "date-time" }),
  links: t.Object({ self: t.String(), events: t.String(), audio: t.String() }),
});
export type JobView = typeof JobView.static;
const JobPage = t.Object({
  items: t.Array(JobView),
  nextCursor: t.Optional(t.String({ description: "pass as `cursor` for the next page" })),
});
const AuthBody = t.Object({ email: t.String(), password: t.String() });
const Token = t.Object({ token: t.String(), expiresAt: t.String({ format: "date-time" }) });

// ── errors ──────────────────────────────────────────────────────────────────

/** MongoDB or the broker being away is a 503 the client may retry, not a 500. */
function isStoreUnavailable(error: unknown): boolean {
  return isMongoUnavailable(error) || (error as { name?: string })?.name === "QueueUnavailable";
}

// ── the app ─────────────────────────────────────────────────────────────────
export interface GatewayDeps {
  config: GatewayConfig;
  log: Logger;
  mongo: Mongo;
  queue: Pick<Queue, "publish" | "ping">;
  verifier: TokenVerifier & { reload?(): Promise<unknown>; fresh?: boolean };
}

export function createGateway({ config, log, mongo, queue, verifier }: GatewayDeps) {
  const files: FileStore = fileStore(mongo.db, { log });
  const jobs: JobStore = jobStore(mongo.db);
  const metrics = createMetrics("gateway");
  const intake = jobIntake({
    files,
    jobs,
    queue,
    log,
    maxUploadBytes: config.MAX_UPLOAD_BYTES,
    allowList: parseAllowList(config.URL_ALLOW_HOSTS),
    uploadedBytes: new Counter({
      name: "gateway_upload_bytes_total",
      help: "video bytes stored",
      registers: [metrics.registry],
    }),
    jobsCreated: new Counter({
      name: "gateway_jobs_created_total",
      help: "jobs queued",
      registers: [metrics.registry],
    }),
  });
  const { undo } = intake;
  let keysLoaded = false;
  // On SIGTERM live event streams end (cleanly; clients reopen them elsewhere), or the
  // server, which lets requests in flight finish, would wait for jobs that may never end.
  const draining = new AbortController();
  const drained = new Promise<void>((resolve) =>
    draining.signal.addEventListener("abort", () => resolve(), { once: true }),
  );

  const view = (job: Job): JobView => ({
    id: job._id.toHexString(),
    status: job.status,
    ...(job.phase ? { phase: job.phase } : {}),
    progress: job.progress,
    ...(job.error ? { error: job.error } : {}),
    source: job.source,
    ...(job.audio && job.audioFileId ? { audio: { ...job.audio, fileId: job.audioFileId.toHexString() } } : {}),
    createdAt: job.createdAt.toISOString(),
    updatedAt: job.updatedAt.toISOString(),
    links: { self: `/jobs/${job._id}`, events: `/jobs/${job._id}/events`, audio: `/jobs/${job._id}/audio` },
  });

  async function ownedJob(id: string, user: Caller): Promise<Job> {
    const jobId = parseJobId(id);
    const job = jobId && (await jobs.getOwned(jobId, user.id));
    if (!job) throw new NotFound("no such job");
    return job;
  }

  async function audioResponse(job: Job, request: Request): Promise<Response> {
    if (job.status !== "done" || !job.audioFileId) {
      throw new Conflict(
        job.status === "failed"
          ? `the job failed: ${job.error ?? "no MP3"}`
          : `the MP3 is not ready yet (status: ${job.status})`,
      );
    }
    return files.respond("mp3s", job.audioFileId, request, {
      "content-type": "audio/mpeg",
      "content-disposition": contentDisposition(mp3Filename(job.source.filename)),
      "cache-control": "private, max-age=3600",
    });
  }

  async function forwardToAuth(path: string, request: Request, body: unknown): Promise<Response> {
    try {
      const headers: Record<string, string> = { "content-type": "application/json" };
      const authorization = request.headers.get("authorization");
      if (authorization) headers.authorization = authorization;
      const answer = await fetch(new URL(path, config.AUTH_URL), {
        method: "POST",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(AUTH_TIMEOUT_MS),
      });
      const passOn = ["content-type", "retry-after", "www-authenticate"].flatMap((name) => {
        const value = answer.headers.get(name);
        return value ? [[name, value] as [string, string]] : [];
      });
      return new Response(await answer.arrayBuffer(), { status: answer.status, headers: passOn });
    } catch (error) {
      log.warn({ err: error, path }, "auth did not answer");
      throw new Unavailable("the login service is not answering; try again shortly");
    }
  }

  const jobRoutes = new Elysia({ name: "jobs" })
    .use(bearer(verifier))
    .guard({ auth: true, detail: { security: [{ bearer: [] }] } }, (app) =>
      app
        .post(
          "/jobs",
          ({ request, user, query, status }) =>
            intake.receive(request, user, query).then((job) => status(202, view(job))),
          {
            parse: "none",
            query: t.Object({
              filename: t.Optional(t.String({ maxLength: 255, description: "original name, for a raw video body" })),
            }),
            response: {
              202: JobView,
              400: Problem,
              401: Problem,
              413: Problem,
              415: Problem,
              422: Problem,
              503: Problem,
            },
            detail: {
              tags: ["jobs"],
              summary:
                "Convert a video: multipart field `file`, the raw video with a video/* content type, or JSON {url} of a video to download",
              description:
                "A link (http or https, no credentials, at most 2048 characters) is downloaded by the converter: the job shows `phase: downloading` first. " +
                "A malformed link, or one to a literal private address, is 422 naming the field `url`; a link that fails later fails the job with the reason in `error`.",
              requestBody: {
                content: {
                  "multipart/form-data": {
                    schema: {
                      type: "object",
                      properties: { file: { type: "string", format: "binary" } },
                      required: ["file"],
                    },
                  },
                  "video/*": { schema: { type: "string", format: "binary" } },
                  "application/json": {
                    schema: {
                      type: "object",
                      properties: {
                        url: {
                          type: "string",
                          format: "uri",
                          maxLength: MAX_LINK_LENGTH,
                          description: "an http(s) link to a video file",
                        },
                      },
                      required: ["url"],
                    },
                  },
                },
              },
            },
          },
        )
        .get(
          "/jobs",
          async ({ user, query }) => {
            const before = query.cursor ? parseJobId(query.cursor) : undefined;
            if (before === null) throw new Unprocessable("cursor is not a job id");
            const page = await jobs.list(user.id, { limit: query.limit + 1, ...(before ? { before } : {}) });
            const items = page.slice(0, query.limit).map(view);
            return page.length > query.limit ? { items, nextCursor: items.at(-1)!.id } : { items };
          },
          {
            query: t.Object({
              limit: t.Integer({ minimum: 1, maximum: 100, default: 20 }),
              cursor: t.Optional(t.String()),
            }),
            response: { 200: JobPage, 401: Problem, 422: Problem },
            detail: { tags: ["jobs"], summary: "Your jobs, newest first" },
          },
        )
        .get("/jobs/:id", async ({ params, user }) => view(await ownedJob(params.id, user)), {
          params: t.Object({ id: t.String() }),
          response: { 200: JobView, 401: Problem, 404: Problem },
          detail: { tags: ["jobs"], summary: "One job's status and progress" },
        })
        .delete(
          "/jobs/:id",
          async ({ params, user, status }) => {
            const job = await ownedJob(params.id, user);
            await jobs.remove(job._id);
            // The job is gone: its files must follow even if MongoDB falters now.
            await Promise.all([
              job.videoFileId &&
                undo(`remove video ${job.videoFileId}`, () => files.remove("videos", job.videoFileId!)),
              job.audioFileId && undo(`remove MP3 ${job.audioFileId}`, () => files.remove("mp3s", job.audioFileId!)),
            ]);
            log.info({ jobId: job._id, userId: user.id }, "job deleted");
            return status(204, undefined);
          },
          {
            params: t.Object({ id: t.String() }),
            detail: { tags: ["jobs"], summary: "Delete a job, its video and its MP3" },
          },
        )
        .get(
          "/jobs/:id/events",
          async function* ({ params, user, request }) {
            let job: Job | null = await ownedJob(params.id, user);
            let last = "";
            let lastSent = 0;
            let changedAt = Date.now();
            while (job && !request.signal.aborted && !draining.signal.aborted) {
              const state = `${job.status}:${job.phase}:${job.progress}`;
              if (state !== last) changedAt = Date.now();
              if (state !== last || Date.now() - lastSent > SSE_KEEPALIVE_MS) {
                last = state;
                lastSent = Date.now();
                yield sse({ event: "status", id: `${job.updatedAt.getTime()}`, data: view(job) });
              }
              if (job.status === "done" || job.status === "failed") return;
              await Promise.race([
                Bun.sleep(Date.now() - changedAt < SSE_FAST_FOR_MS ? SSE_POLL_FAST_MS : SSE_POLL_MS),
                drained,
              ]);
              if (draining.signal.aborted) return;
              job = await jobs.getOwned(job._id, user.id);
            }
            if (!job) yield sse({ event: "deleted", data: { id: params.id } });
          },
          {
            params: t.Object({ id: t.String() }),
            detail: {
              tags: ["jobs"],
              summary: "Server-Sent Events: a `status` event (the job) on each change; ends after done or failed",
              responses: {
                200: {
                  description: "text/event-stream",
                  content: { "text/event-stream": { schema: { type: "string" } } },
                },
              },
            },
          },
        )
        .get(
          "/jobs/:id/audio",
          async ({ params, user, request }) => audioResponse(await ownedJob(params.id, user), request),
          {
            params: t.Object({ id: t.String() }),
            detail: {
              tags: ["jobs"],
              summary: "The MP3 (Range requests supported); 409 until the job is done",
              responses: {
                200: { description: "audio/mpeg" },
                206: { description: "partial audio/mpeg" },
                409: { description: "not done yet" },
              },
            },
          },
        )
        // Reference-system compatibility: `curl -F file=@video.mp4 /upload` and `/download?fid=<mp3 file id>`.
        .post(
          "/upload",
          ({ request, user, status }) => intake.receive(request, user, {}).then((job) => status(202, view(job))),
          {
            parse: "none",
            response: { 202: JobView, 401: Problem, 413: Problem, 415: Problem, 422: Problem, 503: Problem },
            detail: { tags: ["compatibility"], summary: "Same as POST /jobs (multipart `file`)" },
          },
        )
        .get(
          "/download",
          async ({ query, user, request }) => {
            const fileId = parseJobId(query.fid);
            const job = fileId && (await jobs.findByAudioFile(fileId, user.id));
            if (!job) throw new NotFound("no such MP3");
            return audioResponse(job, request);
          },
          {
            query: t.Object({ fid: t.String({ description: "the MP3's file id" }) }),
            detail: { tags: ["compatibility"], summary: "The MP3 by its file id (owner only)" },
          },
        ),
    );

  const app = new Elysia({ name: "gateway", serve: { maxRequestBodySize: config.MAX_UPLOAD_BYTES + 1024 * 1024 } })
    .onError(({ error, path }) => {
      if (isStoreUnavailable(error)) {
        log.warn({ err: error, path }, "store unavailable");
        return problemResponse(
          {
            type: "about:blank",
            title: "Service Unavailable",
            status: 503,
            detail: "storage is briefly unavailable; try again shortly",
            instance: path,
          },
          { "retry-after": "5" },
        );
      }
    })
    .use(problems(log))
    .use(metrics.plugin)
    .use(apiDocs({ title: "m3dio", description: "Convert videos to MP3: upload, follow, download." }))
    .use(webPage())
    .use(
      health({
        mongodb: () => mongo.ping(),
        rabbitmq: () => queue.ping(),
        jwks: async () => {
          if (!keysLoaded && verifier.reload) await verifier.reload();
          keysLoaded = true;
        },
      }),
    )
    .post("/auth/register", ({ request, body }) => forwardToAuth("/register", request, body), {
      parse: limitedJson(),
      body: AuthBody,
      response: { 201: t.Object({ id: t.Integer(), email: t.String() }), 409: Problem, 422: Problem, 503: Problem },
      detail: { tags: ["auth"], summary: "Create an account" },
    })
    .post("/auth/login", ({ request, body }) => forwardToAuth("/login", request, body), {
      parse: limitedJson(),
      body: t.Optional(AuthBody),
      response: { 200: Token, 401: Problem, 429: Problem, 503: Problem },
      detail: {
        tags: ["auth"],
        summary: "Log in with JSON or HTTP Basic; answers a bearer token",
        security: [{}, { basic: [] }],
      },
    })
    .post(
      "/login",
      async ({ request }) => {
        if (!/^Basic /i.test(request.headers.get("authorization") ?? ""))
          throw new Unauthorized("send HTTP Basic credentials");
        const answer = await forwardToAuth("/login", request, undefined);
        if (!answer.ok) return answer;
        const { token } = (await answer.json()) as { token: string };
        return new Response(token, { headers: { "content-type": "text/plain; charset=utf-8" } });
      },
      {
        detail: {
          tags: ["compatibility"],
          summary: "HTTP Basic login answering the bare token as text",
          security: [{ basic: [] }],
        },
      },
    )
    .use(jobRoutes);

  return {
    app,
    files,
    jobs,
    markKeysLoaded: () => (keysLoaded = true),
    /** Ends the live event streams (before stopServing(), which waits for requests in flight). */
    drain: () => draining.abort(),
  };
}

// ── start and graceful stop ─────────────────────────────────────────────────
if (import.meta.main) {
  const config = loadConfig(GatewayConfig);
  const log = createLogger("gateway", config.LOG_LEVEL);
  const mongo = await connectMongo(config.MONGODB_URL, { appName: "gateway" });
  await jobStore(mongo.db).ensureIndexes();
  const queue = await connectQueue(config.AMQP_URL, log);
  const verifier = jwksVerifier(new URL("/.well-known/jwks.json", config.AUTH_URL).toString());
  const gateway = createGateway({ config, log, mongo, queue, verifier });
  await verifier.reload().then(
    () => gateway.markKeysLoaded(),
    (error) => log.warn({ err: error }, "auth's JWKS not reachable yet; will fetch on first use"),
  );
  gateway.app.listen({ port: config.PORT, hostname: "0.0.0.0" });
  log.info({ port: gateway.app.server?.port }, "gateway listening");
  const stop = async (signal: string) => {
    log.info({ signal }, "stopping");
    gateway.drain();
    await stopServing(gateway.app, { log }); // lets requests in flight finish
    await queue.close();
    await mongo.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop("SIGTERM"));
  process.once("SIGINT", () => void stop("SIGINT"));
}
