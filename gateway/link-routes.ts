// Links to a job's MP3 that work outside the app (lib/signed-links.ts): GET /jobs/:id/audio
// answers the owner's bearer token (or API key) or a signed link (`expires` and `sig`: the ready email's,
// or one the owner shared); POST /jobs/:id/share makes a signed link to hand on, and
// DELETE /jobs/:id/share revokes every one made so far (the job's `shareVersion` moves on).
// HEAD /jobs/:id/audio answers the same headers without the bytes (gateway/downloads.ts).
import { Elysia } from "elysia";
import { hasExpired, type Job, type JobStore, parseJobId } from "../lib/jobs.ts";
import type { Logger } from "../lib/log.ts";
import { Conflict, Gone, HttpProblem, NotFound } from "../lib/problem.ts";
import type { LinkQuery, LinkSigner } from "../lib/signed-links.ts";
import { authenticate, bearer, type Caller, type TokenVerifier, USER_OR_KEY } from "./bearer.ts";
import { headDocs } from "./downloads.ts";
import type { JobService } from "./job-service.ts";
import { gatewayModels, JobId, type ShareLink, SignedAudioQuery } from "./models.ts";
import { jobDocs, linkDocs } from "./route-docs.ts";

export interface LinkRoutesDeps {
  service: JobService;
  jobs: JobStore;
  links: LinkSigner;
  verifier: TokenVerifier;
  /** PUBLIC_URL: the origin shared links name. */
  publicUrl: string;
  log: Logger;
}

interface AudioRequest {
  params: { id: string };
  query: LinkQuery;
  headers: Record<string, string | undefined>;
  request: Request;
}

/** 403: a signed link that does not open the MP3 (changed, expired or revoked), naming the parameter at fault. */
class LinkRefused extends HttpProblem {
  constructor(detail: string, field: "expires" | "sig") {
    super(403, "Forbidden", detail, { errors: [{ field, message: detail }] });
  }
}

export function linkRoutes({ service, jobs, links, verifier, publicUrl, log }: LinkRoutesDeps) {
  /** The job a signed link opens; a link that does not (or names no job) is 403, whatever the job. */
  async function signedJob(id: string, query: LinkQuery): Promise<Job> {
    const jobId = parseJobId(id);
    const job = jobId && (await jobs.get(jobId));
    const verdict = job ? links.check(job, query) : "invalid";
    if (job && verdict === "valid") return job;
    log.info({ event: "audio_link.refused", jobId: jobId ?? undefined, reason: verdict }, "signed audio link refused");
    throw verdict === "expired"
      ? new LinkRefused("the link has expired", "expires")
      : new LinkRefused("the link is not valid: it was changed, or its owner revoked it", "sig");
  }

  /** A signed link to the done job's MP3, valid until the job expires. */
  function share(job: Job): ShareLink {
    if (job.status !== "done" || !job.audioFileId)
      throw new Conflict(`only a done job's MP3 can be shared; this one is ${job.status}`);
    if (hasExpired(job)) throw new Gone("the job has expired; its MP3 is no longer kept");
    const { path, expires } = links.audioPath(job);
    log.info({ event: "audio_link.shared", jobId: job._id, userId: job.userId }, "share link made");
    return { url: `${publicUrl.replace(/\/+$/, "")}${path}`, expiresAt: new Date(expires * 1000).toISOString() };
  }

  async function revoke(id: string, user: Caller): Promise<void> {
    const jobId = parseJobId(id);
    const job = jobId && (await jobs.revokeLinks(jobId, user.id));
    if (!job) throw new NotFound("no such job");
    log.info({ event: "audio_link.revoked", jobId, userId: user.id }, "every link to the job's MP3 revoked");
  }

  /** The MP3 (GET) or its headers (HEAD), for the owner's token or key, or a signed link. */
  async function audio({ params, query, headers, request }: AudioRequest): Promise<Response> {
    const signed = query.expires !== undefined || query.sig !== undefined;
    const job = signed
      ? await signedJob(params.id, query)
      : await service.owned(params.id, await authenticate(verifier, headers.authorization, "user-or-key"));
    return service.audio(job, request);
  }

  return (
    new Elysia({ name: "gateway.link-routes" })
      .use(gatewayModels)
      .use(bearer(verifier))
      // A signed link's parameters choose the signed way in; without them the owner's bearer token is needed.
      .get("/jobs/:id/audio", audio, {
        params: JobId,
        query: SignedAudioQuery,
        detail: { ...jobDocs.audio, security: [...USER_OR_KEY, {}] },
      })
      .head("/jobs/:id/audio", audio, {
        params: JobId,
        query: SignedAudioQuery,
        detail: { ...headDocs("a job's MP3"), security: [...USER_OR_KEY, {}] },
      })
      .guard({ auth: "user-or-key", detail: { security: USER_OR_KEY } }, (app) =>
        app
          .post("/jobs/:id/share", async ({ params, user }) => share(await service.owned(params.id, user)), {
            params: JobId,
            response: { 200: "ShareLink", 401: "Problem", 404: "Problem", 409: "Problem", 410: "Problem" },
            detail: linkDocs.share,
          })
          .delete(
            "/jobs/:id/share",
            async ({ params, user, status }) => {
              await revoke(params.id, user);
              return status(204, undefined);
            },
            { params: JobId, detail: linkDocs.unshare },
          ),
      )
  );
}
