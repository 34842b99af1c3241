// A small TCP proxy for fault tests: it sits between the services and a store or
// broker (MongoDB, RabbitMQ) on 127.0.0.1 and lets a test take that store away
// and give it back, without touching the real server (which may be shared):
//
//   const proxy = await startTcpProxy({ port: 5672 });       // target on 127.0.0.1
//   ...services connect to 127.0.0.1:${proxy.port}...
//   proxy.cut();        // every live connection is destroyed and the port refuses new ones
//   proxy.restore();    // the port accepts again (same port), connections go through
//   await proxy.stop();
//
// While cut the listening socket is closed, so a client sees ECONNREFUSED, as
// when the server is down or restarting; live connections are destroyed in both
// directions (the client sees its socket close or reset, as on a crash).
// Bounded: at most `maxConnections` at once; it listens on 127.0.0.1 only.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpProxyOptions {
  /** The server behind the proxy. */
  port: number;
  host?: string; // 127.0.0.1
  /** Port to listen on (0: a free one, kept across cut/restore). */
  listenPort?: number;
  /** Connections carried at once; more are refused (256). */
  maxConnections?: number;
  /** Told the bytes carried towards the server so far, as they pass (to act at a point of an upload). */
  onForwarded?: (total: number) => void;
}

export interface TcpProxy {
  /** The port the proxy listens on (127.0.0.1), the same after a cut and restore. */
  port: number;
  /** Connections being carried right now. */
  connections(): number;
  /** Connections accepted since the start. */
  accepted(): number;
  /** True between cut() and restore(). */
  readonly isCut: boolean;
  /** Destroys every carried connection and stops listening: new connections are refused. Idempotent. */
  cut(): Promise<void>;
  /** Listens again on the same port. Idempotent. */
  restore(): Promise<void>;
  /** Destroys everything and stops listening for good. */
  stop(): Promise<void>;
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const targetHost = options.host ?? "127.0.0.1";
  const maxConnections = options.maxConnections ?? 256;
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  let forwarded = 0;
  let isCut = false;
  let stopped = false;
  let server: Server | undefined;
  let port = options.listenPort ?? 0;

  const onConnection = (client: Socket) => {
    if (isCut || stopped) return void client.destroy();
    accepted++;
    client.setNoDelay(true);
    const upstream = connect({ host: targetHost, port: options.port });
    upstream.setNoDelay(true);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // Data flows both ways with backpressure; either side ending or failing ends both.
    client.pipe(upstream);
    upstream.pipe(client);
    if (options.onForwarded)
      client.on("data", (data: Buffer) => {
        forwarded += data.length;
        options.onForwarded!(forwarded);
      });
    for (const socket of pair) {
      socket.on("error", end);
      socket.on("close", end);
    }
  };

  async function listen(): Promise<void> {
    // The port may be briefly unavailable right after close (never on Linux with
    // SO_REUSEADDR, which node sets); retry a little rather than fail the test.
    for (let tries = 0; ; tries++) {
      const candidate = createServer({ pauseOnConnect: false }, onConnection);
      candidate.maxConnections = maxConnections;
      try {
        await new Promise<void>((resolve, reject) => {
          candidate.once("error", reject);
          candidate.listen(port, "127.0.0.1", () => {
            candidate.off("error", reject);
            resolve();
          });
        });
        const address = candidate.address();
        if (address && typeof address === "object") port = address.port;
        server = candidate;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || tries >= 40) throw error;
        await Bun.sleep(50);
      }
    }
  }

  function destroyAll() {
    for (const [client, upstream] of pairs) {
      // A reset, not a polite FIN: the peer learns at once, as when a server dies.
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    pairs.clear();
  }

  async function closeListener() {
    const current = server;
    server = undefined;
    if (current) await new Promise<void>((resolve) => current.close(() => resolve()));
  }

  await listen();

  return {
    get port() {
      return port;
    },
    connections: () => pairs.size,
    accepted: () => accepted,
    get isCut() {
      return isCut;
    },
    async cut() {
      if (stopped || isCut) return;
      isCut = true;
      const closing = closeListener(); // no new connections from now on
      destroyAll();
      await closing;
    },
    async restore() {
      if (stopped || !isCut) return;
      isCut = false;
      await listen();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const closing = closeListener();
      destroyAll();
      await closing;
    },
  };
}
