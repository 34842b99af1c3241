// `bun run dev`: every service in one terminal, restarted on change (bun --watch),
// each line prefixed with the service name; Ctrl-C stops them all. The stores run
// on localhost (see README: `docker compose up -d mysql mongo rabbitmq`).
import { existsSync } from "node:fs";

const SERVICES = ["auth", "gateway", "converter", "notifier"] as const;
const COLOURS = ["\x1b[36m", "\x1b[35m", "\x1b[33m", "\x1b[32m"];
const RESET = "\x1b[0m";
const root = `${import.meta.dir}/..`;
const width = Math.max(...SERVICES.map((name) => name.length));

const running = SERVICES.filter((name) => existsSync(`${root}/${name}.ts`)).map((name, i) => {
  const child = Bun.spawn([process.execPath, "--watch", `${name}.ts`], {
    cwd: root,
    env: { MIGRATE_ON_START: "true", ...process.env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const prefix = `${COLOURS[i % COLOURS.length]}${name.padEnd(width)} |${RESET} `;
  void pipeLines(child.stdout, prefix, process.stdout);
  void pipeLines(child.stderr, prefix, process.stderr);
  return { name, child };
});

async function pipeLines(stream: ReadableStream<Uint8Array>, prefix: string, out: NodeJS.WriteStream) {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    const lines = (pending + decoder.decode(chunk, { stream: true })).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) out.write(`${prefix}${line}\n`);
  }
  if (pending) out.write(`${prefix}${pending}\n`);
}

let stopping = false;
async function stopAll(signal: NodeJS.Signals) {
  if (stopping) return;
  stopping = true;
  for (const { child } of running) child.kill(signal === "SIGINT" ? "SIGTERM" : signal);
  await Promise.all(running.map(({ child }) => child.exited));
  process.exit(0);
}
process.on("SIGINT", () => void stopAll("SIGINT"));
process.on("SIGTERM", () => void stopAll("SIGTERM"));

// One service dying (not a watch restart) is worth a clear line, not silence.
for (const { name, child } of running) {
  void child.exited.then((code) => {
    if (!stopping) process.stderr.write(`${name} exited with code ${code}\n`);
  });
}
