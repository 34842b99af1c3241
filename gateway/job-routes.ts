// The job routes, every one for a caller with a valid bearer token or API key: a table of short
// handlers over the intake (new jobs), the job service and the live status stream.
// GET /jobs/:id/audio, which a signed link opens too, is in gateway/link-routes.ts.
import { Elysia } from "elysia";
import { bearer, type Caller, type TokenVerifier, USER_OR_KEY } from "./bearer.ts";
import { headDocs } from "./downloads.ts";
import { type IdempotentRequests, idempotencyKey } from "./idempotency.ts";
import type { JobIntake } from "./intake.ts";
import type { JobService } from "./job-service.ts";
import { jobStatusEvents, type LiveStreams } from "./live-events.ts";
import { DownloadQuery, gatewayModels, JobId, JobListQuery } from "./models.ts";
import { jobDocs } from "./route-docs.ts";

export interface JobRoutesDeps {
  intake: JobIntake;
  service: JobService;
  verifier: TokenVerifier;
  streams: LiveStreams;
  /** Idempotency-Key on POST /jobs (gateway/idempotency.ts); without it the header is ignored. */
  idempotency?: IdempotentRequests;
}

/** What POST /jobs and POST /upload answer: the new job, or why not (409: POST /jobs, an Idempotency-Key in use). */
const newJobAnswers = {
  202: "Job",
  400: "Problem",
  401: "Problem",
  409: "Problem",
  413: "Problem",
  415: "Problem",
  422: "Problem",
  429: "Problem",
  503: "Problem",
} as const;

export const jobRoutes = ({ intake, service, verifier, streams, idempotency }: JobRoutesDeps) => {
  /** A new job from the request, once per Idempotency-Key when it has one. */
  async function newJob(request: Request, user: Caller, set: { headers: Record<string, unknown> }) {
    const key = idempotency && idempotencyKey(request.headers);
    if (!key) return service.view(await intake.receive(request, user));
    const answer = await idempotency.once(user, key, request, async (digest) => {
      const view = await service.view(await intake.receive(request, user, digest));
      return { status: 202, body: view, jobId: view.id };
    });
    if (answer.replayed) set.headers["idempotent-replayed"] = "true";
    return answer.body as Awaited<ReturnType<JobService["view"]>>;
  }
  return new Elysia({ name: "gateway.job-routes" })
    .use(gatewayModels)
    .use(bearer(verifier))
    .guard({ auth: "user-or-key", detail: { security: USER_OR_KEY } }, (app) =>
      app
        // The query (a raw body's `filename` and options) is read by the intake, which names a bad field in its 422;
        // Idempotency-Key by gateway/idempotency.ts. Both are documented in jobDocs.create.
        .post("/jobs", async ({ request, user, status, set }) => status(202, await newJob(request, user, set)), {
          parse: "none",
          response: newJobAnswers,
          detail: jobDocs.create,
        })
        .get("/jobs", ({ user, query }) => service.page(user, query), {
          query: JobListQuery,
          response: { 200: "JobPage", 401: "Problem", 422: "Problem" },
          detail: jobDocs.list,
        })
        .get("/jobs/:id", async ({ params, user }) => service.view(await service.owned(params.id, user)), {
          params: JobId,
          response: { 200: "Job", 401: "Problem", 404: "Problem" },
          detail: jobDocs.get,
        })
        .delete(
          "/jobs/:id",
          async ({ params, user, status }) => {
            await service.remove(params.id, user);
            return status(204, undefined);
          },
          { params: JobId, detail: jobDocs.remove },
        )
        .post(
          "/jobs/:id/retry",
          async ({ params, user, status }) => status(202, await service.view(await service.retry(params.id, user))),
          {
            params: JobId,
            response: {
              202: "Job",
              401: "Problem",
              404: "Problem",
              409: "Problem",
              410: "Problem",
              429: "Problem",
              503: "Problem",
            },
            detail: jobDocs.retry,
          },
        )
        .get(
          "/jobs/:id/events",
          async function* ({ params, user, request }) {
            const open = () => service.owned(params.id, user).then(service.placed);
            yield* jobStatusEvents({ id: params.id, userId: user.id, open, reread: service.current, request, streams });
          },
          { params: JobId, detail: jobDocs.events },
        )
        .get(
          "/jobs/:id/cover",
          async ({ params, user, request }) => service.cover(await service.owned(params.id, user), request),
          { params: JobId, detail: jobDocs.cover },
        )
        // Reference-system compatibility: `curl -F file=@video.mp4 /upload` and `/download?fid=<mp3 file id>`.
        .post(
          "/upload",
          async ({ request, user, status }) => status(202, await service.view(await intake.receive(request, user))),
          { parse: "none", response: newJobAnswers, detail: jobDocs.upload },
        )
        .get("/download", ({ query, user, request }) => service.audioByFileId(query.fid, user, request), {
          query: DownloadQuery,
          detail: jobDocs.download,
        })
        .head("/download", ({ query, user, request }) => service.audioByFileId(query.fid, user, request), {
          query: DownloadQuery,
          detail: headDocs("the MP3 by its file id"),
        }),
    );
};
