// gateway: the only public entry. Forwards registration and login to auth, verifies
// tokens locally (JWKS), streams uploads into GridFS (whole, or resumable over tus:
// gateway/uploads/), records jobs, publishes them to
// the `video` queue, and serves status, live progress, the MP3 (to its owner, or to a
// signed link: gateway/link-routes.ts), the webhooks users register (the notifier posts
// them: gateway/webhook-routes.ts), the OpenAPI document with Swagger UI, and the
// web page. Its parts live in gateway/.
import { Type } from "@sinclair/typebox";
import { Elysia } from "elysia";
import { Counter } from "prom-client";
import { accountRoutes } from "./gateway/account-routes.ts";
import { apiKeyChecker } from "./gateway/api-keys.ts";
import { authRoutes } from "./gateway/auth-routes.ts";
import { jwksVerifier, type TokenVerifier, withApiKeys } from "./gateway/bearer.ts";
import { BUN_BODY_CEILING, bodyLimit } from "./gateway/body-limit.ts";
import { TrustedProxies } from "./gateway/client-address.ts";
import { idempotentRequests } from "./gateway/idempotency.ts";
import { jobIntake } from "./gateway/intake.ts";
import { jobRoutes } from "./gateway/job-routes.ts";
import { jobService } from "./gateway/job-service.ts";
import { linkRoutes } from "./gateway/link-routes.ts";
import { liveStreams } from "./gateway/live-events.ts";
import { quotas as userQuotas } from "./gateway/quotas.ts";
import { resumableUploads } from "./gateway/uploads/index.ts";
import { webhookDocument } from "./gateway/webhook-models.ts";
import { webhookRoutes } from "./gateway/webhook-routes.ts";
import {
  AmqpUrl,
  GatewaySecret,
  LinkSigningKey,
  LogLevel,
  MaxUploadBytes,
  MetricsPort,
  MongoUrl,
  Port,
  PublicUrl,
  Url,
  UserStorageBytes,
} from "./lib/config.ts";
import { apiDocs } from "./lib/docs.ts";
import { fileStore } from "./lib/files.ts";
import { health, startupCheck } from "./lib/health.ts";
import { jobStore } from "./lib/jobs.ts";
import { AllowHosts, parseAllowList, type Resolver } from "./lib/link.ts";
import type { Logger } from "./lib/log.ts";
import { createMetrics } from "./lib/metrics.ts";
import { connectMongo, isMongoUnavailable, type Mongo } from "./lib/mongo.ts";
import { problems } from "./lib/problem.ts";
import { CONNECT_IN_BACKGROUND, connectQueue, type Queue, QueueUnavailable } from "./lib/queue.ts";
import { type Built, runService, type Service } from "./lib/runner.ts";
import { linkSigner, linkSigningKey } from "./lib/signed-links.ts";
import { webhookStore } from "./lib/webhooks.ts";
import { webPage } from "./web/serve.ts";

// ── config ──────────────────────────────────────────────────────────────────
export const GatewayConfig = Type.Object({
  PORT: Port(8080),
  METRICS_PORT: MetricsPort(9102),
  LOG_LEVEL: LogLevel,
  AUTH_URL: Url(["http", "https"], "http://127.0.0.1:3001", "an http(s):// URL of the auth service"),
  MONGODB_URL: MongoUrl,
  AMQP_URL: AmqpUrl,
  MAX_UPLOAD_BYTES: MaxUploadBytes,
  URL_ALLOW_HOSTS: AllowHosts,
  GATEWAY_SECRET: GatewaySecret,
  TRUSTED_PROXIES: TrustedProxies,
  MAX_ACTIVE_JOBS: Type.Integer({
    minimum: 1,
    default: 5,
    description: "jobs one user may have queued or converting at once",
  }),
  USER_STORAGE_BYTES: UserStorageBytes,
  MAX_STREAMS_PER_USER: Type.Integer({
    minimum: 1,
    default: 20,
    description: "live event streams one user may hold open at once",
  }),
  PUBLIC_URL: PublicUrl,
  LINK_SIGNING_KEY: LinkSigningKey,
});
export type GatewayConfig = typeof GatewayConfig.static;

// ── models (gateway/models.ts) ──────────────────────────────────────────────
export type { JobPage, JobView } from "./gateway/models.ts";

// ── the app ─────────────────────────────────────────────────────────────────
export interface GatewayDeps {
  config: GatewayConfig;
  log: Logger;
  mongo: Mongo;
  queue: Pick<Queue, "publish" | "ping">;
  verifier: TokenVerifier;
  /** Replaces DNS for webhook URLs (tests). */
  resolve?: Resolver;
}

/** MongoDB or the broker being away is a 503 the client may retry, not a 500. */
const storeUnavailable = (error: unknown) => isMongoUnavailable(error) || error instanceof QueueUnavailable;

/** The gateway's stores and services, built once from its deps. */
function gatewayParts({ config, log, mongo, queue, verifier: tokens }: GatewayDeps) {
  // Every route module gets a verifier that knows API keys too (asking auth: gateway/api-keys.ts).
  const verifier = withApiKeys(
    tokens,
    apiKeyChecker({ authUrl: config.AUTH_URL, gatewaySecret: config.GATEWAY_SECRET, log }),
  );
  const jobs = jobStore(mongo.db);
  const files = fileStore(mongo.db, { log });
  const metrics = createMetrics("gateway");
  const counter = (name: string, help: string) => new Counter({ name, help, registers: [metrics.registry] });
  const limits = { activeJobs: config.MAX_ACTIVE_JOBS, storedBytes: config.USER_STORAGE_BYTES };
  const quotas = userQuotas(mongo.db, limits, log);
  const allowList = parseAllowList(config.URL_ALLOW_HOSTS);
  const counted = {
    uploadedBytes: counter("gateway_upload_bytes_total", "video bytes stored"),
    jobsCreated: counter("gateway_jobs_created_total", "jobs queued"),
  };
  const maxUploadBytes = config.MAX_UPLOAD_BYTES;
  const intake = jobIntake({ files, jobs, queue, log, maxUploadBytes, allowList, quotas, ...counted });
  const idempotency = idempotentRequests(mongo.db, { log, maxUploadBytes });
  const uploads = resumableUploads({
    ...{ db: mongo.db, files, jobs, queue, quotas, log, verifier, maxUploadBytes, idempotency },
    ...counted,
  });
  return {
    verifier,
    jobs,
    files,
    metrics,
    quotas,
    allowList,
    intake,
    idempotency,
    uploads,
    webhooks: webhookStore(mongo.db),
    streams: liveStreams({ maxStreamsPerUser: config.MAX_STREAMS_PER_USER, log }),
    service: jobService({ jobs, files, queue, quotas, log }),
    links: linkSigner(linkSigningKey(config.LINK_SIGNING_KEY, log)),
    startup: startupCheck(),
  };
}
type GatewayParts = ReturnType<typeof gatewayParts>;

/** The public app: its plugins, one per concern, in the order a request meets them. */
function gatewayApp({ config, log, mongo, queue, resolve }: GatewayDeps, parts: GatewayParts) {
  const { verifier, quotas, service, streams, idempotency, intake, webhooks, allowList, startup } = parts;
  return new Elysia({ name: "gateway", serve: { maxRequestBodySize: BUN_BODY_CEILING } })
    .use(problems(log, { unavailable: storeUnavailable }))
    .use(parts.metrics.plugin)
    .use(bodyLimit(config.MAX_UPLOAD_BYTES))
    .use(
      apiDocs({
        title: "m3dio",
        description: "Convert videos to MP3: upload, follow, download.",
        webhooks: webhookDocument,
      }),
    )
    .use(webPage())
    .use(
      health({
        startup: startup.check,
        mongodb: () => mongo.ping(),
        rabbitmq: () => queue.ping(),
        jwks: () => verifier.ready(),
      }),
    )
    .use(
      authRoutes({
        authUrl: config.AUTH_URL,
        log,
        gatewaySecret: config.GATEWAY_SECRET,
        trustedProxies: config.TRUSTED_PROXIES,
        verifier,
      }),
    )
    .use(accountRoutes({ quotas, verifier }))
    .use(linkRoutes({ service, jobs: parts.jobs, links: parts.links, verifier, publicUrl: config.PUBLIC_URL, log }))
    .use(jobRoutes({ intake, service, verifier, streams, idempotency }))
    .use(parts.uploads.routes)
    .use(webhookRoutes({ webhooks, verifier, allowList, log, resolve }));
}

export function createGateway(deps: GatewayDeps) {
  const parts = gatewayParts(deps);
  const { jobs, quotas, idempotency, webhooks, uploads, verifier, streams, startup } = parts;
  return {
    app: gatewayApp(deps, parts),
    metricsApp: parts.metrics.app,
    /** Indexes, then auth's keys; auth being away is no reason not to start (keys are fetched on first use). */
    start: () =>
      startup.run(async () => {
        await jobs.ensureIndexes();
        await quotas.ensureIndexes();
        await idempotency.ensureIndexes();
        await webhooks.ensureIndexes();
        await uploads.start();
        await verifier
          .ready()
          .catch((error) =>
            deps.log.warn(
              { event: "auth.unreachable", err: error },
              "auth's JWKS not reachable yet; will fetch on first use",
            ),
          );
      }),
    /** Ends the live event streams, so the HTTP server's graceful stop waits only for requests that end. */
    async stop() {
      streams.end();
      await uploads.stop();
    },
  } satisfies Service;
}

// ── start and graceful stop ─────────────────────────────────────────────────
async function build(config: GatewayConfig, log: Logger): Promise<Built> {
  // Neither waits for its store: start() is retried until they answer (lib/runner.ts).
  const mongo = await connectMongo(config.MONGODB_URL, { appName: "gateway", waitForConnect: false });
  const queue = await connectQueue(config.AMQP_URL, log, CONNECT_IN_BACKGROUND);
  const verifier = jwksVerifier(new URL("/.well-known/jwks.json", config.AUTH_URL).toString());
  return { service: createGateway({ config, log, mongo, queue, verifier }), resources: [mongo, queue] };
}

// Requests in flight get 20 s; the whole stop stays within k3d's 30 s termination grace.
if (import.meta.main)
  await runService("gateway", GatewayConfig, build, () => ({ httpGraceMs: 20_000, deadlineMs: 25_000 }));
