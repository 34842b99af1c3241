// The web page's API client (web/api.ts) on its own, without a browser: the pure parts.
import { describe, expect, test } from "bun:test";
import { Value } from "@sinclair/typebox/value";
import { ConversionOptions, OPTION_FIELDS } from "../lib/options.ts";
import { ApiError, optionFields } from "../web/api.ts";
import { describeError } from "../web/errors.ts";
import { parseTime, placeInLine, tagsFromName, timeText } from "../web/format.ts";
import { ALL_FIELDS } from "../web/options.ts";
import { PRESETS, presetOf, soundSummary } from "../web/presets.ts";
import { SseParser } from "../web/sse.ts";

describe("the page's API client", () => {
  test("the event-stream parser survives chunks split anywhere, CRLF, comments and multi-line data", () => {
    const stream =
      ': keep-alive\r\nevent: status\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: deleted\ndata: {"id":"x"}\n\ndata: plain\n\n';
    for (const size of [1, 2, 3, 7, stream.length]) {
      const parser = new SseParser();
      const events = [];
      for (let i = 0; i < stream.length; i += size) events.push(...parser.push(stream.slice(i, i + size)));
      expect(events).toEqual([
        { event: "status", id: "7", data: '{"a":\n1}' },
        { event: "deleted", id: "7", data: '{"id":"x"}' },
        { event: "message", id: "7", data: "plain" },
      ]);
    }
  });

  test("every error the API gives is worded for a person, with the API's detail", () => {
    const problem = (status: number, detail?: string, retryAfter?: number) =>
      new ApiError(status, { status, detail }, retryAfter);
    expect(describeError(problem(0), "upload")).toEqual({
      title: "Can't reach m3dio.",
      detail: "Check your connection and try again.",
    });
    expect(describeError(problem(401, "wrong email or password"), "login")).toEqual({
      title: "Wrong email or password.",
    });
    expect(describeError(problem(413, "the video is larger than 2 GiB"), "upload", "a.mp4")).toEqual({
      title: "“a.mp4” is too large to upload.",
      detail: "The video is larger than 2 GiB.",
    });
    expect(describeError(problem(415, "the file is not a video"), "upload", "a.txt").title).toBe(
      "“a.txt” isn't a video or audio file we can convert.",
    );
    expect(describeError(problem(422, "bad url"), "link")).toEqual({
      title: "That link can't be used.",
      detail: "Bad url.",
    });
    expect(describeError(problem(429, "slow down", 900), "login").title).toBe(
      "Slow down. Please wait 15 minutes before trying again.",
    );
    expect(describeError(problem(429, undefined, 900), "login").title).toBe(
      "Too many attempts. Please wait 15 minutes before trying again.",
    );
    expect(describeError(problem(503, "storage is briefly unavailable; try again shortly", 5), "upload")).toEqual({
      title: "m3dio is briefly unavailable. Please try again in 5 seconds.",
      detail: "Storage is briefly unavailable; try again shortly.",
    });
    expect(describeError(problem(500), "job").title).toBe("Something went wrong on our side. Please try again.");
    expect(describeError(problem(409, "only a failed job can be retried; this one is done"), "retry")).toEqual({
      title: "That conversion can't be retried now.",
      detail: "Only a failed job can be retried; this one is done.",
    });
    expect(describeError(problem(410, "the job's video is no longer kept; upload the video again"), "retry")).toEqual({
      title: "That conversion's files are no longer kept.",
      detail: "The job's video is no longer kept; upload the video again.",
    });
  });

  test("a quota's refusal says which quota and what to do, with the API's detail", () => {
    const storage = new ApiError(413, {
      status: 413,
      detail: "the video would pass your storage quota of 5 GiB (USER_STORAGE_BYTES; 4.9 GiB used)",
      quota: "storedBytes",
      limit: 5 * 1024 ** 3,
    });
    expect(describeError(storage, "upload", "a.mp4")).toEqual({
      title: "Your storage is full: there is no room for “a.mp4”.",
      detail: "The video would pass your storage quota of 5 GiB (USER_STORAGE_BYTES; 4.9 GiB used).",
    });
    expect(describeError(storage, "link").title).toBe("Your storage is full: there is no room for that link's video.");
    const active = new ApiError(429, { status: 429, detail: "you already have 5", quota: "activeJobs", limit: 5 }, 30);
    expect(describeError(active, "upload")).toEqual({
      title: "You have 5 conversions under way already. Please try again in 30 seconds, once one has finished.",
      detail: "You already have 5.",
    });
  });
});

describe("the page's options and words", () => {
  test("every field of the options model has a control, in one group; presets are valid options", () => {
    expect([...ALL_FIELDS].sort()).toEqual([...OPTION_FIELDS].sort());
    expect(new Set(ALL_FIELDS).size).toBe(ALL_FIELDS.length);
    for (const preset of PRESETS) expect(Value.Check(ConversionOptions, preset.options)).toBe(true);
    expect(presetOf({ bitrate: 64, channels: 1, normalize: true, title: "x" })?.id).toBe("podcast");
    expect(presetOf({ bitrate: 64 })).toBeUndefined();
    expect(soundSummary({ quality: 0, track: 1 })).toBe("Music (VBR best), audio track 2");
    expect(soundSummary({ bitrate: 128, channels: 1 })).toBe("Custom: 128 kbit/s, mono");
  });

  test("options go as multipart fields by their model names, numbers and flags as text, unset ones left out", () => {
    expect(optionFields({ start: 1.5, end: 4, normalize: true, bitrate: 64, title: "Só", track: undefined })).toEqual([
      ["start", "1.5"],
      ["end", "4"],
      ["normalize", "true"],
      ["bitrate", "64"],
      ["title", "Só"],
    ]);
  });

  test("trim points as people write them, places in line, tags from a file's name", () => {
    expect(["75.5", "1:15.5", "1:02:03", "90:00", "", "1:75", "a", "-1"].map(parseTime)).toEqual([
      75.5,
      75.5,
      3723,
      5400,
      undefined,
      Number.NaN,
      Number.NaN,
      Number.NaN,
    ]);
    expect([4, 75.5, 3725.25].map(timeText)).toEqual(["0:04", "1:15.5", "1:02:05.25"]);
    expect([1, 2, 3, 4, 11, 12, 13, 21, 22, 101].map(placeInLine)).toEqual([
      "Next in line",
      "2nd in line",
      "3rd in line",
      "4th in line",
      "11th in line",
      "12th in line",
      "13th in line",
      "21st in line",
      "22nd in line",
      "101st in line",
    ]);
    expect(tagsFromName("Daft Punk - One More Time.mp4")).toEqual({ artist: "Daft Punk", title: "One More Time" });
    expect(tagsFromName("holiday_in_rome.final.webm")).toEqual({ title: "holiday in rome.final" });
  });

  test("a lockout is said once; a refused option names its field", () => {
    const locked = new ApiError(
      429,
      { status: 429, detail: "too many failed logins for this account from your address; try again later" },
      900,
    );
    expect(describeError(locked, "login")).toEqual({
      title: "Too many failed logins for this account from your address. Please wait 15 minutes before trying again.",
    });
    const option = new ApiError(422, {
      status: 422,
      detail: "invalid conversion options",
      errors: [{ field: "end", message: "must be greater than start" }],
    });
    expect(describeError(option, "upload", "a.mp4")).toEqual({
      title: "An option for “a.mp4” can't be used.",
      detail: "End: must be greater than start.",
    });
  });
});
