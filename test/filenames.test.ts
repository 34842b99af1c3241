// The names people give files come back in headers, emails and the page: what they can
// hide (direction overrides, invisible characters, controls) is taken out.
import { describe, expect, test } from "bun:test";
import { cleanFilename, mp3Filename } from "../lib/filenames.ts";

describe("cleanFilename", () => {
  test("a right-to-left override cannot disguise an executable: the name reads as written", () => {
    expect(cleanFilename("invoice\u202Eexe.mp4")).toBe("invoiceexe.mp4");
    expect(mp3Filename("invoice\u202Eexe.mp4")).toBe("invoiceexe.mp3");
  });

  test("bidirectional isolates and marks, zero-width characters, the BOM and soft hyphens are removed", () => {
    const hidden = ["\u2066", "\u2067", "\u2068", "\u2069", "\u200E", "\u200F", "\u061C", "\u200B", "\u200C", "\u200D"];
    const more = ["\u2060", "\uFEFF", "\u00AD", "\u202A", "\u202B", "\u202C", "\u202D"];
    expect(cleanFilename(`ho${[...hidden, ...more].join("")}liday.mp4`)).toBe("holiday.mp4");
  });

  test("C0 and C1 controls, DEL, line and paragraph separators are removed; quotes stay, as typed", () => {
    expect(cleanFilename('a\u0000b\u001Fc\u007Fd\u0085e\u009Bf\u2028g\u2029h"i".mp4')).toBe('abcdefgh"i".mp4');
  });

  test("letters of every script and emoji stay; directories go; the length is capped without splitting a character", () => {
    expect(cleanFilename("../../etc/Ünïcödé 東京 🎵.mp4")).toBe("Ünïcödé 東京 🎵.mp4");
    const long = cleanFilename(`${"🎵".repeat(250)}.mp4`);
    expect([...long]).toHaveLength(200);
    expect(long).toBe("🎵".repeat(200));
  });

  test("a name of nothing but hidden characters becomes 'video'", () => {
    expect(cleanFilename("\u202E\u200B")).toBe("video");
    expect(mp3Filename("\u202E.mp4")).toBe("audio.mp3");
  });
});
