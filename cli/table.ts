// Rows as aligned columns for a person to read, every column padded to its widest cell,
// the last one left as it is; and the `--json` form, for programs.

export function table(header: string[], rows: string[][]): string {
  if (!rows.length) return "";
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? "").length)),
  );
  const line = (cells: string[]) =>
    `${cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join("  ")
      .trimEnd()}\n`;
  return [header, ...rows].map(line).join("");
}

/** An ISO time to the minute, as a table shows it; empty for none. */
export const minute = (iso: string | null | undefined) => (iso ? iso.slice(0, 16).replace("T", " ") : "");

/** `--json`: the value as indented JSON on stdout. */
export const printJson = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
