/**
 * `mesh up`'s daemon log: every line as JSON in `<state dir>/meshd.log` (0600). On stderr: on a
 * terminal, readable lines (`12:34:56 info  message (taskId=x)`) at the log level; otherwise
 * (a pipe, a service manager) warnings and errors as JSON lines, for tools. `--log-format`
 * chooses instead of the terminal test.
 */
import { join } from "node:path";
import { pino } from "pino";
import { createLogger, type Logger } from "../daemon/index.js";

export type LogFormat = "pretty" | "json";

const OMITTED = new Set(["level", "time", "msg", "pid", "hostname", "workerId"]);
const LEVEL_NAMES: Record<number, string> = {
  10: "trace",
  20: "debug",
  30: "info",
  40: "warn",
  50: "error",
  60: "fatal",
};
const LEVEL_COLORS: Record<number, number> = { 10: 90, 20: 90, 30: 32, 40: 33, 50: 31, 60: 31 };

/** One JSON log line as `12:34:56 warn  message (taskId=x): error message`. */
export function humanLine(json: string, color = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const time = new Date(typeof o.time === "number" ? o.time : Date.now()).toTimeString().slice(0, 8);
  const level = (LEVEL_NAMES[o.level as number] ?? String(o.level)).padEnd(5);
  const code = LEVEL_COLORS[o.level as number];
  const shown = color && code ? `\x1b[${code}m${level}\x1b[0m` : level;
  const ids = Object.entries(o)
    .filter(([k, v]) => !OMITTED.has(k) && v !== null && typeof v !== "object")
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(" ");
  const err = (o.err as { message?: string } | undefined)?.message;
  return `${time} ${shown} ${String(o.msg ?? "")}${ids ? ` (${ids})` : ""}${err ? `: ${err}` : ""}\n`;
}

/** pretty on a terminal, json otherwise; an explicit choice wins. */
export function logFormat(choice: string | undefined, stderr: { isTTY?: boolean }): LogFormat {
  if (choice === "pretty" || choice === "json") return choice;
  return stderr.isTTY ? "pretty" : "json";
}

export function upLogger(
  stateDir: string,
  level: string,
  format: LogFormat = logFormat(undefined, process.stderr),
  color = Boolean(process.stderr.isTTY) && !process.env.NO_COLOR,
): { logger: Logger; file: string; flush(): void } {
  const file = join(stateDir, "meshd.log");
  if (level === "silent") return { logger: createLogger("silent"), file, flush: () => {} };
  const toFile = pino.destination({ dest: file, append: true, mkdir: true, mode: 0o600, sync: false });
  const stderr =
    format === "pretty"
      ? {
          level: level as pino.Level,
          stream: { write: (line: string) => process.stderr.write(humanLine(line, color)) },
        }
      : { level: "warn" as pino.Level, stream: { write: (line: string) => process.stderr.write(line) } };
  const stream = pino.multistream([{ level: level as pino.Level, stream: toFile }, stderr]);
  return { logger: createLogger(level, {}, stream), file, flush: () => toFile.flushSync() };
}
