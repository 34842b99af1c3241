// The health routes the k3d probes and compose healthchecks call.
import { describe, expect, test } from "bun:test";
import { Elysia } from "elysia";
import { AuthConfig, createAuth } from "../../auth.ts";
import { parseConfig } from "../../lib/config.ts";
import { health } from "../../lib/health.ts";
import { PRESENT, PROBE_PATHS, read } from "./support.ts";

describe("health routes the probes and healthchecks call", () => {
  test("auth answers /health/live and /health/ready (503 naming MySQL while it is away)", async () => {
    const config = parseConfig(AuthConfig, { MYSQL_URL: "mysql://root@127.0.0.1:1/unreachable", LOG_LEVEL: "silent" });
    const auth = await createAuth({ config });
    try {
      const live = await auth.app.handle(new Request(`http://auth${PROBE_PATHS.liveness}`));
      expect(live.status).toBe(200);
      const ready = await auth.app.handle(new Request(`http://auth${PROBE_PATHS.readiness}`));
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { status: string; checks: Record<string, string> };
      expect(body.status).toBe("unavailable");
      expect(body.checks.mysql).not.toBe("up");
    } finally {
      await auth.close();
    }
  });

  test("every present service mounts lib/health.ts, which serves both probe paths", async () => {
    for (const name of PRESENT) {
      const source = read(`${name}.ts`);
      expect(source, name).toContain('from "./lib/health.ts"');
      expect(source, name).toMatch(/\.use\(\s*health\(/);
    }
    const app = new Elysia().use(health({ store: async () => undefined }));
    for (const path of Object.values(PROBE_PATHS))
      expect((await app.handle(new Request(`http://service${path}`))).status).toBe(200);
  });
});
