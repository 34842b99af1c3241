// The HTTP side of m3dio in one test process: auth listening on a local port (the
// gateway fetches its JWKS and forwards logins over real HTTP), MariaDB, RabbitMQ
// and MongoDB of the test's own, and gateways built on them with app.handle. Each
// gateway comes with the job and file stores on its database, for setting up and checking.
import { createAuth } from "../../auth.ts";
import { jwksVerifier } from "../../gateway/bearer.ts";
import { createGateway, GatewayConfig } from "../../gateway.ts";
import { parseConfig } from "../../lib/config.ts";
import { fileStore } from "../../lib/files.ts";
import { jobStore } from "../../lib/jobs.ts";
import { createLogger } from "../../lib/log.ts";
import { connectMongo } from "../../lib/mongo.ts";
import { connectQueue } from "../../lib/queue.ts";
import { authTestConfig } from "./auth.ts";
import { dropTestDatabase, testMongoUrl } from "./mongo.ts";
import { createTestDatabase } from "./mysql.ts";
import { createTestVhost } from "./rabbit.ts";

export type Stack = Awaited<ReturnType<typeof startStack>>;

export async function startStack() {
  const log = createLogger("test", "silent");
  const database = await createTestDatabase();
  const mongoUrl = await testMongoUrl();
  const mongo = await connectMongo(mongoUrl);
  const vhost = await createTestVhost();
  const queue = await connectQueue(vhost.url, log);
  // auth publishes (verification emails, deleted accounts) to this stack's vhost too.
  const auth = await createAuth({ config: authTestConfig(database.url), queue });
  auth.app.listen({ port: 0, hostname: "127.0.0.1" });
  const authBase = `http://127.0.0.1:${auth.app.server!.port}`;

  /** A gateway on this stack; config and dependencies can be overridden per test. */
  function gatewayWith(
    overrides: Record<string, string> = {},
    deps: Partial<Parameters<typeof createGateway>[0]> = {},
  ) {
    const config = parseConfig(GatewayConfig, {
      AUTH_URL: authBase,
      MONGODB_URL: mongoUrl,
      AMQP_URL: vhost.url,
      ...overrides,
    });
    const verifier = jwksVerifier(`${authBase}/.well-known/jwks.json`);
    const gateway = createGateway({ config, log, mongo, queue, verifier, ...deps });
    return { ...gateway, jobs: jobStore(mongo.db), files: fileStore(mongo.db, { log }) };
  }
  const gateway = gatewayWith();
  await gateway.start();
  const call = (path: string, init: RequestInit = {}, app = gateway.app) =>
    app.handle(new Request(`http://localhost${path}`, init));
  const postJson = (path: string, body: unknown, app = gateway.app) =>
    call(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }, app);

  let users = 0;
  /** Registers and logs in a fresh user through the gateway. */
  async function newUser(prefix = "user") {
    const email = `${prefix}${++users}.${process.pid}.${Date.now()}@example.com`;
    const password = "a good password";
    const registered = await postJson("/auth/register", { email, password });
    if (registered.status !== 201)
      throw new Error(`register answered ${registered.status}: ${await registered.text()}`);
    const { token } = (await (await postJson("/auth/login", { email, password })).json()) as { token: string };
    return { email, password, token, headers: { authorization: `Bearer ${token}` } };
  }

  return {
    log,
    database,
    auth,
    authBase,
    mongoUrl,
    mongo,
    vhost,
    queue,
    gateway,
    gatewayWith,
    call,
    postJson,
    newUser,
    async stop() {
      await queue.close();
      await vhost.drop();
      await mongo.close();
      await dropTestDatabase(mongoUrl);
      await auth.app.stop();
      await auth.close();
      await database.drop();
    },
  };
}
