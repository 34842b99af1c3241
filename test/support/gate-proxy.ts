// A TCP proxy that holds back one connection's requests, for a test that needs a request
// to reach the server after requests sent later on other connections (test/files.test.ts:
// a chunk insert that lands after the failed upload's clean-up). tcp-proxy.ts kills
// connections; this one keeps the held connection open and only delays its bytes, which
// go on, in order, on release():
//
//   const gate = await startGateProxy({ port: 27017 });  // target on 127.0.0.1
//   gate.holdNext();    // the next connection to send anything is held; the others pass
//   await gate.held();  // its bytes are waiting here
//   await gate.release();  // they go on, and the server has answered
import { connect, createServer, type Server, type Socket } from "node:net";

export interface GateProxy {
  /** The port it listens on (127.0.0.1). */
  port: number;
  /** The next connection to send anything is held: what it sends waits in the proxy until release(). */
  holdNext(): void;
  /** Resolves once a held connection has sent something. */
  held(): Promise<void>;
  /** Sends on what waits, in order, and lets the held connection pass again; resolves once the server answered on it. */
  release(): Promise<void>;
  /** New connections are refused (it stops listening); open ones stay. */
  refuse(): Promise<void>;
  /** Listens again, on the same port. */
  accept(): Promise<void>;
  /** Closes every connection and stops listening. */
  stop(): Promise<void>;
}

interface Link {
  client: Socket;
  upstream: Socket;
  /** Bytes held back, while the link is held. */
  waiting?: Buffer[];
}

export async function startGateProxy(target: { host?: string; port: number }): Promise<GateProxy> {
  const links = new Set<Link>();
  let armed = false;
  let sawHeld: () => void = () => {};
  let heldOnce = new Promise<void>((resolve) => (sawHeld = resolve));

  const onConnection = (client: Socket) => {
    const upstream = connect({ host: target.host ?? "127.0.0.1", port: target.port });
    const link: Link = { client, upstream };
    links.add(link);
    client.on("data", (data: Buffer) => {
      if (armed) {
        armed = false;
        link.waiting = [];
      }
      if (!link.waiting) return void upstream.write(data);
      link.waiting.push(data);
      sawHeld();
    });
    upstream.pipe(client);
    const end = () => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) socket.on("error", end).on("close", end);
  };
  let server: Server | undefined;
  let port = 0;
  const listen = async () => {
    const listening = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      listening.once("error", reject);
      listening.listen(port, "127.0.0.1", () => resolve());
    });
    const address = listening.address();
    if (!address || typeof address === "string") throw new Error("gate proxy: no TCP address");
    port = address.port;
    server = listening;
  };
  /** Closes the listener now; resolves once the connections it accepted are gone too. */
  const stopListening = () => {
    const listening = server;
    server = undefined;
    return new Promise<void>((resolve) => (listening ? listening.close(() => resolve()) : resolve()));
  };
  await listen();

  return {
    port,
    holdNext() {
      armed = true;
    },
    held: () => heldOnce,
    async release() {
      armed = false;
      const answers: Promise<unknown>[] = [];
      for (const link of links) {
        if (!link.waiting) continue;
        answers.push(new Promise((resolve) => link.upstream.once("data", resolve).once("close", resolve)));
        for (const data of link.waiting) link.upstream.write(data);
        link.waiting = undefined;
      }
      heldOnce = new Promise<void>((resolve) => (sawHeld = resolve));
      await Promise.all(answers);
    },
    async refuse() {
      void stopListening(); // not waiting: the open connections stay
    },
    async accept() {
      if (!server) await listen();
    },
    async stop() {
      for (const link of links) {
        link.client.destroy();
        link.upstream.destroy();
      }
      await stopListening();
    },
  };
}
