// auth's signing key: the configured one (PEM or JWK, inline or from a file), or a
// fresh one for development. Only auth holds the private half; the public half is
// served as a JWKS so the gateway verifies tokens without calling auth.
import { readFileSync } from "node:fs";
import * as jose from "jose";
import type { Logger } from "../lib/log.ts";

export interface SigningKey {
  alg: "EdDSA" | "ES256";
  kid: string;
  privateKey: jose.CryptoKey;
  publicJwk: jose.JWK;
}

/** The configured key (PEM or JWK, inline or from a file), or a fresh one for development. */
export async function loadSigningKey(
  config: { JWT_PRIVATE_KEY?: string; JWT_PRIVATE_KEY_FILE?: string },
  log: Logger,
): Promise<SigningKey> {
  const text =
    config.JWT_PRIVATE_KEY ?? (config.JWT_PRIVATE_KEY_FILE && readFileSync(config.JWT_PRIVATE_KEY_FILE, "utf8"));
  let privateKey: jose.CryptoKey;
  let alg: SigningKey["alg"];
  if (!text) {
    log.warn(
      { event: "key.generated" },
      "JWT_PRIVATE_KEY is not set: generated a signing key for this process only; tokens die with it",
    );
    alg = "EdDSA";
    privateKey = (await jose.generateKeyPair(alg, { extractable: true })).privateKey;
  } else if (text.trim().startsWith("{")) {
    const jwk = JSON.parse(text) as jose.JWK;
    alg = jwk.kty === "EC" ? "ES256" : "EdDSA";
    privateKey = (await jose.importJWK(jwk, alg, { extractable: true })) as jose.CryptoKey;
  } else {
    alg = text.includes("BEGIN EC PRIVATE KEY") ? "ES256" : await pemAlgorithm(text);
    privateKey = await jose.importPKCS8(text.trim(), alg, { extractable: true });
  }
  const { d: _secret, ...publicPart } = await jose.exportJWK(privateKey);
  const kid = await jose.calculateJwkThumbprint(publicPart);
  return { alg, kid, privateKey, publicJwk: { ...publicPart, kid, alg, use: "sig" } };
}

async function pemAlgorithm(pem: string): Promise<SigningKey["alg"]> {
  try {
    await jose.importPKCS8(pem.trim(), "EdDSA");
    return "EdDSA";
  } catch {
    return "ES256";
  }
}
