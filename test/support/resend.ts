// A local stand-in for the Resend API (POST /emails), reached through the SDK's
// documented base-URL override. It records every request and answers with what
// the test scripts: success by default, or a queue of error statuses.
export interface ReceivedEmail {
  from: string;
  to: string | string[];
  subject: string;
  html: string;
  text: string;
  idempotencyKey: string | null;
  authorization: string | null;
}

export function startResendStandin() {
  const received: ReceivedEmail[] = [];
  const delivered = new Map<string, string>(); // idempotency key → email id, as Resend dedupes
  let script: number[] = [];
  let failForever: number | undefined;
  let counter = 0;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const url = new URL(request.url);
      if (request.method !== "POST" || url.pathname !== "/emails")
        return Response.json({ statusCode: 404, name: "not_found", message: "no such route" }, { status: 404 });
      const body = (await request.json()) as Omit<ReceivedEmail, "idempotencyKey" | "authorization">;
      const email = {
        ...body,
        idempotencyKey: request.headers.get("idempotency-key"),
        authorization: request.headers.get("authorization"),
      };
      received.push(email);
      const status = script.shift() ?? failForever ?? 200;
      if (status === 422)
        return Response.json({ statusCode: 422, name: "validation_error", message: "Invalid `to` field." }, { status });
      if (status !== 200)
        return Response.json({ statusCode: status, name: "application_error", message: "try later" }, { status });
      const key = email.idempotencyKey ?? `none-${++counter}`;
      if (!delivered.has(key)) delivered.set(key, `email-${++counter}`);
      return Response.json({ id: delivered.get(key) });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    received,
    /** Emails Resend would really have delivered (one per idempotency key), of the keys starting with `prefix` (`job-`: conversions' emails). */
    delivered: (prefix = "") => [...delivered.keys()].filter((key) => key.startsWith(prefix)).length,
    /** The next answers, in order (e.g. [500, 500] then success). */
    answer(statuses: number[]) {
      script = [...statuses];
    },
    failAlways(status: number | undefined) {
      failForever = status;
    },
    reset() {
      received.length = 0;
      delivered.clear();
      script = [];
      failForever = undefined;
    },
    stop: () => server.stop(true),
  };
}
