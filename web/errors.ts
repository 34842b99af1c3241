// What went wrong, worded for a person: every answer of the API the page can get, turned
// into a title (what happened, what to do) and the API's own detail when it adds something.
import { ApiError } from "./api.ts";

export type Context = "login" | "register" | "upload" | "link" | "job" | "retry";

export interface Message {
  title: string;
  detail?: string;
}

/** "the file is not a video" → "The file is not a video." */
export function sentence(text: string | undefined): string | undefined {
  const trimmed = text?.trim();
  if (!trimmed) return undefined;
  const capital = trimmed[0]!.toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** 45 → "45 seconds", 900 → "15 minutes", 5400 → "2 hours". */
export function duration(seconds: number): string {
  const unit = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  if (seconds < 90) return unit(Math.max(1, Math.round(seconds)), "second");
  if (seconds < 90 * 60) return unit(Math.round(seconds / 60), "minute");
  return unit(Math.round(seconds / 3600), "hour");
}

const quote = (name: string) => (name === "That file" ? name : `“${name}”`);

/** The fields a 422 names, as sentences: "End: must be greater than start." */
const fieldSentences = (error: ApiError) =>
  error.problem.errors
    ?.map((issue) => sentence(`${issue.field}: ${issue.message.replace(/^\p{Lu}(?!\p{Lu})/u, (c) => c.toLowerCase())}`))
    .join(" ");

/** What to tell the person about `error`; `name` is the file or link concerned. */
export function describeError(error: unknown, context: Context, name = "That file"): Message {
  if (!(error instanceof ApiError))
    return { title: "Something went wrong in this page.", detail: sentence((error as Error)?.message) };
  const detail = sentence(error.problem.detail);
  switch (error.status) {
    case 0:
      return { title: "Can't reach m3dio.", detail: "Check your connection and try again." };
    case 401:
      return context === "login"
        ? { title: detail ?? "Wrong email or password." }
        : { title: "Your session has ended. Please log in again.", detail };
    case 404:
      return { title: "That conversion no longer exists.", detail };
    case 409:
      if (context === "register") return { title: detail ?? "That email already has an account." };
      return context === "retry"
        ? { title: "That conversion can't be retried now.", detail }
        : { title: "The MP3 isn't ready yet.", detail };
    case 410:
      return { title: "That conversion's files are no longer kept.", detail };
    case 413:
      if (error.problem.quota === "storedBytes")
        return context === "link"
          ? { title: "Your storage is full: there is no room for that link's video.", detail }
          : { title: `Your storage is full: there is no room for ${quote(name)}.`, detail };
      return { title: `${quote(name)} is too large to upload.`, detail };
    case 415:
      return context === "link"
        ? { title: "That link doesn't lead to a video we can convert.", detail }
        : { title: `${quote(name)} isn't a video or audio file we can convert.`, detail };
    case 422:
      return unprocessable(error, context, name);
    case 429:
      return tooMany(error, detail);
    case 503:
      return { title: `m3dio is briefly unavailable. Please try again in ${wait(error, "a moment")}.`, detail };
    default:
      return error.status >= 500
        ? { title: "Something went wrong on our side. Please try again.", detail }
        : { title: `The request failed (${error.status}).`, detail };
  }
}

const wait = (error: ApiError, otherwise: string) => (error.retryAfter ? duration(error.retryAfter) : otherwise);

function unprocessable(error: ApiError, context: Context, name: string): Message {
  const fields = fieldSentences(error);
  const detail = sentence(error.problem.detail);
  if (context === "register" || context === "login")
    return { title: "Please check your email and password.", detail: fields || detail };
  // A conversion option the gateway refused names its field (`end`, `bitrate`, …).
  const option = error.problem.errors?.some((issue) => issue.field !== "file" && issue.field !== "url");
  if (option)
    return {
      title:
        context === "link" ? "An option for that link can't be used." : `An option for ${quote(name)} can't be used.`,
      detail: fields || detail,
    };
  if (context === "link") return { title: "That link can't be used.", detail };
  return { title: "The upload could not be read.", detail };
}

/** 429: the quota of conversions under way, or too many attempts; said once, with how long to wait. */
function tooMany(error: ApiError, detail: string | undefined): Message {
  if (error.problem.quota === "activeJobs")
    return {
      title: `You have ${error.problem.limit ?? "the most"} conversions under way already. Please try again in ${wait(error, "a while")}, once one has finished.`,
      detail,
    };
  // The API's detail says why ("too many failed logins for this account from your address; try
  // again later"): its reason, then when to try again, in one sentence each and no repeat.
  const reason = sentence(error.problem.detail?.split(";")[0]) ?? "Too many attempts.";
  return { title: `${reason} Please wait ${wait(error, "a while")} before trying again.` };
}
