// What the command-line client ends with: an exit code a script can test, and a message on
// stderr for the person. A refusal from the server is its problem document (RFC 9457):
// the detail, and each field it names.
import type { ProblemBody } from "../lib/problem.ts";

export const EXIT = {
  ok: 0,
  /** The command was written wrong (an unknown flag, a missing argument, a bad value). */
  usage: 1,
  /** Not logged in, a login that ended, a wrong password or key (401/403). */
  auth: 2,
  /** The server refused the request (another 4xx): the problem's detail and fields are printed. */
  refused: 3,
  /** The server or the network is away (no answer, or a 5xx). */
  unavailable: 4,
  /** The conversion ran and failed: the job's error is printed. */
  failed: 5,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** An ending with its exit code; `message` is printed on stderr, `lines` below it. */
export class CliError extends Error {
  override name = "CliError";
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    readonly lines: string[] = [],
  ) {
    super(message);
  }
}

/** The exit code for an HTTP status that is not a success. */
export function exitCodeFor(status: number): ExitCode {
  if (status === 401 || status === 403) return EXIT.auth;
  if (status >= 400 && status < 500) return EXIT.refused;
  return EXIT.unavailable;
}

/** The error for an answer that is not a success, from its problem document when it has one. */
export async function answerError(answer: Response, what: string): Promise<CliError> {
  const text = await answer.text().catch(() => "");
  let problem: Partial<ProblemBody> = {};
  try {
    problem = JSON.parse(text) as ProblemBody;
  } catch {
    // not a problem document (a proxy's page, an empty body): the status says it
  }
  const said = problem.detail ?? problem.title ?? (text.trim().slice(0, 200) || `HTTP ${answer.status}`);
  const fields = (problem.errors ?? []).map(({ field, message }) => `  ${field}: ${message}`);
  const retry = answer.headers.get("retry-after");
  if (retry) fields.push(`  try again in ${retry} s`);
  const code = exitCodeFor(answer.status);
  const hint = code === EXIT.auth && answer.status === 401 ? " (log in again: m3dio login)" : "";
  return new CliError(code, `${what}: ${said}${hint}`, fields);
}

/** A request that got no answer at all: the server is down, the name does not resolve, it timed out. */
export function unreachable(server: string, error: unknown): CliError {
  const why = error instanceof Error ? error.message : String(error);
  return new CliError(EXIT.unavailable, `cannot reach ${server}: ${why}`);
}

/** Writes the error on stderr and answers the exit code. */
export function report(error: unknown): ExitCode {
  if (error instanceof CliError) {
    process.stderr.write(`m3dio: ${error.message}\n`);
    for (const line of error.lines) process.stderr.write(`${line}\n`);
    return error.exitCode;
  }
  // A prompt closed with Ctrl-C or Ctrl-D: nothing was done.
  if (error instanceof Error && error.name === "ExitPromptError") return EXIT.usage;
  process.stderr.write(`m3dio: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT.unavailable;
}
