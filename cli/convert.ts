// `m3dio convert <file|url>`: the file streamed from disk as the request body (a bar shows
// the bytes sent), or the link given to the server; then the job followed live (a bar shows
// its progress), then the MP3 saved. The conversion options are the server's own
// (lib/options.ts), one flag each, sent as text: the gateway parses and checks them, and
// a bad one is its 422 naming the field.
import { statSync } from "node:fs";
import { basename } from "node:path";
import { type Command, Option } from "commander";
import type { JobView } from "../gateway/models.ts";
import { BITRATES, COVER_CHOICES, ConversionOptions, OPTION_FIELDS } from "../lib/options.ts";
import type { Api, GlobalOptions } from "./api.ts";
import { CliError, EXIT } from "./errors.ts";
import { followJob } from "./follow.ts";
import { onInterrupt } from "./interrupt.ts";
import { saveAudio, stateOf } from "./jobs.ts";
import { type Progress, progressBar, say } from "./progress.ts";
import { printJson } from "./table.ts";

type OptionName = (typeof OPTION_FIELDS)[number];

/** How each option's value is written on the command line, and the values a flag takes when they are few. */
const VALUE_NAMES: Partial<Record<OptionName, string>> = {
  quality: "<0-9>",
  bitrate: "<kbit/s>",
  start: "<time>",
  end: "<time>",
  track: "<index>",
  channels: "<1|2>",
  cover: "<frame|none>",
};
const CHOICES: Partial<Record<OptionName, readonly (string | number)[]>> = {
  bitrate: BITRATES,
  channels: [1, 2],
  cover: COVER_CHOICES,
};
const TIME_HELP = "seconds (75.5) or [hh:]mm:ss[.fff] (1:15)";
const TIME_FLAG_HELP = "; also [hh:]mm:ss[.fff] (1:15)";

interface ConvertFlags extends Partial<Record<OptionName, string | boolean>> {
  output?: string;
  wait: boolean;
  json?: boolean;
}

export function convertCommand(program: Command, connect: () => { api: Api; globals: GlobalOptions }): void {
  const command = program
    .command("convert <source>")
    .description("convert a video or audio file (a path, or an http(s) link) to MP3 and save it")
    .option("-o, --output <path>", "where to save the MP3 (- for stdout); default: the source's name as .mp3")
    .option("--no-wait", "only start the conversion: print the job's id (or the job, with --json) and end")
    .option("--json", "print the finished job as JSON ({file, job}) instead of the file's path");
  for (const name of OPTION_FIELDS) for (const flag of optionFlags(name)) command.addOption(flag);
  command.addHelpText("after", `\nTimes (--start, --end) are ${TIME_HELP}. Every option is checked by the server.`);
  command.action(async (source: string, flags: ConvertFlags) => {
    if (flags.output === "-" && flags.json) throw new CliError(EXIT.usage, "-o - writes the MP3 to stdout: no --json");
    const { api, globals } = connect();
    await convert(api, globals, source, flags);
  });
}

/** The flags for one conversion option, described by the server's own schema: a yes/no one has two. */
function optionFlags(name: OptionName): Option[] {
  const schema = ConversionOptions.properties[name] as { type?: string; description?: string };
  if (schema.type === "boolean")
    return [new Option(`--${name}`, schema.description), new Option(`--no-${name}`, "not that (the default)")];
  const timeHelp = name === "start" || name === "end" ? TIME_FLAG_HELP : "";
  const flag = new Option(`--${name} ${VALUE_NAMES[name] ?? "<text>"}`, `${schema.description}${timeHelp}`);
  const choices = CHOICES[name];
  return [choices ? flag.choices(choices.map(String)) : flag];
}

/** The options given, as the text a form or query carries. */
function chosenOptions(flags: ConvertFlags): [string, string][] {
  return OPTION_FIELDS.flatMap((name) => (flags[name] === undefined ? [] : [[name, String(flags[name])]]));
}

async function convert(api: Api, globals: GlobalOptions, source: string, flags: ConvertFlags): Promise<void> {
  const options = chosenOptions(flags);
  const queued = /^https?:\/\//i.test(source)
    ? await api.json<JobView>("/jobs", "the server did not take the link", {
        method: "POST",
        json: { url: source, ...Object.fromEntries(options) },
      })
    : await upload(api, source, options, globals.quiet);
  if (!flags.wait) {
    if (flags.json) printJson(queued);
    else process.stdout.write(`${queued.id}\n`);
    return;
  }
  say(globals.quiet, `Job ${queued.id}: ${queued.source.filename}`);
  // Stopping the client does not stop the conversion: say where to find it.
  const forget = onInterrupt(() =>
    say(globals.quiet, `The job goes on without this run: m3dio download ${queued.id} (m3dio jobs shows it)`),
  );
  const job = await followWithBar(api, queued, globals.quiet).finally(forget);
  if (job.status === "failed") {
    if (flags.json) printJson({ job });
    throw new CliError(EXIT.failed, `the conversion failed: ${job.error ?? "no reason given"}`, [
      `  job ${job.id}; m3dio jobs shows it, m3dio delete ${job.id} removes it`,
    ]);
  }
  const file = await saveAudio(api, job, flags.output, globals.quiet);
  if (flags.json) printJson({ file, job });
  else if (file !== "-") process.stdout.write(`${file}\n`);
}

/** Streams the file as the raw body of POST /jobs, its name and the options in the query. */
async function upload(api: Api, path: string, options: [string, string][], quiet?: boolean): Promise<JobView> {
  let size: number;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) throw new Error("not a file");
    size = stat.size;
  } catch (error) {
    throw new CliError(EXIT.usage, `cannot read ${path}: ${(error as Error).message}`);
  }
  const query = new URLSearchParams([["filename", basename(path)], ...options]);
  const bar = progressBar(quiet, "upload", size, "bytes");
  let sent = 0;
  const counted = Bun.file(path)
    .stream()
    .pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          controller.enqueue(chunk);
          sent += chunk.byteLength;
          bar.update(sent);
        },
      }),
    );
  try {
    return await api.json<JobView>(`/jobs?${query}`, "the server did not take the file", {
      method: "POST",
      // What the file is, the server judges by its first bytes, not by a declared type.
      headers: { "content-type": "application/octet-stream", "content-length": String(size) },
      body: counted,
      timeoutMs: null,
    });
  } finally {
    bar.stop();
  }
}

/** Follows the job with a bar of its progress, labelled with its state. */
async function followWithBar(api: Api, job: JobView, quiet?: boolean): Promise<JobView> {
  let bar: Progress | undefined;
  try {
    return await followJob(api, job, (view) => {
      bar ??= progressBar(quiet, stateOf(view).replace(/ \d+%$/, ""), 100, "percent");
      bar.update(view.progress, undefined, stateOf(view).replace(/ \d+%$/, ""));
    });
  } finally {
    bar?.stop();
  }
}
