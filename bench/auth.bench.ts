// auth over real HTTP against the local MySQL/MariaDB: logins per second and their
// latency (dominated by argon2id, on purpose) with as many logins at once as auth
// hashes at once (HASH_CONCURRENCY, the number of CPUs), and JWKS requests per second.
// Every request comes from 127.0.0.1, so the per-address login rate is lifted here;
// bench/auth-abuse.bench.ts measures the limits themselves.
import { AuthConfig, createAuth } from "../auth.ts";
import { parseConfig } from "../lib/config.ts";
import { createTestDatabase } from "../test/support/mysql.ts";
import { drive, report } from "./support.ts";

const database = await createTestDatabase();
const config = parseConfig(AuthConfig, {
  MYSQL_URL: database.url,
  LOG_LEVEL: "silent",
  LOGIN_RATE_PER_MINUTE: "1000000",
});
const auth = await createAuth({ config });
auth.app.listen({ port: 0, hostname: "127.0.0.1" });
const base = `http://127.0.0.1:${auth.app.server!.port}`;
const credentials = { email: "bench@example.com", password: "benchmark password" };
const post = (path: string, body: unknown) =>
  fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

try {
  await post("/register", credentials);
  const logins = await drive(config.HASH_CONCURRENCY, 5000, async () => {
    const response = await post("/login", credentials);
    if (response.status !== 200) throw new Error(`login answered ${response.status}`);
    await response.arrayBuffer();
  });
  report("auth", `logins/s (${config.HASH_CONCURRENCY} concurrent = HASH_CONCURRENCY)`, logins.perSecond, "req/s");
  report("auth", "login p50", logins.p50, "ms");
  report("auth", "login p99", logins.p99, "ms");
  const jwks = await drive(64, 3000, async () => {
    const response = await fetch(`${base}/.well-known/jwks.json`);
    if (response.status !== 200) throw new Error(`jwks answered ${response.status}`);
    await response.arrayBuffer();
  });
  report("auth", "JWKS req/s (64 concurrent)", jwks.perSecond, "req/s");
  report("auth", "JWKS p99", jwks.p99, "ms");
} finally {
  await auth.app.stop();
  await auth.close();
  await database.drop();
}
