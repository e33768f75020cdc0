/** Human output: aligned tables, relative times, colour only on a TTY and never with NO_COLOR. */
export interface Style {
  color: boolean;
}

export function useColor(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv, flag: boolean): boolean {
  // https://no-color.org: NO_COLOR set to anything non-empty turns colour off.
  return flag && Boolean(stream.isTTY) && !env.NO_COLOR;
}

const CODES = { red: 31, green: 32, yellow: 33, blue: 34, gray: 90, bold: 1 } as const;
export type Color = keyof typeof CODES;

export function paint(style: Style, color: Color, text: string): string {
  return style.color ? `\x1b[${CODES[color]}m${text}\x1b[0m` : text;
}

const STATE_COLOR: Record<string, Color> = {
  queued: "blue",
  claimed: "yellow",
  running: "yellow",
  succeeded: "green",
  failed: "red",
  dead: "red",
  cancelled: "gray",
};

export function paintState(style: Style, state: string): string {
  const c = STATE_COLOR[state];
  return c ? paint(style, c, state) : state;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
const ANSI_RE = /\x1b\[[0-9;]*m/g;
const visibleWidth = (s: string): number => [...s.replace(ANSI_RE, "")].length;

// biome-ignore lint/suspicious/noControlCharactersInRegex: finds terminal control characters
const CONTROL_RE = /\x1b\[[0-9;]*m|[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/**
 * A line fit for a terminal: what tasks print (output lines, titles, reasons) may hold escape
 * sequences that move the cursor, retitle the window or write the clipboard. Colour codes
 * (`ESC [ ... m`) are kept; every other control character is shown as `\xNN`.
 */
export function terminalSafe(line: string): string {
  return line.replace(CONTROL_RE, (m) =>
    m.length > 1 ? m : `\\x${m.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** Columns padded to the widest cell; the last column is not padded. Cells may hold colour. */
export function table(headers: string[], rows: string[][], style: Style): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleWidth(r[i] ?? ""))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat((widths[i] ?? 0) - visibleWidth(c))))
      .join("  ")
      .trimEnd();
  return [line(headers.map((h) => paint(style, "bold", h))), ...rows.map(line)].join("\n");
}

/** "4s ago", "3m ago", "2h ago", "5d ago"; "-" for none. */
export function ago(iso: string, now = Date.now()): string {
  if (!iso) return "-";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return iso;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86_400)}d ago`;
}

/** HH:MM:SS of an ISO time, local. */
export function clock(iso: string): string {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toTimeString().slice(0, 8);
}

export function labelsText(labels: Record<string, string>): string {
  const kv = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return kv.length ? kv.join(",") : "-";
}

export const dash = (s: string | null | undefined): string => (s ? s : "-");
