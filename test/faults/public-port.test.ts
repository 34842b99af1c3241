// What the services' public ports do not give away, on the running processes (the
// runner's wiring, not only the apps): /metrics answers only on each service's
// METRICS_PORT, counting requests under the status they were answered; and a body
// declared over the gateway's limit gets a 413 problem+json naming the limit, before it
// is sent, where Bun alone would answer a bare 413 with no body.
import { beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import type { GatewayClient } from "../support/client.ts";
import type { ServiceProcess } from "../support/service-process.ts";
import { eventually } from "./support.ts";
import { type FaultSystem, faultSetup } from "./system.ts";

let system: FaultSystem;
let http: GatewayClient;

beforeAll(async () => {
  ({ system, http } = await faultSetup({ videoSeconds: 1 }));
}, 90_000);

/** `http_requests_total` of this method, route and status, scraped from the service's METRICS_PORT. */
async function counted(service: ServiceProcess, method: string, route: string, status: number): Promise<number> {
  const text = await (await fetch(`${service.metricsUrl}/metrics`)).text();
  const line = text
    .split("\n")
    .find(
      (sample) =>
        sample.startsWith("http_requests_total{") &&
        [`method="${method}"`, `route="${route}"`, `status="${status}"`].every((label) => sample.includes(label)),
    );
  return line ? Number(line.split(" ").at(-1)) : 0;
}

/** One raw HTTP/1.1 exchange: what the server wrote, and whether it closed the connection within `ms`. */
function rawExchange(port: number, head: string, ms = 5000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(head));
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ text, closed: false });
    }, ms);
    socket.on("data", (chunk) => (text += chunk.toString("utf8")));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve({ text, closed: true });
    });
  });
}

describe("/metrics is off the public ports", () => {
  test("every service answers /metrics on its METRICS_PORT, with its name; on its public port it is 404", async () => {
    const names: string[] = system.services.map((service) => service.name);
    expect(names.sort()).toEqual(["auth", "converter", "converter", "gateway", "notifier"]);
    for (const service of system.services) {
      const scraped = await fetch(`${service.metricsUrl}/metrics`);
      expect(scraped.status, service.name).toBe(200);
      expect(await scraped.text(), service.name).toContain(`service="${service.name}"`);
      const open = await fetch(`${service.url}/metrics`);
      expect(open.status, service.name).toBe(404);
      expect(open.headers.get("content-type"), service.name).toBe("application/problem+json");
    }
    const listening = await system.waitForLog("gateway", (entry) => entry.event === "service.listening");
    expect(listening.metricsPort).toBe(Number(new URL(system.service("gateway").metricsUrl).port));
  });

  test("the gateway counts an unknown path as 404 and a missing token as 401, as it answered them", async () => {
    const gateway = system.service("gateway");
    const before = {
      unknown: await counted(gateway, "GET", "unmatched", 404),
      noToken: await counted(gateway, "GET", "/jobs", 401),
    };
    expect((await http.call("/wp-admin/setup.php")).status).toBe(404);
    expect((await http.call("/jobs")).status).toBe(401);
    await eventually("both answers counted", async () => {
      const unknown = await counted(gateway, "GET", "unmatched", 404);
      const noToken = await counted(gateway, "GET", "/jobs", 401);
      return unknown === before.unknown + 1 && noToken === before.noToken + 1;
    });
  });
});

describe("a body declared too large", () => {
  test("is answered 413 problem+json naming the limit before it is sent, and the connection closed", async () => {
    const gateway = system.service("gateway");
    const user = await http.newUser("too-large");
    const before = await counted(gateway, "POST", "unmatched", 413);
    const tenGiB = 10 * 1024 ** 3;
    // Only the head goes out: the answer must not wait for 10 GiB that never come.
    const { text, closed } = await rawExchange(
      gateway.port,
      `POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${user.headers.authorization}\r\n` +
        `Content-Type: video/mp4\r\nContent-Length: ${tenGiB}\r\n\r\n`,
    );
    const [head = "", body = ""] = text.split("\r\n\r\n");
    expect(head.split("\r\n")[0]).toStartWith("HTTP/1.1 413");
    expect(head.toLowerCase()).toContain("content-type: application/problem+json");
    expect(JSON.parse(body)).toMatchObject({
      status: 413,
      title: "Content Too Large",
      detail: "the body is 10 GiB; the largest video accepted is 2 GiB",
    });
    expect(closed).toBe(true);
    await eventually("the 413 counted", async () => (await counted(gateway, "POST", "unmatched", 413)) === before + 1);
  });
});
