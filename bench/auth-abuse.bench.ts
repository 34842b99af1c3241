// A real user's login while 40 clients hammer login with random emails (issue 15,
// finding 4), against auth as a process of its own (`bun auth.ts`, logging at info)
// with the production hash cost and limits.
// Real users log in from addresses of their own, one login every 3 s each (within
// LOGIN_RATE_PER_MINUTE); the attackers send as fast as answers come, named to auth
// as the gateway names clients (X-Client-Address with GATEWAY_SECRET). Phases:
//   quiet          no attackers
//   unlimited      40 attackers, hashing and rates unlimited: the behaviour before the limits
//   one address    40 attackers from one address
//   40 addresses   40 attackers, each from its own address
// Figures: the real users' login p50/p99 (200 answers) and the share of their logins
// refused (503 while every hashing slot is busy, 429), and what the attackers got.
import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import { createTestDatabase } from "../test/support/mysql.ts";
import { report, startService, stopAll } from "./support.ts";

const BENCH = "auth-abuse";
const SECRET = "bench-gateway-secret-0123456789";
const ATTACKERS = 40;
const REAL_USERS = 8;
const PHASE_MS = 20_000;
const REAL_USER_PERIOD_MS = 3000;
const PASSWORD = "a real user's password";

const database = await createTestDatabase();

async function startAuth(env: Record<string, string>) {
  const auth = await startService("auth", {
    MYSQL_URL: database.url,
    LOG_LEVEL: "info",
    GATEWAY_SECRET: SECRET,
    ...env,
  });
  return auth.url;
}

const post = (base: string, path: string, body: unknown, address: string) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-client-address": address, "x-gateway-secret": SECRET },
    body: JSON.stringify(body),
  });

const percentile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

/** One phase: real users log in on their period while `attackers` loop; answers both sides' outcomes. */
async function phase(base: string, users: string[], attackerAddress: ((i: number) => string) | undefined, tag: number) {
  const deadline = performance.now() + PHASE_MS;
  const real = { latencies: [] as number[], statuses: new Map<number, number>() };
  const attack = new Map<number, number>();
  const count = (map: Map<number, number>, status: number) => map.set(status, (map.get(status) ?? 0) + 1);
  const attackers = attackerAddress
    ? Array.from({ length: ATTACKERS }, async (_, i) => {
        while (performance.now() < deadline) {
          const answer = await post(
            base,
            "/login",
            { email: `${randomUUID()}@example.com`, password: "guess" },
            attackerAddress(i),
          );
          await answer.arrayBuffer();
          count(attack, answer.status);
        }
      })
    : [];
  const realUsers = users.map(async (email, i) => {
    await Bun.sleep((i * REAL_USER_PERIOD_MS) / users.length); // spread over the period
    while (performance.now() < deadline) {
      const start = performance.now();
      const answer = await post(base, "/login", { email, password: PASSWORD }, `192.0.2.${tag * 16 + i}`);
      await answer.arrayBuffer();
      count(real.statuses, answer.status);
      if (answer.status === 200) real.latencies.push(performance.now() - start);
      await Bun.sleep(Math.max(0, REAL_USER_PERIOD_MS - (performance.now() - start)));
    }
  });
  await Promise.all([...attackers, ...realUsers]);
  real.latencies.sort((a, b) => a - b);
  return { real, attack };
}

function reportPhase(name: string, { real, attack }: Awaited<ReturnType<typeof phase>>) {
  const total = [...real.statuses.values()].reduce((a, b) => a + b, 0);
  report(BENCH, `${name}: real user's login p50`, percentile(real.latencies, 0.5), "ms");
  report(BENCH, `${name}: real user's login p99`, percentile(real.latencies, 0.99), "ms");
  report(BENCH, `${name}: real logins answered 200`, (100 * (real.statuses.get(200) ?? 0)) / total, "%");
  for (const status of [503, 429]) {
    if (real.statuses.get(status))
      report(BENCH, `${name}: real logins answered ${status}`, (100 * real.statuses.get(status)!) / total, "%");
  }
  const attempts = [...attack.values()].reduce((a, b) => a + b, 0);
  if (attempts === 0) return;
  report(BENCH, `${name}: attacker requests/s`, attempts / (PHASE_MS / 1000), "req/s");
  for (const [status, n] of [...attack].sort(([a], [b]) => a - b))
    report(BENCH, `${name}: attacker answers ${status}`, (100 * n) / attempts, "%");
}

try {
  report(BENCH, "load average at start", loadavg()[0]!, "");
  const limited = await startAuth({});
  const unlimited = await startAuth({
    HASH_CONCURRENCY: "1024",
    LOGIN_RATE_PER_MINUTE: "1000000",
    REGISTER_RATE_PER_HOUR: "1000000",
  });
  const users = Array.from({ length: REAL_USERS }, (_, i) => `real${i}.${Date.now()}@example.com`);
  for (const [i, email] of users.entries()) {
    const answer = await post(limited, "/register", { email, password: PASSWORD }, `192.0.2.${200 + i}`);
    if (answer.status !== 201) throw new Error(`register answered ${answer.status}: ${await answer.text()}`);
  }
  reportPhase("quiet", await phase(limited, users, undefined, 0));
  reportPhase("unlimited, 40 attackers", await phase(unlimited, users, () => "203.0.113.1", 1));
  reportPhase("limited, 40 attackers from one address", await phase(limited, users, () => "203.0.113.2", 2));
  reportPhase("limited, 40 attackers from 40 addresses", await phase(limited, users, (i) => `198.51.100.${i + 1}`, 3));
  report(BENCH, "load average at end", loadavg()[0]!, "");
} finally {
  await stopAll();
  await database.drop();
}
