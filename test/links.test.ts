// Links that work outside the app, and the emails that carry them (issue 18): the gateway
// in-process on the test's stack (real auth, MariaDB, RabbitMQ, MongoDB), a converter and a
// notifier in-process on the same stores with ffmpeg, the local Resend stand-in, and a local
// web server for link jobs. The gateway and the notifier share one LINK_SIGNING_KEY; users
// verify their address by the verification email, as a person does.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import * as jose from "jose";
import { ObjectId } from "mongodb";
import type { ShareLink } from "../gateway/models.ts";
import { parseConfig } from "../lib/config.ts";
import { createLogger } from "../lib/log.ts";
import { connectQueue, type Queue } from "../lib/queue.ts";
import { linkSigner } from "../lib/signed-links.ts";
import { linkFilename } from "../lib/source-names.ts";
import { createNotifier, NotifierConfig } from "../notifier.ts";
import type { JobView } from "./support/client.ts";
import { waitForJob } from "./support/jobs.ts";
import { startLocalConverter } from "./support/local-converter.ts";
import { makeVideo } from "./support/media.ts";
import { type ReceivedEmail, startResendStandin } from "./support/resend.ts";
import { type Stack, startStack } from "./support/stack.ts";

const PUBLIC_URL = "https://m3dio.example";
const LINK_SIGNING_KEY = "links-test-signing-key-0123456789abcdef";
const DISPOSED_NAME = "Talk — Part 1.mp4"; // what the web server's download names itself
const tmp = mkdtempSync(join(tmpdir(), "m3dio-links-test-"));

let stack: Stack;
let gateway: ReturnType<Stack["gatewayWith"]>;
let converter: Awaited<ReturnType<typeof startLocalConverter>>;
let notifierQueue: Queue;
let notifier: ReturnType<typeof createNotifier>;
let web: ReturnType<typeof Bun.serve>;
let video: Blob;
const resend = startResendStandin();
/** Every log line of the gateway and the notifier: tests wait on their events. */
const lines: { event?: string; jobId?: string; reason?: string }[] = [];
const logTo = (service: string) =>
  createLogger(service, "info", { write: (line: string) => void lines.push(JSON.parse(line)) });

beforeAll(async () => {
  stack = await startStack();
  video = Bun.file(await makeVideo({ seconds: 1 }));
  const clip = new Uint8Array(await video.arrayBuffer());
  // "The internet": a download that names itself, and a link that is not there.
  web = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const { pathname } = new URL(request.url);
      if (pathname === "/files/7/download")
        return new Response(clip, {
          headers: {
            "content-type": "video/mp4",
            "content-disposition": `attachment; filename*=UTF-8''${encodeURIComponent(DISPOSED_NAME)}`,
          },
        });
      return new Response("not found", { status: 404 });
    },
  });
  const shared = { PUBLIC_URL, LINK_SIGNING_KEY };
  gateway = stack.gatewayWith({ ...shared, URL_ALLOW_HOSTS: "127.0.0.1" }, { log: logTo("gateway") });
  await gateway.start();
  const place = { mongo: stack.mongo, mongoUrl: stack.mongoUrl, amqpUrl: stack.vhost.url, tmpDir: tmp, log: stack.log };
  converter = await startLocalConverter(place, { URL_ALLOW_HOSTS: "127.0.0.1", SHUTDOWN_GRACE_MS: "2000" });
  notifierQueue = await connectQueue(stack.vhost.url, stack.log);
  const config = parseConfig(NotifierConfig, {
    ...shared,
    MONGODB_URL: stack.mongoUrl,
    AMQP_URL: stack.vhost.url,
    RESEND_API_KEY: "re_test_key",
    RESEND_BASE_URL: resend.url,
  });
  notifier = createNotifier({ config, log: logTo("notifier"), mongo: stack.mongo, queue: notifierQueue });
  await notifier.start();
});
afterAll(async () => {
  await notifier?.stop();
  await notifierQueue?.close();
  await converter?.stop();
  await stack?.stop();
  web?.stop(true);
  resend.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const call = (path: string, init: RequestInit = {}) => gateway.app.handle(new Request(`http://localhost${path}`, init));

type User = Awaited<ReturnType<Stack["newUser"]>>;
const json = { "content-type": "application/json" };
/**
 * A fresh user who verified their address as a person does: the verification email's link
 * (the notifier sends it through the stand-in), POST /auth/verify, then a new login, whose
 * token says `email_verified: true`.
 */
async function verifiedUser(): Promise<User> {
  const user = await stack.newUser("links");
  const sent = () => resend.received.find((email) => [email.to].flat().includes(user.email));
  await until(() => sent() !== undefined);
  const token = new URL(sent()!.text.match(/https?:\/\/\S+\/verify\?token=\S+/)![0]).searchParams.get("token");
  expect((await call("/auth/verify", { method: "POST", headers: json, body: JSON.stringify({ token }) })).status).toBe(
    200,
  );
  const credentials = JSON.stringify({ email: user.email, password: user.password });
  const login = (await (await call("/auth/login", { method: "POST", headers: json, body: credentials })).json()) as {
    token: string;
  };
  expect(jose.decodeJwt(login.token).email_verified).toBe(true);
  return { ...user, token: login.token, headers: { authorization: `Bearer ${login.token}` } };
}

async function upload(user: User, bytes: Blob, name: string): Promise<JobView> {
  const form = new FormData();
  form.append("file", bytes, name);
  const answer = await call("/jobs", { method: "POST", headers: user.headers, body: form });
  expect(answer.status).toBe(202);
  return (await answer.json()) as JobView;
}
async function postLink(user: User, url: string): Promise<JobView> {
  const headers = { ...user.headers, ...json };
  const answer = await call("/jobs", { method: "POST", headers, body: JSON.stringify({ url }) });
  expect(answer.status).toBe(202);
  return (await answer.json()) as JobView;
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(25);
  }
}
/** The job emails sent to `address` (not the account's own, such as the verification email). */
const jobEmailsTo = (address: string) =>
  resend.received.filter((email) => [email.to].flat().includes(address) && /^Your MP3/.test(email.subject));
/** The job email sent to `address` (waits for it). */
async function emailTo(address: string): Promise<ReceivedEmail> {
  const find = () => jobEmailsTo(address)[0];
  await until(() => find() !== undefined);
  return find()!;
}
/** The URL after `label: ` in an email's text part. */
const linkAfter = (email: ReceivedEmail, label: string) => email.text.match(new RegExp(`${label}: (\\S+)`))?.[1] ?? "";
const pathOf = (url: string) => {
  expect(url.startsWith(`${PUBLIC_URL}/`)).toBe(true);
  return url.slice(PUBLIC_URL.length);
};

/** A job marked done with `mp3` as its audio, as the converter leaves it (for the link rules alone; no ffmpeg). */
async function doneJob(user: User, mp3 = Uint8Array.from({ length: 50_000 }, (_, i) => (i * 13) % 256)) {
  const { sub } = jose.decodeJwt(user.token);
  const job = await gateway.jobs.create({
    userId: sub!,
    email: user.email,
    emailVerified: true,
    source: { kind: "upload", filename: "song.mp4", bytes: 1, contentType: "video/mp4" },
  });
  const audio = await gateway.files.upload("mp3s", Readable.from([Buffer.from(mp3)]), {
    owner: sub!,
    filename: "song.mp3",
    contentType: "audio/mpeg",
  });
  await gateway.jobs.startConverting(job._id);
  return (await gateway.jobs.markDone(job._id, audio.id, { bytes: audio.bytes, durationSec: 1 }))!;
}
async function share(user: User, id: string | ObjectId): Promise<Response> {
  return call(`/jobs/${id}/share`, { method: "POST", headers: user.headers });
}

describe("the ready email", () => {
  test("links to the job on the page and to a signed download that serves the MP3 without a token, whole and in ranges", async () => {
    const user = await verifiedUser();
    const { id } = await upload(user, video, "holiday.mp4");
    expect((await waitForJob(gateway.jobs, id)).status).toBe("done");
    const email = await emailTo(user.email);
    expect(email.subject).toBe("Your MP3 is ready");
    expect(linkAfter(email, "See it on m3dio")).toBe(`${PUBLIC_URL}/#/jobs/${id}`);
    const download = pathOf(linkAfter(email, "Download or play it"));
    expect(download).toMatch(new RegExp(`^/jobs/${id}/audio\\?expires=\\d+&sig=[\\w-]+$`));
    expect(email.html).toContain(`href="${PUBLIC_URL}${download.replace("&", "&amp;")}"`);

    const owned = await call(`/jobs/${id}/audio`, { headers: user.headers });
    const mp3 = new Uint8Array(await owned.arrayBuffer());
    const whole = await call(download); // no Authorization header
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-type")).toBe("audio/mpeg");
    expect(whole.headers.get("content-disposition")).toContain("holiday.mp3");
    expect(new Uint8Array(await whole.arrayBuffer())).toEqual(mp3);
    const part = await call(download, { headers: { range: "bytes=100-199" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 100-199/${mp3.length}`);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(mp3.subarray(100, 200));
  });

  test("a name with markup is escaped in the HTML part, cleaned of direction overrides in both", async () => {
    const user = await verifiedUser();
    const { id } = await upload(user, video, "Tom & Jerry <script>alert(1)<script>\u202Eevil.mp4");
    await waitForJob(gateway.jobs, id);
    const email = await emailTo(user.email);
    expect(email.subject).toBe("Your MP3 is ready");
    expect(email.html).toContain("Tom &amp; Jerry &lt;script&gt;alert(1)&lt;script&gt;evil.mp4");
    expect(email.html).not.toContain("<script>");
    expect(email.text).toContain('Your MP3 of "Tom & Jerry <script>alert(1)<script>evil.mp4" is ready.');
    expect(`${email.text}${email.html}`).not.toContain("\u202E");
  });
});

describe("only verified addresses hear how a job ended", () => {
  test("an unverified owner gets no email: the job is marked notified and `email.skipped_unverified` logged", async () => {
    const user = await stack.newUser("unverified"); // registered, the verification email not followed
    const { id } = await upload(user, video, "quiet.mp4");
    const stored = await waitForJob(gateway.jobs, id);
    expect([stored.status, stored.emailVerified]).toEqual(["done", false]);
    await until(() => lines.some((line) => line.event === "email.skipped_unverified" && line.jobId === id));
    expect((await gateway.jobs.get(new ObjectId(id)))?.notifiedAt).toBeInstanceOf(Date);
    expect(jobEmailsTo(user.email)).toEqual([]);
  });

  test("a verified owner's job records it, and the email goes out", async () => {
    const user = await verifiedUser();
    const { id } = await upload(user, video, "loud.mp4");
    expect((await waitForJob(gateway.jobs, id)).emailVerified).toBe(true);
    expect((await emailTo(user.email)).text).toContain(`/jobs/${id}/audio?expires=`);
  });
});

describe("signed links the gateway refuses", () => {
  test("a changed signature or expiry, an expired link, or half a link is 403 problem+json naming the parameter", async () => {
    const user = await verifiedUser();
    const job = await doneJob(user);
    const { url } = (await (await share(user, job._id)).json()) as ShareLink;
    const good = new URL(url);
    const variant = (change: (query: URLSearchParams) => void) => {
      const query = new URLSearchParams(good.search);
      change(query);
      return `${good.pathname}?${query}`;
    };
    const sig = good.searchParams.get("sig")!;
    const expired = linkSigner(LINK_SIGNING_KEY).audioPath({ ...job, expiresAt: new Date(Date.now() - 60_000) }).path;
    const refused: [string, string, string][] = [
      [
        "a changed signature",
        variant((q) => q.set("sig", `${sig.slice(0, -2)}${sig.endsWith("AA") ? "BB" : "AA"}`)),
        "sig",
      ],
      ["a later expiry", variant((q) => q.set("expires", String(Number(q.get("expires")) + 3600))), "sig"],
      ["another job's id", variant(() => {}).replace(String(job._id), new ObjectId().toHexString()), "sig"],
      ["an expired link (signed with the key)", expired, "expires"],
      ["no signature", variant((q) => q.delete("sig")), "sig"],
    ];
    for (const [name, path, field] of refused) {
      const answer = await call(path);
      expect([name, answer.status]).toEqual([name, 403]);
      expect(answer.headers.get("content-type")).toStartWith("application/problem+json");
      const problem = (await answer.json()) as { status: number; errors: { field: string }[] };
      expect([name, problem.status, problem.errors[0]?.field]).toEqual([name, 403, field]);
    }
    expect(lines.filter((line) => line.event === "audio_link.refused" && line.jobId === String(job._id)).length).toBe(
      4,
    );
    expect((await call(good.pathname)).status).toBe(401); // neither a link nor a token
    expect((await call(`${good.pathname}${good.search}`)).status).toBe(200);
  });
});

describe("sharing", () => {
  test("POST /jobs/:id/share answers a link that works until the job expires; the job view points there", async () => {
    const user = await verifiedUser();
    const job = await doneJob(user);
    const view = (await (await call(`/jobs/${job._id}`, { headers: user.headers })).json()) as JobView;
    expect(view.links.share).toBe(`/jobs/${job._id}/share`);
    const answer = await share(user, job._id);
    expect(answer.status).toBe(200);
    const link = (await answer.json()) as ShareLink;
    expect(link.expiresAt).toBe(new Date(Math.floor(job.expiresAt!.getTime() / 1000) * 1000).toISOString());
    const shared = await call(pathOf(link.url));
    expect(shared.status).toBe(200);
    expect((await shared.arrayBuffer()).byteLength).toBe(job.audio!.bytes);
    const ranged = await call(pathOf(link.url), { headers: { range: "bytes=-10" } });
    expect([ranged.status, (await ranged.arrayBuffer()).byteLength]).toEqual([206, 10]);
  });

  test("DELETE /jobs/:id/share makes every earlier link stop working, the emailed one too; a new one works", async () => {
    const user = await verifiedUser();
    const { id } = await upload(user, video, "revoked.mp4");
    await waitForJob(gateway.jobs, id);
    const emailed = pathOf(linkAfter(await emailTo(user.email), "Download or play it"));
    const shared = pathOf(((await (await share(user, id)).json()) as ShareLink).url);
    expect([(await call(emailed)).status, (await call(shared)).status]).toEqual([200, 200]);
    const stranger = await verifiedUser();
    expect((await call(`/jobs/${id}/share`, { method: "DELETE", headers: stranger.headers })).status).toBe(404);
    expect((await call(shared)).status).toBe(200);
    expect((await call(`/jobs/${id}/share`, { method: "DELETE", headers: user.headers })).status).toBe(204);
    expect([(await call(emailed)).status, (await call(shared)).status]).toEqual([403, 403]);
    const fresh = pathOf(((await (await share(user, id)).json()) as ShareLink).url);
    expect((await call(fresh)).status).toBe(200);
  });

  test("only the owner can share, only a done job: 401 without a token, 404 for another's, 409 before done", async () => {
    const user = await verifiedUser();
    const job = await doneJob(user);
    expect((await call(`/jobs/${job._id}/share`, { method: "POST" })).status).toBe(401);
    expect((await share(await verifiedUser(), job._id)).status).toBe(404);
    const queued = await gateway.jobs.create({
      userId: job.userId,
      email: user.email,
      source: { kind: "upload", filename: "later.mp4", bytes: 1, contentType: "video/mp4" },
    });
    const early = await share(user, queued._id);
    expect(early.status).toBe(409);
    expect(((await early.json()) as { detail: string }).detail).toContain("queued");
    await gateway.jobs.remove(queued._id); // no converter takes it: no message was sent
  });
});

describe("link jobs", () => {
  test("a link job is named by its download's Content-Disposition, in the job, the MP3's name and the email", async () => {
    const user = await verifiedUser();
    const posted = await postLink(user, `http://127.0.0.1:${web.port}/files/7/download`);
    expect(posted.source.filename).toBe("7"); // "download" says nothing; the download names it better below
    const job = await waitForJob(gateway.jobs, posted.id);
    expect(job.status).toBe("done");
    expect(job.source.filename).toBe(DISPOSED_NAME);
    const mp3 = await call(`/jobs/${posted.id}/audio`, { headers: user.headers });
    expect(mp3.headers.get("content-disposition")).toContain(
      `filename*=UTF-8''${encodeURIComponent("Talk — Part 1.mp3")}`,
    );
    expect((await emailTo(user.email)).text).toContain(`Your MP3 of "${DISPOSED_NAME}" is ready.`);
  });
});

describe("a link job's first name, before its download names it", () => {
  test("the last meaningful path segment, decoded; else the host", () => {
    const named = (url: string) => linkFilename(new URL(url));
    expect(named("https://example.com/media/Holiday%20Clip.mp4?dl=1")).toBe("Holiday Clip.mp4");
    expect(named("https://www.youtube.com/watch?v=dQw4w9WgXcQ")).toBe("www.youtube.com");
    expect(named("https://example.com/videos/8812/download/")).toBe("8812");
    expect(named("https://example.com/")).toBe("example.com");
  });
});

describe("the failure email's advice fits the cause", () => {
  test("a link answering 404 is told to check the link; a damaged file to export it again", async () => {
    const linker = await verifiedUser();
    const linked = await postLink(linker, `http://127.0.0.1:${web.port}/gone/talk.mp4`);
    const uploader = await verifiedUser();
    const whole = new Uint8Array(await video.arrayBuffer());
    const damaged = await upload(uploader, new Blob([whole.subarray(0, whole.length >> 1)]), "cut.mp4");
    const [linkJob, damagedJob] = [
      await waitForJob(gateway.jobs, linked.id),
      await waitForJob(gateway.jobs, damaged.id),
    ];
    expect([linkJob.status, linkJob.errorKind, damagedJob.status, damagedJob.errorKind]).toEqual([
      "failed",
      "link",
      "failed",
      "damaged",
    ]);
    const [linkEmail, damagedEmail] = [await emailTo(linker.email), await emailTo(uploader.email)];
    for (const email of [linkEmail, damagedEmail]) expect(email.subject).toBe("Your MP3 could not be made");
    expect(linkEmail.text).toContain("the link answered 404");
    expect(linkEmail.text).toContain("Check that the link opens in a browser");
    expect(linkEmail.text).not.toContain("export it again");
    expect(linkEmail.text).toContain("until then you can retry the conversion on the page"); // a link may come back
    expect(damagedEmail.text).toContain("export it again (MP4 with AAC audio works everywhere)");
    expect(damagedEmail.text).not.toContain("the link");
    expect(damagedEmail.text).not.toContain("retry the conversion"); // the same file would fail the same way
    expect(damagedEmail.text).toContain(`${PUBLIC_URL}/#/jobs/${damaged.id}`);
  });
});

describe("the OpenAPI document", () => {
  test("names the signed link's parameters and 403 on the audio route, which a token or a link opens, and the share routes", async () => {
    type Operation = {
      parameters?: { name: string; in: string }[];
      responses: Record<string, unknown>;
      security?: unknown[];
    };
    const spec = (await (await call("/docs/json")).json()) as { paths: Record<string, Record<string, Operation>> };
    const audio = spec.paths["/jobs/{id}/audio"]!.get!;
    const query = (audio.parameters ?? []).filter((parameter) => parameter.in === "query").map(({ name }) => name);
    expect(query.sort()).toEqual(["expires", "sig"]);
    expect(Object.keys(audio.responses)).toEqual(expect.arrayContaining(["200", "206", "403", "409", "410"]));
    // The owner's token or API key (gateway/bearer.ts `user-or-key`), or no credentials at all: a signed link.
    expect(audio.security).toEqual([{ bearer: [] }, { apiKey: [] }, {}]);
    const shareRoute = spec.paths["/jobs/{id}/share"]!;
    expect(Object.keys(shareRoute).sort()).toEqual(["delete", "post"]);
    expect(Object.keys(shareRoute.post!.responses)).toEqual(
      expect.arrayContaining(["200", "401", "404", "409", "410"]),
    );
  });
});
