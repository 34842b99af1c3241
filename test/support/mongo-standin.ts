// A small in-memory MongoDB for tests and for running the services by hand
// where no MongoDB can be installed. It speaks the wire protocol, so the real
// `mongodb` driver talks to it over a real socket, unmodified. Data lives in
// this process only and is gone when it stops. Not for production.
//
//   bun test/support/mongo-standin.ts [--port N]   prints mongodb://127.0.0.1:PORT, serves until SIGINT/SIGTERM
//
// Tests use it through test/support/mongo.ts, which prefers MONGODB_URL when set.
import { createServer, type Socket } from "node:net";
import { runCommand } from "./mongo-standin/commands.ts";
import { Store } from "./mongo-standin/store.ts";
import { decodeRequest, encodeMsg, encodeReply, MessageReader } from "./mongo-standin/wire.ts";

export interface MongoStandin {
  /** `mongodb://127.0.0.1:PORT` (no database: append one, e.g. `${url}/m3dio`). */
  url: string;
  port: number;
  /** Closes the listener and every open connection. */
  stop(): Promise<void>;
}

export interface MongoStandinOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Let the process exit while the server is still listening (tests). */
  unref?: boolean;
}

export async function startMongoStandin(opts: MongoStandinOptions = {}): Promise<MongoStandin> {
  const store = new Store();
  const sockets = new Set<Socket>();
  let nextConnectionId = 1;

  const server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    if (opts.unref) socket.unref();
    const connectionId = nextConnectionId++;
    const reader = new MessageReader();
    socket.on("data", (chunk: Buffer) => {
      try {
        // Commands run synchronously, one message at a time, in arrival order,
        // so every connection sees its own writes and no locking is needed.
        for (const message of reader.push(chunk)) {
          const request = decodeRequest(message);
          const db = request.op === "query" ? request.db : request.command.$db;
          if (typeof db !== "string") throw new Error("command without $db");
          const reply = runCommand(request.command, { store, db, connectionId });
          if (request.op === "query") socket.write(encodeReply(request.requestId, reply));
          else if (!request.moreToCome) socket.write(encodeMsg(request.requestId, reply));
        }
      } catch (e) {
        // Unparseable bytes: like mongod, drop the connection; the driver reports a network error.
        console.error(
          `mongo-standin: closing connection ${connectionId}: ${e instanceof Error ? e.message : String(e)}`,
        );
        socket.destroy();
      }
    });
    // Clients vanishing mid-conversation is normal (tests, Ctrl-C).
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  if (opts.unref) server.unref();
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("mongo-standin: no TCP address");

  return {
    url: `mongodb://127.0.0.1:${address.port}`,
    port: address.port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function parsePort(argv: string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = arg === "--port" ? argv[i + 1] : arg.startsWith("--port=") ? arg.slice(7) : undefined;
    if (value === undefined) continue;
    const port = Number(value);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${value}`);
    return port;
  }
  return 0;
}

if (import.meta.main) {
  const standin = await startMongoStandin({ port: parsePort(process.argv.slice(2)) });
  // The URL is the first stdout line: scripts read it to find the port.
  console.log(standin.url);
  console.error("mongo-standin: in-memory MongoDB for tests; data is lost on exit. Ctrl-C to stop.");
  const shutdown = (): void => {
    void standin.stop().then(() => process.exit(0));
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);
}
