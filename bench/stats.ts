import { readFileSync } from "node:fs";

/** Percentiles and a small table printer for benchmark output. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export function round(n: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

export function table(rows: Array<Record<string, string | number>>): string {
  if (rows.length === 0) return "";
  const cols = Object.keys(rows[0]!);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(width[i]!))
      .join("  ")
      .trimEnd();
  return [line(cols), ...rows.map((r) => line(cols.map((c) => String(r[c] ?? ""))))].join("\n");
}

export function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? round(Number(m[1]) / 1024) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (user + system) a process has used, in ms; NaN where /proc is not there. */
export function cpuMs(pid: number): number {
  try {
    // Fields after "(comm) ": state is [0], utime [11], stime [12], in clock ticks (100 Hz on Linux).
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** CPU ms per task of the NATS server, the workers (raw workers or daemons) and the bench itself. */
export interface CpuPerTask {
  natsServer: number;
  workers: number;
  benchClient: number;
}

/** Starts a CPU measurement of `serverPid`, `workerPids` and this process; `end(tasks)` reads it. */
export function cpuMeter(serverPid: number | undefined, workerPids: number[]) {
  const read = () => ({
    server: serverPid === undefined ? Number.NaN : cpuMs(serverPid),
    workers: workerPids.reduce((a, p) => a + cpuMs(p), 0),
    self: process.cpuUsage(),
  });
  const start = read();
  return {
    end(tasks: number): CpuPerTask {
      const now = read();
      const self = process.cpuUsage(start.self);
      return {
        natsServer: round((now.server - start.server) / tasks, 3),
        workers: round((now.workers - start.workers) / tasks, 3),
        benchClient: round((self.user + self.system) / 1000 / tasks, 3),
      };
    },
  };
}
