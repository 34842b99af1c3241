// A fresh RabbitMQ vhost per test file (or per test), deleted at the end, so two
// test runs on one machine never share queues. Administers the broker with
// rabbitmqctl, or with the management HTTP API when RABBITMQ_API_URL is set (e.g.
// http://guest:guest@rabbitmq:15672 in a compose test container that has no
// rabbitmqctl). The AMQP host and credentials come from AMQP_URL when set.
//
// The API's usual connection views (/api/vhosts/:vhost/connections, /api/connections/:name)
// read the statistics database, which learns of a connection only at the next statistics
// collection (collect_statistics_interval, 5 s by default): a connection opened a moment ago
// is not listed and cannot be closed (404). With `disable_stats=true` they read the broker's
// connection tracking instead, which a connection joins as it opens; it is kept by events,
// so the helpers still read until two reads agree, and wait for closed connections to go.

const AMQP_URL = process.env.AMQP_URL || "amqp://guest:guest@127.0.0.1:5672";
const API_URL = process.env.RABBITMQ_API_URL;
const RABBITMQCTL = Bun.which("rabbitmqctl") ?? "/usr/sbin/rabbitmqctl";
/** The longest the connection list may take to settle, or a closed connection to leave it. */
const SETTLE_TIMEOUT_MS = 10_000;
const POLL_MS = 50;

export interface TestVhost {
  /** AMQP URL of the vhost (its name URL-encoded). */
  url: string;
  name: string;
  /** Ids of the client connections open on this vhost right now (rabbitmqctl pids or API names). */
  connections(): Promise<string[]>;
  /**
   * Force-closes every connection on this vhost from the broker side, as a broker restart would, and
   * resolves once the broker lists none of them any more; answers how many.
   */
  closeConnections(): Promise<number>;
  /** Deletes the vhost with its queues; the broker closes its connections. Safe to call twice. */
  drop(): Promise<void>;
}

export async function createTestVhost(): Promise<TestVhost> {
  const name = `m3dio-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const base = new URL(AMQP_URL);
  const user = decodeURIComponent(base.username || "guest");
  const admin = API_URL ? apiAdmin(API_URL) : ctlAdmin();
  await admin.addVhost(name, user);
  const url = new URL(AMQP_URL);
  url.pathname = `/${encodeURIComponent(name)}`;
  let dropped: Promise<void> | undefined;
  return {
    url: url.toString(),
    name,
    connections: () => admin.connections(name),
    closeConnections: async () => {
      const ids = await admin.connections(name);
      await Promise.all(ids.map((id) => admin.closeConnection(id)));
      await pollUntil(
        async () => !(await admin.connections(name)).some((id) => ids.includes(id)),
        `the broker to drop the ${ids.length} closed connection(s) of ${name}`,
      );
      return ids.length;
    },
    drop: () => (dropped ??= admin.deleteVhost(name)),
  };
}

interface Admin {
  addVhost(name: string, user: string): Promise<void>;
  deleteVhost(name: string): Promise<void>;
  connections(vhost: string): Promise<string[]>;
  closeConnection(id: string): Promise<void>;
}

/** Polls `done` until it holds, for at most SETTLE_TIMEOUT_MS. */
async function pollUntil(done: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`RabbitMQ: timed out after ${SETTLE_TIMEOUT_MS} ms waiting for ${what}`);
    await Bun.sleep(POLL_MS);
  }
}

/** Reads the list until two reads in a row agree (a connection mid-open or mid-close has landed). */
async function settled(read: () => Promise<string[]>, what: string): Promise<string[]> {
  let last = (await read()).sort();
  await pollUntil(async () => {
    const next = (await read()).sort();
    const same = next.length === last.length && next.every((id, i) => id === last[i]);
    last = next;
    return same;
  }, `${what} to settle`);
  return last;
}

function ctlAdmin(): Admin {
  return {
    async addVhost(name, user) {
      await ctl("add_vhost", name);
      await ctl("set_permissions", "-p", name, user, ".*", ".*", ".*");
    },
    deleteVhost: async (name) => void (await ctl("delete_vhost", name)),
    // the node's live connection processes: current, no statistics involved
    async connections(vhost) {
      const out = await ctl("list_connections", "--no-table-headers", "pid", "vhost");
      return out
        .split("\n")
        .map((line) => line.split("\t"))
        .filter(([pid, host]) => pid && host === vhost)
        .map(([pid]) => pid!);
    },
    closeConnection: async (pid) => void (await ctl("close_connection", pid, "test")),
  };
}

async function ctl(...args: string[]): Promise<string> {
  const child = Bun.spawn([RABBITMQCTL, "-q", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  if (code !== 0) throw new Error(`rabbitmqctl ${args.join(" ")} failed (${code}): ${err.trim() || out.trim()}`);
  return out;
}

function apiAdmin(apiUrl: string): Admin {
  const api = new URL(apiUrl);
  const auth = `Basic ${btoa(`${decodeURIComponent(api.username || "guest")}:${decodeURIComponent(api.password || "guest")}`)}`;
  api.username = api.password = "";
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(new URL(`/api${path}`, api), {
      method,
      headers: { authorization: auth, "content-type": "application/json", "x-reason": "test" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok && response.status !== 404)
      throw new Error(`RabbitMQ API ${method} ${path}: ${response.status} ${await response.text()}`);
    return response.status === 204 || response.status === 201 ? undefined : response.json().catch(() => undefined);
  };
  const v = encodeURIComponent;
  // connection tracking, not the statistics database (see the top of this file); the per-vhost
  // route ignores disable_stats, so the whole list is read and filtered here
  const tracked = async (vhost: string) =>
    (((await call("GET", "/connections?disable_stats=true")) ?? []) as { name: string; vhost: string }[])
      .filter((connection) => connection.vhost === vhost)
      .map((connection) => connection.name);
  return {
    async addVhost(name, user) {
      await call("PUT", `/vhosts/${v(name)}`);
      await call("PUT", `/permissions/${v(name)}/${v(user)}`, { configure: ".*", write: ".*", read: ".*" });
    },
    deleteVhost: async (name) => void (await call("DELETE", `/vhosts/${v(name)}`)),
    connections: (vhost) => settled(() => tracked(vhost), `the connections of ${vhost}`),
    closeConnection: async (name) => void (await call("DELETE", `/connections/${v(name)}?disable_stats=true`)),
  };
}
