// Webhooks (issue 19): registering, listing and deleting them through the gateway, with an
// access token or an API key, the link rules on their URLs, and the OpenAPI document.
// Their deliveries: test/webhook-delivery.test.ts; the harness: test/support/webhooks.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DELIVERY_RETENTION_SECONDS } from "../lib/webhooks.ts";
import { webhookHarness } from "./support/webhooks.ts";

const h = webhookHarness();
beforeAll(() => h.start());
afterAll(() => h.stop());
const { receiver, gatewayDns, call, postJson, newUser, registered, deliveries, gatewayOfItsOwn } = h;

describe("registering", () => {
  test("POST /webhooks answers 201 with a whsec_ secret once; GET lists it without; both events by default", async () => {
    const user = await newUser();
    const webhook = await registered(user);
    expect(webhook.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(Buffer.from(webhook.secret.slice(6), "base64")).toHaveLength(32);
    expect(webhook.events).toEqual(["job.done", "job.failed"]);
    const list = (await (await call("/webhooks", { headers: user.headers })).json()) as { items: object[] };
    expect(list.items).toEqual([
      { id: webhook.id, url: webhook.url, events: ["job.done", "job.failed"], createdAt: expect.any(String) },
    ]);
    expect(JSON.stringify(list)).not.toContain("whsec_");
  });

  test("a URL that is not http(s), carries credentials, or reaches a private or metadata address is 422 naming url", async () => {
    const user = await newUser();
    gatewayDns.set("intranet.test", ["10.1.2.3"]);
    gatewayDns.set("split.test", ["127.0.0.1", "192.168.1.20"]);
    const urls = [
      "ftp://example.com/hook",
      "http://user:secret@hooks.example/hook",
      "not a url",
      "http://10.0.0.7/hook",
      "http://169.254.169.254/latest/meta-data",
      "http://[::1]:8080/hook",
      "http://intranet.test/hook",
      "http://split.test/hook", // every address must pass, not just one
      "http://nowhere.test/hook",
    ];
    for (const url of urls) {
      const answer = await postJson("/webhooks", { url }, user.headers);
      expect(answer.status, url).toBe(422);
      expect(answer.headers.get("content-type")).toStartWith("application/problem+json");
      const problem = (await answer.json()) as { errors: { field: string; message: string }[] };
      expect(
        problem.errors.map((error) => error.field),
        url,
      ).toEqual(["url"]);
    }
    // The gateway without URL_ALLOW_HOSTS refuses the loopback address the test's receiver is on.
    const url = `http://127.0.0.1:${receiver.port}/hook`;
    const plain = await postJson("/webhooks", { url }, user.headers, gatewayOfItsOwn({}).app);
    expect(plain.status).toBe(422);
    expect(((await plain.json()) as { detail: string }).detail).toContain("private address");
    expect((await (await call("/webhooks", { headers: user.headers })).json()) as object).toEqual({ items: [] });
  });

  test("an unknown or no event, a missing url or one that is no text is 422 naming it; no token is 401", async () => {
    const user = await newUser();
    const bad = [
      [{ url: "https://example.com/hook", events: ["job.started"] }, "events"],
      [{ url: "https://example.com/hook", events: [] }, "events"],
      [{ events: ["job.done"] }, "url"],
      [{ url: 42 }, "url"],
    ] as const;
    for (const [body, field] of bad) {
      const answer = await postJson("/webhooks", body, user.headers);
      expect(answer.status, JSON.stringify(body)).toBe(422);
      const { errors } = (await answer.json()) as { errors: { field: string }[] };
      expect(errors.map((error) => error.field).join(" ")).toContain(field);
    }
    expect((await postJson("/webhooks", { url: "https://example.com/hook" }, {})).status).toBe(401);
    expect((await call("/webhooks")).status).toBe(401);
  });

  test("a program's API key registers, lists and deletes webhooks as its owner", async () => {
    const user = await newUser();
    const made = await postJson("/auth/keys", { name: "webhook script" }, user.headers);
    expect(made.status).toBe(201);
    const { key } = (await made.json()) as { key: string };
    const program = { ...user, headers: { authorization: `Bearer ${key}` } };
    const webhook = await registered(program, ["job.failed"]);
    const listed = (await (await call("/webhooks", { headers: user.headers })).json()) as { items: { id: string }[] };
    expect(listed.items.map((item) => item.id)).toEqual([webhook.id]);
    expect(await deliveries(program, webhook.id)).toEqual([]);
    expect((await call(`/webhooks/${webhook.id}`, { method: "DELETE", headers: program.headers })).status).toBe(204);
  });

  test("another user's webhook is 404 to list deliveries of and to delete, and not in their list", async () => {
    const owner = await newUser();
    const other = await newUser();
    const webhook = await registered(owner);
    expect((await call(`/webhooks/${webhook.id}/deliveries`, { headers: other.headers })).status).toBe(404);
    expect((await call(`/webhooks/${webhook.id}`, { method: "DELETE", headers: other.headers })).status).toBe(404);
    expect((await call("/webhooks/not-an-id", { method: "DELETE", headers: other.headers })).status).toBe(404);
    expect((await (await call("/webhooks", { headers: other.headers })).json()) as object).toEqual({ items: [] });
    expect(await deliveries(owner, webhook.id)).toEqual([]); // still the owner's
  });
});

describe("OpenAPI", () => {
  test("a delivery's record (a copy of its job) expires as a job does: a TTL index on createdAt", async () => {
    const indexes = await h.deliveryStore().indexes();
    expect(indexes.find((index) => index.name === "deliveries_expire")).toMatchObject({
      key: { createdAt: 1 },
      expireAfterSeconds: DELIVERY_RETENTION_SECONDS,
    });
    expect(DELIVERY_RETENTION_SECONDS).toBe(168 * 3600);
  });

  test("the webhook routes and the posted event are described", async () => {
    const spec = (await (await call("/docs/json")).json()) as {
      paths: Record<string, Record<string, unknown>>;
      webhooks: Record<string, unknown>;
      components: { schemas: Record<string, { examples?: unknown[] }> };
    };
    expect(Object.keys(spec.paths["/webhooks"]!)).toEqual(expect.arrayContaining(["post", "get"]));
    expect(Object.keys(spec.paths["/webhooks/{id}"]!)).toContain("delete");
    expect(Object.keys(spec.paths["/webhooks/{id}/deliveries"]!)).toContain("get");
    expect(Object.keys(spec.webhooks)).toEqual(["job.done", "job.failed"]);
    for (const name of ["NewWebhook", "CreatedWebhook", "WebhookDeliveries", "WebhookEvent"])
      expect(spec.components.schemas[name], name).toBeDefined();
    expect(spec.components.schemas.CreatedWebhook!.examples).toHaveLength(1);
  });
});
