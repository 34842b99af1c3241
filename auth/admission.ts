// Whether a login or registration may go on to the password hash: its client address
// (auth/client-address.ts) must be within that route's rate, and a hashing slot must be
// free. Refusals are problems the routes throw (429, 503 with Retry-After), counted
// in /metrics and logged with the address they counted against.
import type { Server } from "elysia/universal";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Logger } from "../lib/log.ts";
import { HttpProblem, TooManyRequests } from "../lib/problem.ts";
import { clientAddress } from "./client-address.ts";
import { type HashSlots, type RateLimiter, rateLimiter } from "./limits.ts";

export type Route = "login" | "registration";

/** Every hashing slot is taken: refused at once, to be tried again in a moment. */
export class HashingFull extends HttpProblem {
  constructor() {
    super(
      503,
      "Service Unavailable",
      "too many logins at once; try again in a moment",
      { retryAfter: 1 },
      { "Retry-After": "1" },
    );
  }
}

export interface AdmissionOptions {
  log: Logger;
  registry: Registry;
  slots: HashSlots;
  /** GATEWAY_SECRET: X-Client-Address is believed beside it. */
  gatewaySecret: string | undefined;
  loginsPerMinute: number;
  registrationsPerHour: number;
}

export function admission({ log, registry, slots, gatewaySecret, ...rates }: AdmissionOptions) {
  const limiters: Record<Route, RateLimiter> = {
    login: rateLimiter({ limit: rates.loginsPerMinute, windowMs: 60_000 }),
    registration: rateLimiter({ limit: rates.registrationsPerHour, windowMs: 3_600_000 }),
  };
  new Gauge({
    name: "auth_password_hashes_running",
    help: "password hashes and checks running now (at most HASH_CONCURRENCY)",
    registers: [registry],
    collect() {
      this.set(slots.taken);
    },
  });
  new Gauge({
    name: "auth_password_hashes_waiting",
    help: "logins and registrations waiting for a hashing slot (at most HASH_CONCURRENCY)",
    registers: [registry],
    collect() {
      this.set(slots.waiting);
    },
  });
  const refused = new Counter({
    name: "auth_requests_refused_total",
    help: "logins and registrations refused before their password was hashed, by reason",
    labelNames: ["route", "reason"] as const,
    registers: [registry],
  });

  return {
    /**
     * The key of the client this request counts against, once its rate allows one more;
     * else throws 429. Log lines are bounded by the rate too: a flood of refusals writes one.
     */
    admit(route: Route, request: Request, server: Server | null): string {
      const client = clientAddress(request.headers, server?.requestIP(request)?.address ?? undefined, gatewaySecret);
      const refusal = limiters[route].take(client.key);
      if (client.refused && (!refusal || refusal.first))
        log.warn(
          { event: "client_address.refused", claimed: client.refused, counted: client.key, route },
          "a client address came without the gateway's secret; counting the connection's own",
        );
      if (!refusal) return client.key;
      refused.inc({ route, reason: "rate_limited" });
      if (refusal.first)
        log.warn(
          { event: "auth.rate_limited", route, clientAddress: client.key },
          "too many requests from one address",
        );
      throw new TooManyRequests(
        `too many ${route} requests from your address; try again later`,
        refusal.retryAfterSeconds,
      );
    },
    /**
     * The 503 for a request that found every hashing slot taken. Its rate token stays
     * spent: a flood from one address empties its own bucket instead of camping on the
     * slots, while a person retrying after a second has tokens to spare.
     */
    hashingFull(route: Route): HashingFull {
      refused.inc({ route, reason: "hashing_full" });
      log.warn({ event: "hashing.full", route }, "every hashing slot is taken");
      return new HashingFull();
    },
    /** Forgets the addresses whose rate has filled up again (memory stays bounded by the active ones). */
    prune(): void {
      limiters.login.prune();
      limiters.registration.prune();
    },
  };
}
export type Admission = ReturnType<typeof admission>;
