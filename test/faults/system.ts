// The one running m3dio that every fault test shares: four services as processes
// (two converters) with TCP proxies in front of MongoDB and RabbitMQ, the MongoDB
// stand-in in a process of its own (the test process may be busy being many users),
// a Resend stand-in, and an ffmpeg whose pace a test sets. Starting a system costs
// seconds (a migrated database, five processes one after another); the faults here
// all end restored (a proxy cut is restored, a killed service is started again), so
// one system serves every fault file of a `bun test` run (test/support/shared.ts).
//
// Each file asks for it in beforeAll with `faultSetup()`, which first puts back what a
// file before may have left: proxies restored, every service running and ready, ffmpeg
// at full speed, the Resend stand-in answering 200 with nothing received, and what the
// stores held wrong noted (knownProblems); meanwhile it makes the file's test video. The
// system stops after the last test of the run.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GatewayClient, gatewayClient } from "../support/client.ts";
import { makeVideo } from "../support/media.ts";
import { isRunning, type ServiceName } from "../support/service-process.ts";
import { shared } from "../support/shared.ts";
import { type System, startSystem } from "../support/system.ts";
import { bytesOf, settledStores, startMongoProcess } from "./support.ts";

/** The notifier's retries in the shared system (resend.test.ts chose them to outlast its outage). */
export const NOTIFIER_RETRIES = { maxAttempts: 6, retryBaseMs: 250 } as const;
const CONVERTERS = 2;

export interface FaultSystem extends System {
  /**
   * From the next conversion on, ffmpeg reads its input at `rate` × real time (`-readrate`), so a
   * conversion lasts long enough to be interrupted; no rate: full speed. `paced` is false (and
   * this does nothing) where ffmpeg lacks `-readrate`.
   */
  pace(rate?: number): void;
  paced: boolean;
  /**
   * What the stores' check (inspectStores) found wrong when this file got the system: left by an
   * earlier file, which reported it. settledStores() leaves these out, so one fault's leftovers fail
   * the test that caused them, not every test after it.
   */
  knownProblems: string[];
}

/** The shared system, put back to its start state; see the file's header. */
async function faultSystem(): Promise<FaultSystem> {
  const system = await shared("fault system", startFaultSystem, stopFaultSystem);
  await restore(system);
  return system;
}

/** What a fault file's beforeAll sets up: the shared system, a test video's bytes, a client of the gateway. */
export interface FaultSetup {
  system: FaultSystem;
  video: Uint8Array;
  http: GatewayClient;
}

/**
 * The shared system (faultSystem) with ffmpeg paced at `pace` when given, a test video of
 * `videoSeconds` (made while the system starts) and a client of the gateway.
 */
export async function faultSetup({
  videoSeconds,
  pace,
  requestTimeoutMs,
}: {
  videoSeconds: number;
  pace?: number;
  requestTimeoutMs?: number;
}): Promise<FaultSetup> {
  const made = makeVideo({ seconds: videoSeconds });
  made.catch(() => {}); // awaited below, once the system is up
  const system = await faultSystem();
  if (pace) system.pace(pace);
  const video = await bytesOf(await made);
  return { system, video, http: gatewayClient(system.gatewayUrl, { requestTimeoutMs, inbox: system.resend }) };
}

async function startFaultSystem(): Promise<FaultSystem & { cleanUp(): Promise<void> }> {
  const mongo = await startMongoProcess();
  const work = mkdtempSync(join(tmpdir(), "m3dio-faults-pace-"));
  try {
    const ffmpeg = await adjustableFfmpeg(work);
    const system = await startSystem({
      converters: CONVERTERS,
      mongoServer: mongo.url,
      proxy: { mongodb: true, rabbitmq: true },
      env: {
        // The fault tests keep more than MAX_ACTIVE_JOBS' default of one user's jobs under way
        // (several clients per user, paced conversions); test/quotas.test.ts tests the limit.
        gateway: { MAX_ACTIVE_JOBS: "20" },
        converter: ffmpeg ? { FFMPEG_PATH: ffmpeg.path } : {},
        notifier: {
          MAX_ATTEMPTS: String(NOTIFIER_RETRIES.maxAttempts),
          RETRY_BASE_MS: String(NOTIFIER_RETRIES.retryBaseMs),
        },
      },
    });
    return Object.assign(system, {
      pace: ffmpeg?.pace ?? (() => {}),
      paced: ffmpeg !== undefined,
      knownProblems: [],
      async cleanUp() {
        rmSync(work, { recursive: true, force: true });
        await mongo.stop();
      },
    });
  } catch (error) {
    rmSync(work, { recursive: true, force: true });
    await mongo.stop();
    throw error;
  }
}

async function stopFaultSystem(system: FaultSystem & { cleanUp(): Promise<void> }): Promise<void> {
  try {
    await system.stop();
  } finally {
    await system.cleanUp();
  }
}

/** Undoes what a fault left: proxies back, every service running and ready, full speed, a fresh Resend stand-in. */
async function restore(system: FaultSystem): Promise<void> {
  await Promise.all([system.proxies.mongodb?.restore(), system.proxies.rabbitmq?.restore()]);
  system.pace(undefined);
  system.resend?.reset();
  const down = (name: ServiceName, index = 0) => {
    const found = system.services.find((service) => service.name === name && service.index === index);
    return !found || !isRunning(found);
  };
  // In start order: the gateway needs auth's keys; the workers need nothing but the stores.
  for (const name of ["auth", "gateway"] as const) if (down(name)) await system.start(name);
  const workers: [ServiceName, number][] = [
    ...Array.from({ length: CONVERTERS }, (_, index): [ServiceName, number] => ["converter", index]),
    ["notifier", 0],
  ];
  await Promise.all(
    workers.filter(([name, index]) => down(name, index)).map(([name, index]) => system.start(name, index)),
  );
  await Promise.all(system.services.map((service) => system.waitReady(service)));
  system.knownProblems = (await settledStores({ ...system, knownProblems: [] }, 5000)).problems;
  if (system.knownProblems.length)
    console.warn(`fault system: the stores hold problems an earlier test left:\n${system.knownProblems.join("\n")}`);
}

/**
 * A script for FFMPEG_PATH that runs the real ffmpeg, with `-readrate <rate>` when a rate
 * is set (read from a file at each run, so a test can change it while the converters run).
 * Undefined where ffmpeg lacks `-readrate` (before 5.0).
 */
async function adjustableFfmpeg(work: string): Promise<{ path: string; pace(rate?: number): void } | undefined> {
  const ffmpeg = Bun.which("ffmpeg") ?? "ffmpeg";
  const help = Bun.spawn([ffmpeg, "-hide_banner", "-h", "full"], { stdout: "pipe", stderr: "ignore" });
  if (!(await new Response(help.stdout).text()).includes("-readrate")) return undefined;
  const rateFile = join(work, "rate");
  const path = join(work, "ffmpeg");
  writeFileSync(
    path,
    [
      "#!/bin/sh",
      `rate=$(cat '${rateFile}' 2>/dev/null)`,
      `if [ -n "$rate" ]; then exec '${ffmpeg}' -readrate "$rate" "$@"; fi`,
      `exec '${ffmpeg}' "$@"`,
      "",
    ].join("\n"),
  );
  chmodSync(path, 0o755);
  return {
    path,
    pace: (rate) => (rate ? writeFileSync(rateFile, String(rate)) : rmSync(rateFile, { force: true })),
  };
}
