// Auth as the tests start it: the password hash at a cost a test can pay for every user.
// Production hashes with argon2id at 64 MiB and two passes (auth.ts's defaults), some
// hundreds of milliseconds a hash here; tests register and log in hundreds of users, so
// they hash with the same algorithm at 1 MiB and one pass. test/auth.test.ts keeps one
// check of the production default.
import { AuthConfig } from "../../auth.ts";
import { parseConfig } from "../../lib/config.ts";

/** The hash cost for auth in tests, as environment variables (for auth as a process, too). */
export const TEST_HASH_COST = { ARGON2_MEMORY_KIB: "1024", ARGON2_TIME_COST: "1" } as const;

/** Auth's config for a test: this MySQL database, silent logs, the cheap hash; `overrides` win. */
export function authTestConfig(mysqlUrl: string, overrides: Record<string, string> = {}): AuthConfig {
  return parseConfig(AuthConfig, { MYSQL_URL: mysqlUrl, LOG_LEVEL: "silent", ...TEST_HASH_COST, ...overrides });
}
