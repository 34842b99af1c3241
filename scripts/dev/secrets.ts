// Secrets `bun run dev` makes once and keeps across restarts, each in a file of its own
// in DEV_DIR (`.dev/`, git-ignored), readable by this user only. A key made afresh at
// every start would end every session at every edit: `bun --watch` restarts the service.
//
//   const jwt = await devSecret(dir, "jwt-private-key.pem", generateSigningKeyPem);
//   env.JWT_PRIVATE_KEY_FILE = jwt.path;
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as jose from "jose";

export interface DevSecret {
  /** The file holding it: `<dir>/<name>`, mode 0600. */
  path: string;
  value: string;
  /** Made by this call (else read from an earlier start). */
  created: boolean;
}

/** The secret in `<dir>/<name>`; made with `generate` and written (mode 0600) if the file is not there yet. */
export async function devSecret(
  dir: string,
  name: string,
  generate: () => string | Promise<string>,
): Promise<DevSecret> {
  const path = join(dir, name);
  const existing = readIfThere(path);
  if (existing !== undefined) return { path, value: existing, created: false };
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const value = await generate();
  try {
    // "wx": never over a file another start wrote meanwhile; that one wins.
    writeFileSync(path, value, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return { path, value: readFileSync(path, "utf8"), created: false };
  }
  chmodSync(path, 0o600); // the mode above is narrowed by the umask, never widened; be sure
  return { path, value, created: true };
}

function readIfThere(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** A fresh Ed25519 (EdDSA) private key as PKCS#8 PEM, the form auth's JWT_PRIVATE_KEY_FILE takes. */
export async function generateSigningKeyPem(): Promise<string> {
  const { privateKey } = await jose.generateKeyPair("EdDSA", { extractable: true });
  return jose.exportPKCS8(privateKey);
}
