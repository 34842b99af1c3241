// What went wrong with a video page, in words, from what yt-dlp printed when it failed
// (its `ERROR:` lines; it exits 1 for every failure, so the words are all there is).
// Each reason is for the user; the kind chooses their email's advice (lib/jobs.ts).
import { LinkUnavailable } from "../lib/link.ts";
import { BadInput } from "./errors.ts";

/** The reasons a page job fails with (tests and docs name them). */
export const PAGE_FAILURES = {
  login: "this site needs a login",
  noVideo: "no video found on this page",
  tooLong: "the video is longer than the limit",
  refused: "the site refused the download",
  private: "the page leads to a private address",
  live: "the video is a live stream, which never ends: there is nothing whole to convert",
  other: "the video could not be downloaded from this page",
} as const;

/** yt-dlp's words for each cause, newest versions' included, matched on its ERROR lines (lower case). */
const CAUSES: [RegExp, () => Error][] = [
  [
    /http error 401|sign in|\blog ?in\b|logged in|registered users|members?[- ]only|subscri(ber|ption)|--cookies|authenticat|private video|age[- ]restricted|confirm your age/,
    () => new BadInput(PAGE_FAILURES.login, "login"),
  ],
  [
    /unsupported url|no video formats found|no suitable formats|requested format is not available|no video could be found|no media found|does not contain any video/,
    () => new BadInput(PAGE_FAILURES.noVideo, "link"),
  ],
  [
    /http error (5\d\d|429|408)|timed out|temporary failure|connection (refused|reset|aborted)|remote end closed|network is unreachable|name resolution/,
    () => new LinkUnavailable("the page's site could not be reached"),
  ],
  [
    /http error (403|404|410|451)|forbidden|geo.?restrict|not available in your country|blocked|copyright|unavailable|removed|terminated/,
    () => new BadInput(PAGE_FAILURES.refused, "link"),
  ],
];

/** The error a failed yt-dlp run stands for: BadInput in words, or LinkUnavailable (retried). */
export function explainYtdlp(stderr: string): Error {
  const errors = stderr
    .split("\n")
    .filter((line) => line.startsWith("ERROR:"))
    .join("\n")
    .toLowerCase();
  const said = errors || stderr.toLowerCase();
  const cause = CAUSES.find(([words]) => words.test(said));
  const error = cause ? cause[1]() : new BadInput(PAGE_FAILURES.other, "link");
  return Object.assign(error, { ytdlp: (errors || stderr).trim().slice(0, 500) });
}
