// What the account tests share: a person's account steps at the gateway (over HTTP or
// in-process), the token of an emailed link as the Resend stand-in received it, and
// everything of one user that MySQL and MongoDB still hold (for "nothing remains").
import { Readable } from "node:stream";
import * as jose from "jose";
import { type Db, ObjectId } from "mongodb";
import { createConnection } from "mysql2/promise";
import { BUCKETS, type BucketName, fileStore } from "../../lib/files.ts";
import { jobStore } from "../../lib/jobs.ts";
import type { ReceivedEmail } from "./resend.ts";

/** Sends a request to the gateway: `fetch` to a URL, or an in-process app's `handle`. */
export type Call = (path: string, init?: RequestInit) => Promise<Response>;

export interface SessionAnswer {
  token: string;
  expiresAt: string;
  refreshToken: string;
  refreshExpiresAt: string;
}

export const PASSWORD = "a good password";

/** A person's account steps, each as the gateway answers them. */
export function accountSteps(call: Call) {
  const send = (method: string, path: string, body?: unknown, token?: string) =>
    call(path, {
      method,
      headers: {
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const post = (path: string, body?: unknown, token?: string) => send("POST", path, body, token);
  let users = 0;
  return {
    post,
    newEmail: (prefix = "person") => `${prefix}-${++users}-${process.pid}-${Date.now()}@example.com`,
    register: (email: string, password = PASSWORD) => post("/auth/register", { email, password }),
    login: (email: string, password = PASSWORD) => post("/auth/login", { email, password }),
    /** Logs in and answers the session; throws unless 200. */
    async session(email: string, password = PASSWORD): Promise<SessionAnswer> {
      const answer = await post("/auth/login", { email, password });
      if (answer.status !== 200) throw new Error(`login answered ${answer.status}: ${await answer.text()}`);
      return (await answer.json()) as SessionAnswer;
    },
    refresh: (refreshToken: string) => post("/auth/refresh", { refreshToken }),
    logout: (refreshToken: string) => post("/auth/logout", { refreshToken }),
    verify: (token: string) => post("/auth/verify", { token }),
    resend: (accessToken: string) => post("/auth/verify/resend", undefined, accessToken),
    forgot: (email: string) => post("/auth/password/forgot", { email }),
    reset: (token: string, password: string) => post("/auth/password/reset", { token, password }),
    changePassword: (accessToken: string, currentPassword: string, newPassword: string) =>
      post("/auth/password", { currentPassword, newPassword }, accessToken),
    deleteAccount: (accessToken: string, password = PASSWORD) =>
      send("DELETE", "/auth/account", { password }, accessToken),
  };
}
export type AccountSteps = ReturnType<typeof accountSteps>;

/** The claims of an access token (already checked by whoever gave it). */
export const claimsOf = (token: string) => jose.decodeJwt(token) as jose.JWTPayload & { email_verified?: boolean };

/** The emails to `to` of one kind (by the link they carry), in the order received. */
export function emailsTo(received: ReceivedEmail[], to: string, kind?: "verify" | "reset"): ReceivedEmail[] {
  return received.filter(
    (email) => [email.to].flat().includes(to) && (!kind || new RegExp(`/${kind}\\?token=`).test(email.text)),
  );
}

/** The token of the link in an email of `kind` (`PUBLIC_URL/<kind>?token=…`), from its text part. */
export function linkToken(email: ReceivedEmail, kind: "verify" | "reset"): string {
  const token = new RegExp(`/${kind}\\?token=([A-Za-z0-9_-]{43})`).exec(email.text)?.[1];
  if (!token) throw new Error(`no ${kind} link in the email: ${email.text}`);
  return token;
}

/** Every row of the user's in MySQL, table by table (login attempts by email). */
/** What `mysqlRowsOf` and `mongoDocumentsOf` answer for an account that is gone without a trace. */
export const NOTHING_IN_MYSQL = { users: 0, login_attempts: 0, refresh_tokens: 0, email_tokens: 0 };
export const NOTHING_IN_MONGODB = {
  jobs: 0,
  videos: 0,
  mp3s: 0,
  covers: 0,
  uploads: 0,
  api_keys: 0,
  webhooks: 0,
  job_slots: 0,
};

export async function mysqlRowsOf(mysqlUrl: string, userId: string, email: string) {
  const connection = await createConnection({ uri: mysqlUrl, timezone: "Z" });
  try {
    const count = async (sql: string, value: string) =>
      Number(((await connection.query(sql, [value])) as unknown as [{ n: number }[]])[0][0]!.n);
    return {
      users: await count("SELECT COUNT(*) AS n FROM users WHERE id = ?", userId),
      login_attempts: await count("SELECT COUNT(*) AS n FROM login_attempts WHERE email = ?", email),
      refresh_tokens: await count("SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = ?", userId),
      email_tokens: await count("SELECT COUNT(*) AS n FROM email_tokens WHERE user_id = ?", userId),
    };
  } finally {
    await connection.end();
  }
}

/** Every document of the user's in MongoDB: jobs, files in each bucket (and their chunks), keys, webhooks, quota slots. */
export async function mongoDocumentsOf(db: Db, userId: string) {
  const files = Object.fromEntries(
    await Promise.all(
      BUCKETS.map(async (bucket) => {
        const ids = (
          await db
            .collection(`${bucket}.files`)
            .find({ "metadata.owner": userId }, { projection: { _id: 1 } })
            .toArray()
        ).map((file) => file._id);
        return [
          bucket,
          ids.length + (await db.collection(`${bucket}.chunks`).countDocuments({ files_id: { $in: ids } })),
        ];
      }),
    ),
  ) as Record<BucketName, number>;
  return {
    jobs: await db.collection("jobs").countDocuments({ userId }),
    ...files,
    uploads:
      (await db.collection("uploads").countDocuments({ userId })) +
      (await db.collection("videos.chunks").countDocuments({ files_id: unfinishedUploadOf(userId) })),
    api_keys: await db.collection("api_keys").countDocuments({ userId }),
    webhooks: await db.collection("webhooks").countDocuments({ userId }),
    job_slots: await db.collection("job_slots").countDocuments({ _id: { $regex: `^${userId}/` } } as never),
  };
}

/** The id `furnish` gives the user's unfinished upload, so its chunks can be counted once its record is gone. */
const unfinishedUploadOf = (userId: string) =>
  new ObjectId(new Bun.CryptoHasher("md5").update(`upload:${userId}`).digest("hex").slice(0, 24));

/**
 * Gives the user what an account gathers in MongoDB: `jobs` done jobs, each with a video,
 * an MP3 and a cover in GridFS, a file no job points to (a partial upload), an unfinished
 * resumable upload, an API key, a
 * webhook and a quota slot. Answers the job ids.
 */
export async function furnish(db: Db, userId: string, email: string, jobs = 2): Promise<ObjectId[]> {
  const files = fileStore(db);
  const store = jobStore(db);
  const stored = async (bucket: BucketName, name: string) =>
    (
      await files.upload(bucket, Readable.from([Buffer.alloc(300 * 1024, name)]), {
        owner: userId,
        filename: name,
        contentType: "application/octet-stream",
      })
    ).id;
  const ids: ObjectId[] = [];
  for (let n = 0; n < jobs; n++) {
    const job = await store.create({
      userId,
      email,
      source: { kind: "upload", filename: `talk${n}.mp4`, bytes: 300 * 1024, contentType: "video/mp4" },
      videoFileId: await stored("videos", `talk${n}.mp4`),
    });
    await store.collection.updateOne(
      { _id: job._id },
      {
        $set: {
          status: "done",
          audioFileId: await stored("mp3s", `talk${n}.mp3`),
          coverFileId: await stored("covers", `talk${n}.jpg`),
          audio: { bytes: 300 * 1024, durationSec: 10 },
        },
      },
    );
    ids.push(job._id);
  }
  await stored("videos", "half-uploaded.mp4");
  // An unfinished resumable upload (gateway/uploads/): its record, and a chunk with no file document yet.
  const upload = unfinishedUploadOf(userId);
  await db.collection("uploads").insertOne({ _id: upload, userId, length: 600 * 1024, offset: 255 * 1024 } as never);
  await db.collection("videos.chunks").insertOne({ files_id: upload, n: 0, data: Buffer.alloc(255 * 1024) } as never);
  await db.collection("api_keys").insertOne({ _id: new ObjectId(), userId, name: "laptop" } as never);
  await db.collection("webhooks").insertOne({ _id: new ObjectId(), userId, url: "https://example.com/hook" } as never);
  await db.collection("job_slots").insertOne({ _id: `${userId}/0`, jobId: ids[0], claim: new ObjectId() } as never);
  return ids;
}
