// `bun run bench`: runs every bench/*.bench.ts in turn (each a separate process, so
// one's memory does not colour another's) and prints one table of their figures.
// Each benchmark prints its results as JSON lines: {"bench", "metric", "value", "unit", "goal"?}.
import { totalmem } from "node:os";
import { basename } from "node:path";

interface Figure {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  goal?: string;
}

const only = process.argv.slice(2);
const files = [...new Bun.Glob("*.bench.ts").scanSync(import.meta.dir)]
  .sort()
  .filter((file) => only.length === 0 || only.some((name) => file.includes(name)));
const figures: Figure[] = [];
let failed = 0;

for (const file of files) {
  process.stderr.write(`running ${file}...\n`);
  const child = Bun.spawn([process.execPath, `${import.meta.dir}/${file}`], { stdout: "pipe", stderr: "inherit" });
  const output = await new Response(child.stdout).text();
  if ((await child.exited) !== 0) {
    failed++;
    process.stderr.write(`${file} failed\n`);
  }
  for (const line of output.split("\n")) {
    if (line.startsWith("{")) figures.push(JSON.parse(line) as Figure);
  }
}

const rows = figures.map((f) => [basename(f.bench), f.metric, `${f.value} ${f.unit}`, f.goal ?? ""]);
const header = ["benchmark", "metric", "value", "goal"];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
const format = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ")} |`;
console.log(
  `machine: ${navigator.hardwareConcurrency} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, bun ${Bun.version}; ${new Date().toISOString().slice(0, 10)}`,
);
console.log(format(header));
console.log(format(widths.map((w) => "-".repeat(w))));
for (const row of rows) console.log(format(row));
process.exit(failed ? 1 : 0);
