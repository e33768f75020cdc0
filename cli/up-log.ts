/**
 * `mesh up`'s daemon log: every line as JSON in `<state dir>/meshd.log` (0600), and warnings and
 * errors also as one human line each on stderr, so the banner is never mixed with raw JSON.
 */
import { join } from "node:path";
import { pino } from "pino";
import { createLogger, type Logger } from "../daemon/index.js";

const OMITTED = new Set(["level", "time", "msg", "pid", "hostname", "workerId", "component"]);
const LEVEL_NAMES: Record<number, string> = { 40: "warn", 50: "error", 60: "fatal" };

/** One JSON log line as `12:34:56 warn  message (taskId=x): error message`. */
export function humanLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith("\n") ? json : `${json}\n`;
  }
  const time = new Date(typeof o.time === "number" ? o.time : Date.now()).toTimeString().slice(0, 8);
  const level = LEVEL_NAMES[o.level as number] ?? String(o.level);
  const ids = Object.entries(o)
    .filter(([k, v]) => !OMITTED.has(k) && v !== null && typeof v !== "object")
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(" ");
  const err = (o.err as { message?: string } | undefined)?.message;
  return `${time} ${level.padEnd(5)} ${String(o.msg ?? "")}${ids ? ` (${ids})` : ""}${err ? `: ${err}` : ""}\n`;
}

export function upLogger(stateDir: string, level: string): { logger: Logger; file: string; flush(): void } {
  const file = join(stateDir, "meshd.log");
  if (level === "silent") return { logger: createLogger("silent"), file, flush: () => {} };
  const toFile = pino.destination({ dest: file, append: true, mkdir: true, mode: 0o600, sync: false });
  const human = { write: (line: string) => process.stderr.write(humanLine(line)) };
  const stream = pino.multistream([
    { level: level as pino.Level, stream: toFile },
    { level: "warn", stream: human },
  ]);
  return { logger: createLogger(level, {}, stream), file, flush: () => toFile.flushSync() };
}
