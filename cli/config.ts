// Where the command-line client keeps the server and the login between runs:
// `$XDG_CONFIG_HOME/m3dio/config.json`, else `~/.config/m3dio/config.json`, readable by its
// owner only (0600, in a 0700 folder): it holds a refresh token or an API key.
//
// Refresh tokens rotate and a reused one ends the whole session, so two runs must never
// trade the same one: a run takes the lock (a folder beside the file, made atomically)
// before it refreshes, and reads the file again under it.
import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { CliError, EXIT } from "./errors.ts";

export const DEFAULT_SERVER = "http://localhost:8080";
const LOCK_WAIT_MS = 15_000;
/** A lock older than this was left by a run that died while holding it. */
const STALE_LOCK_MS = 30_000;

/** What config.json holds; every field is optional. */
export interface StoredConfig {
  server?: string;
  /** The address logged in with, to show who this is. */
  email?: string;
  /** The session's refresh token (rotated on each refresh). */
  refreshToken?: string;
  /** The last access token and when it expires, reused until shortly before then. */
  accessToken?: string;
  accessExpiresAt?: string;
  /** An API key (`m3d_…`), used instead of the session when set. */
  apiKey?: string;
}

/** The config file's path, by the XDG base directory rules. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config");
  return join(base, "m3dio", "config.json");
}

export function readConfig(path = configPath()): StoredConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new CliError(EXIT.usage, `cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as StoredConfig;
  } catch {
    throw new CliError(EXIT.usage, `${path} is not JSON: remove it and log in again`);
  }
}

/** Replaces the file whole (a rename, so a reader never sees half of it), owner-only. */
export function writeConfig(config: StoredConfig, path = configPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const partial = `${path}.${process.pid}.tmp`;
  writeFileSync(partial, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(partial, 0o600); // in case the umask took bits away or the file existed
  renameSync(partial, path);
}

/** Changes the file under the lock: `change` gets what it holds now and answers what it should hold. */
export async function updateConfig<T>(
  change: (config: StoredConfig) => Promise<{ config: StoredConfig; result: T }>,
  path = configPath(),
): Promise<T> {
  const lock = `${path}.lock`;
  await takeLock(lock);
  try {
    const { config, result } = await change(readConfig(path));
    writeConfig(config, path);
    return result;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

async function takeLock(lock: string): Promise<void> {
  mkdirSync(dirname(lock), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      mkdirSync(lock, { mode: 0o700 });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    if (isStale(lock)) rmSync(lock, { recursive: true, force: true });
    else if (Date.now() > deadline)
      throw new CliError(EXIT.usage, `${lock} is held by another m3dio run; remove it if none is running`);
    else await Bun.sleep(50);
  }
}

function isStale(lock: string): boolean {
  try {
    return Date.now() - statSync(lock).mtimeMs > STALE_LOCK_MS;
  } catch {
    return false; // gone meanwhile: the next try takes it
  }
}
