// The local servers link tests fetch from: "the internet" on 127.0.0.1 (allow-listed) and a guard on 127.0.0.2 that must never be asked.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { makeVideo } from "../support/media.ts";

export const CLIP_SECONDS = 3;
/** The video the links serve, CLIP_SECONDS long. */
export let clip: Buffer;

export interface Recorded {
  path: string;
  host: string | undefined;
}
export interface LinkServer {
  port: number;
  requests: Recorded[];
  stop(): Promise<void>;
}

/** node:http rather than Bun.serve: it keeps an explicit Content-Length on a streamed body. */
export async function startServer(
  hostname: string,
  route: (path: string, response: ServerResponse, request: IncomingMessage) => void | Promise<void>,
  port = 0,
): Promise<LinkServer> {
  const requests: Recorded[] = [];
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://x").pathname;
    requests.push({ path, host: request.headers.host });
    void route(path, response, request);
  });
  await new Promise<void>((resolve) => server.listen(port, hostname, resolve));
  return {
    port: (server.address() as { port: number }).port,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The clip in 15 pieces over about 1.5 s, with its size announced, so the download phase can be watched. */
async function sendPaced(response: ServerResponse) {
  response.writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) });
  const piece = Math.ceil(clip.length / 15);
  for (let offset = 0; offset < clip.length && !response.destroyed; offset += piece) {
    response.write(clip.subarray(offset, offset + piece));
    await Bun.sleep(100);
  }
  response.end();
}

/** Requests /flaky.mp4 has had: its first is answered 503. */
export const flaky = { calls: 0 };
/** "The internet": what a link may answer. `guardPort` is the forbidden server on 127.0.0.2. */
function internet(guardPort: () => number) {
  return async (path: string, response: ServerResponse) => {
    const hops = /^\/hops\/(\d+)\/(.+)$/.exec(path);
    if (hops) {
      const left = Number(hops[1]);
      if (left > 0) return void response.writeHead(302, { location: `/hops/${left - 1}/${hops[2]}` }).end();
      return sendPaced(response);
    }
    switch (path) {
      case "/clip.mp4":
        return void response
          .writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) })
          .end(clip);
      case "/missing.mp4":
        return void response.writeHead(404, { "content-type": "text/plain" }).end("not found");
      case "/page.html":
        return void response
          .writeHead(200, { "content-type": "text/html; charset=utf-8" })
          .end("<!doctype html><title>My video</title>".repeat(200));
      case "/endless.mp4": {
        // A real video's first bytes, then no end and no announced size: only the running count can stop it.
        response.writeHead(200, { "content-type": "video/mp4" });
        response.write(clip);
        const filler = Buffer.alloc(64 * 1024);
        while (!response.destroyed && response.write(filler)) await Bun.sleep(1);
        response.on("drain", function more() {
          while (!response.destroyed && response.write(filler));
        });
        return;
      }
      case "/announced-big.mp4":
        response.writeHead(200, { "content-type": "video/mp4", "content-length": String(5 * 1024 * 1024) });
        return void response.write(clip);
      case "/slow.mp4":
        response.writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) });
        return void response.write(clip.subarray(0, 8192)); // and then nothing, for ever
      case "/unavailable.mp4":
        return void response.writeHead(503).end("busy");
      case "/flaky.mp4":
        if (flaky.calls++ === 0) return void response.writeHead(503).end("busy");
        return void response
          .writeHead(200, { "content-type": "video/mp4", "content-length": String(clip.length) })
          .end(clip);
      case "/to-unlisted.mp4":
        return void response.writeHead(302, { location: `http://127.0.0.2:${guardPort()}/clip.mp4` }).end();
      case "/to-metadata.mp4":
        return void response
          .writeHead(301, { location: "http://169.254.169.254/latest/meta-data/iam/security-credentials/" })
          .end();
      case "/to-file":
        return void response.writeHead(302, { location: "file:///etc/passwd" }).end();
      default:
        return void response.writeHead(404).end();
    }
  };
}

export let web: LinkServer; // 127.0.0.1, reachable only through the allow-list
export let guard: LinkServer; // 127.0.0.2, never allow-listed: must never be asked anything
export const site = (path: string) => `http://localhost:${web.port}${path}`;

/** Makes the clip and starts both servers: a test file's beforeAll. */
export async function startInternet() {
  clip = Buffer.from(await Bun.file(await makeVideo({ seconds: CLIP_SECONDS })).arrayBuffer());
  web = await startServer(
    "127.0.0.1",
    internet(() => guard.port),
  );
  guard = await startServer(
    "127.0.0.2",
    (_path, response) => void response.writeHead(200, { "content-type": "video/mp4" }).end(clip),
  );
}
export async function stopInternet() {
  await web?.stop();
  await guard?.stop();
}
