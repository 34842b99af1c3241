// Webhooks (issue 19): their deliveries, end to end. A job's end on `mp3`, the notifier
// posting it to a local receiver that answers as each test scripts it; every signature
// checked with the `standardwebhooks` package; the address rules at every try, on the
// address really connected to; retries, redirects, timeouts, giving up, deleting, a
// notifier restarted and two at once. The harness: test/support/webhooks.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ObjectId } from "mongodb";
import { verified, webhookHarness } from "./support/webhooks.ts";

const h = webhookHarness();
beforeAll(() => h.start());
afterAll(() => h.stop());
const { receiver, notifierDns, call, newUser, registered, finished, logged, deliveries } = h;

describe("delivering", () => {
  test("a done job is posted signed; a 500 is tried again with the same webhook-id; the deliveries show both tries", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.script(webhook.path, [500]);
    const jobId = await finished(user, "done");
    await logged("webhook.delivered", webhook.id, jobId);
    const [first, second] = receiver.at(webhook.path);
    expect(receiver.at(webhook.path)).toHaveLength(2);
    for (const request of [first!, second!]) {
      expect(() => verified(webhook.secret, request)).not.toThrow();
      expect(request.headers["content-type"]).toBe("application/json");
      expect(Number(request.headers["webhook-timestamp"])).toBeGreaterThan(Date.now() / 1000 - 300);
    }
    expect(second!.headers["webhook-id"]).toBe(first!.headers["webhook-id"]!);
    expect(first!.headers["webhook-id"]).toMatch(/^msg_[A-Za-z0-9_-]+$/);
    expect(second!.body).toBe(first!.body);
    // The body: the event, when the job ended, and the job exactly as GET /jobs/:id shows it.
    const event = JSON.parse(second!.body) as { type: string; timestamp: string; data: unknown };
    const job = await (await call(`/jobs/${jobId}`, { headers: user.headers })).json();
    expect(event).toEqual({
      type: "job.done",
      timestamp: (await h.job(jobId))!.finishedAt!.toISOString(),
      data: job,
    });
    // Signed with another secret, or with the body changed, the library refuses it.
    expect(() => verified(`whsec_${Buffer.alloc(32, 7).toString("base64")}`, second!)).toThrow();
    expect(() => verified(webhook.secret, { ...second!, body: second!.body.replace("done", "gone") })).toThrow();

    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery).toMatchObject({
      id: first!.headers["webhook-id"],
      event: "job.done",
      jobId,
      state: "delivered",
      attempts: 2,
      lastStatus: 200,
      deliveredAt: expect.any(String),
    });
    expect(delivery!.tries.map((tried) => tried.status)).toEqual([500, 200]);
    expect(delivery!.nextAttemptAt).toBeUndefined();
  });

  test("a failed job is posted as job.failed with the reason; a webhook of job.done only is not posted it", async () => {
    const user = await newUser();
    const both = await registered(user);
    const doneOnly = await registered(user, ["job.done"]);
    const jobId = await finished(user, "failed");
    // Both webhooks were looked at once, by the same look-up: the one that asked was written, so the other was not.
    await logged("webhook.delivered", both.id, jobId);
    const [request] = receiver.at(both.path);
    const event = verified(both.secret, request!) as { type: string; data: { status: string; error: string } };
    expect(event.type).toBe("job.failed");
    expect(event.data).toMatchObject({ status: "failed", error: "the video has no audio track" });
    expect(await deliveries(user, doneOnly.id)).toEqual([]);
    expect(receiver.at(doneOnly.path)).toEqual([]);
  });

  test("a redelivered `mp3` message queues nothing twice", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    const jobId = await finished(user, "done");
    await logged("webhook.delivered", webhook.id, jobId);
    await h.announce(jobId, "done", `${jobId}-done-again`);
    await logged("webhook.duplicate", webhook.id, jobId);
    expect(await deliveries(user, webhook.id)).toHaveLength(1);
    expect(receiver.at(webhook.path)).toHaveLength(1);
  });

  test("a redirect is not followed: the 302 is a failed try, and the delivery is given up after the schedule", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.answerAlways(webhook.path, { redirect: "/elsewhere" });
    const jobId = await finished(user, "done");
    const givenUp = await logged("webhook.given_up", webhook.id, jobId);
    expect(givenUp).toMatchObject({ status: 302, attempt: 4 });
    expect(receiver.at("/elsewhere")).toEqual([]);
    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery).toMatchObject({ state: "given_up", attempts: 4, lastStatus: 302, givenUpAt: expect.any(String) });
    expect(delivery!.tries).toHaveLength(4);
    expect(delivery!.tries[0]).toMatchObject({ status: 302, error: "redirects are not followed" });
    expect(new Set(receiver.at(webhook.path).map((request) => request.headers["webhook-id"])).size).toBe(1);
  });

  test("no answer within WEBHOOK_TIMEOUT_MS is a failed try; the next one delivers", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.script(webhook.path, ["hang"]);
    const jobId = await finished(user, "done");
    const failed = await logged("webhook.failed", webhook.id, jobId);
    expect(failed.reason).toBe("no answer within 400 ms");
    await logged("webhook.delivered", webhook.id, jobId);
    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery!.tries).toEqual([
      { at: expect.any(String), error: "no answer within 400 ms" },
      { at: expect.any(String), status: 200 },
    ]);
  });

  test("answered 500 every time: four tries (the schedule's three retries), then given up, and counted", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.answerAlways(webhook.path, 500);
    const jobId = await finished(user, "done");
    await logged("webhook.given_up", webhook.id, jobId);
    expect(receiver.at(webhook.path)).toHaveLength(4);
    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery).toMatchObject({ state: "given_up", attempts: 4, lastStatus: 500 });
    expect(delivery!.nextAttemptAt).toBeUndefined();
    const metrics = await (
      await h.notifier().service.metricsApp.handle(new Request("http://localhost/metrics"))
    ).text();
    expect(metrics).toMatch(/notifier_webhook_attempts_total\{[^}]*outcome="given_up"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/notifier_webhook_attempts_total\{[^}]*outcome="failed"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/notifier_webhook_attempts_total\{[^}]*outcome="delivered"[^}]*\} [1-9]/);
  });

  test("410 Gone gives up at once: the receiver wants no more of it", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.answerAlways(webhook.path, 410);
    const jobId = await finished(user, "done");
    await logged("webhook.given_up", webhook.id, jobId);
    expect(receiver.at(webhook.path)).toHaveLength(1);
  });

  test("DELETE stops deliveries: the waiting ones go, and a later job queues none", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    const kept = await registered(user);
    receiver.answerAlways(webhook.path, 503);
    const first = await finished(user, "done");
    await logged("webhook.failed", webhook.id, first);
    expect((await call(`/webhooks/${webhook.id}`, { method: "DELETE", headers: user.headers })).status).toBe(204);
    expect(await h.deliveryStore().countDocuments({ webhookId: new ObjectId(webhook.id) })).toBe(0);
    expect((await call(`/webhooks/${webhook.id}/deliveries`, { headers: user.headers })).status).toBe(404);
    const later = await finished(user, "done");
    await logged("webhook.queued", kept.id, later); // queued in the same pass as the deleted one would be
    expect(await h.deliveryStore().countDocuments({ webhookId: new ObjectId(webhook.id) })).toBe(0);
    expect(receiver.at(webhook.path).map((request) => JSON.parse(request.body).data.id)).not.toContain(later);
  });
});

describe("addresses at delivery", () => {
  test("a name that turns private after registration is refused at delivery, never connected to, then given up", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    notifierDns.set(webhook.host, ["10.20.30.40"]);
    const jobId = await finished(user, "done");
    const refused = await logged("webhook.refused", webhook.id, jobId);
    expect(refused).toMatchObject({ address: "10.20.30.40", range: "private" });
    await logged("webhook.given_up", webhook.id, jobId);
    const [delivery] = await deliveries(user, webhook.id);
    expect(delivery!.lastError).toContain("private address");
    expect(delivery!.lastStatus).toBeUndefined();
    expect(receiver.at(webhook.path)).toEqual([]);
  });

  test("the connection goes to the address that was checked: a name answering differently on a second look-up is not looked up again", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    // Rebinding: the first answer passes the check; any later one is a loopback address URL_ALLOW_HOSTS does not
    // open and where nothing listens. Delivered on the first try means the checked address was the one used.
    notifierDns.set(webhook.host, ["127.0.0.1"], ["127.0.0.2"]);
    const jobId = await finished(user, "done");
    const delivered = await logged("webhook.delivered", webhook.id, jobId);
    expect(delivered.attempt).toBe(1);
    expect(receiver.at(webhook.path)).toHaveLength(1);
  });

  test("a name with one private address among public ones is refused whole", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    notifierDns.set(webhook.host, ["127.0.0.1", "169.254.169.254"]);
    const jobId = await finished(user, "done");
    expect(await logged("webhook.refused", webhook.id, jobId)).toMatchObject({ range: "metadata" });
    expect(receiver.at(webhook.path)).toEqual([]);
  });
});

describe("durable and shared", () => {
  test("a delivery waiting to be retried outlasts its notifier: the next one delivers it with the same webhook-id", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    receiver.script(webhook.path, [500]);
    const jobIds: string[] = [];
    // A notifier whose retries wait long takes the event: it tries once and is stopped while the retry waits.
    await h.restartNotifier(async () => {
      const slow = await h.notifierOfItsOwn({ WEBHOOK_RETRY_SCHEDULE_MS: "1500" });
      const jobId = await finished(user, "done");
      await logged("webhook.failed", webhook.id, jobId);
      await slow.stop();
      jobIds.push(jobId);
    });
    const [jobId] = jobIds;
    await logged("webhook.delivered", webhook.id, jobId);
    const requests = receiver.at(webhook.path);
    expect(requests).toHaveLength(2);
    expect(requests[1]!.headers["webhook-id"]).toBe(requests[0]!.headers["webhook-id"]!);
  });

  test("two notifiers at once deliver each event once", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    const second = await h.notifierOfItsOwn();
    try {
      const ids = [];
      for (let n = 0; n < 6; n++) ids.push(await finished(user, "done"));
      for (const jobId of ids) await logged("webhook.delivered", webhook.id, jobId);
      const requests = receiver.at(webhook.path);
      expect(requests).toHaveLength(6);
      expect(new Set(requests.map((request) => request.headers["webhook-id"])).size).toBe(6);
      expect(new Set(requests.map((request) => JSON.parse(request.body).data.id))).toEqual(new Set(ids));
    } finally {
      await second.stop();
    }
  });
});
