// Every email's words, in one small template form that is safe by default: a template's
// subject is fixed text (no data reaches it, so nobody can make m3dio send a subject line
// of their choosing), and every value put into its body is cleaned of control, direction-
// override and invisible characters and, in the HTML part, escaped, unless it is HTML a
// template made itself. Each email has a plain-text and an HTML part.
//
//   const ready: Template<{ name: string; link: string }> = {
//     subject: "Your MP3 is ready",
//     text: (d) => [text`Your MP3 of "${d.name}" is ready.`, "", text`Download it: ${d.link}`],
//     html: (d) => html`<p>Your MP3 of <strong>${d.name}</strong> is ready.</p><p><a href="${d.link}">Download it</a></p>`,
//   };
//   const { subject, text, html } = render(ready, { name: "<b>x</b>", link });
import escapeHtml from "escape-html";
import { withoutInvisible } from "../lib/filenames.ts";

/** HTML a template made (with `html`), put into another as it is; anything else is escaped. */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

/** A value in a text line: cleaned; nothing for null, undefined or false. */
type TextValue = string | number | null | undefined | false;
/** A value in HTML: text (cleaned and escaped), HTML a template made, or a list of them. */
type HtmlValue = TextValue | SafeHtml | readonly HtmlValue[];

export interface Template<D> {
  /** Fixed text: never built from data. */
  subject: string;
  /** The plain-text part, line by line (build lines that carry values with `text`). */
  text: (data: D) => readonly string[];
  /** The HTML body's content (build it with `html`); render() wraps it in the page. */
  html: (data: D) => SafeHtml;
}

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

const SIGNATURE = "— m3dio";

/** A line of the text part: each value cleaned of control and invisible characters (so it cannot break the line). */
export function text(strings: TemplateStringsArray, ...values: TextValue[]): string {
  return strings.reduce((out, part, i) => out + part + (i < values.length ? plain(values[i]) : ""), "");
}

/** HTML with each value escaped (and cleaned) unless it is SafeHtml; lists are joined. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  return new SafeHtml(strings.reduce((out, part, i) => out + part + (i < values.length ? escaped(values[i]) : ""), ""));
}

/** The email `template` makes of `data`: its fixed subject, the text part and the HTML page, each signed. */
export function render<D>(template: Template<D>, data: D): RenderedEmail {
  return {
    subject: template.subject,
    text: [...template.text(data), "", SIGNATURE].join("\n"),
    html: `<!doctype html><html><body style="font-family: sans-serif">${template.html(data).value}<p>${SIGNATURE}</p></body></html>`,
  };
}

function plain(value: TextValue): string {
  return value === null || value === undefined || value === false ? "" : withoutInvisible(String(value));
}

function escaped(value: HtmlValue): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map(escaped).join("");
  return escapeHtml(plain(value as TextValue));
}
