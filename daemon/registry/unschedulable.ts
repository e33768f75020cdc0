/**
 * Why no live worker serves a task: for each worker of the task's pool, what it lacks (a
 * label, a runner) and, for a runner it does not offer, the reason and fix it reported in its
 * presence (no API key, no `claude` command, not enabled).
 */
import { type WorkerInfo, workerServes } from "./worker-info.js";

/** Workers named in one explanation; the rest are counted. */
const MAX_NAMED = 5;

/** What `w` lacks to serve the task, or undefined when it serves it. */
export function whyNotServed(
  w: Pick<WorkerInfo, "pools" | "labels" | "runners" | "unavailableRunners">,
  pool: string,
  labels: Record<string, string>,
  runner: string,
): string | undefined {
  if (!w.pools.includes(pool)) return `serves pools ${w.pools.join(",")}, not "${pool}"`;
  const lacks: string[] = [];
  const missing = Object.entries(labels).filter(([k, v]) => w.labels[k] !== v);
  if (missing.length > 0) {
    lacks.push(
      `lacks label${missing.length > 1 ? "s" : ""} ${missing.map(([k, v]) => `${k}=${v}`).join(",")}` +
        (missing.some(([k]) => k in w.labels)
          ? ` (has ${missing
              .filter(([k]) => k in w.labels)
              .map(([k]) => `${k}=${w.labels[k]}`)
              .join(",")})`
          : ""),
    );
  }
  if (!w.runners.includes(runner)) {
    const why = w.unavailableRunners?.find((u) => u.runner === runner)?.reason;
    lacks.push(
      why
        ? `does not offer runner "${runner}": ${why}`
        : `does not offer runner "${runner}" (it offers ${w.runners.join(",") || "none"})`,
    );
  }
  return lacks.length > 0 ? lacks.join("; ") : undefined;
}

/**
 * Undefined when some live worker that is not draining serves the task; else one line: which
 * workers of the pool lack what, and why.
 */
export function unschedulableReason(
  workers: WorkerInfo[],
  pool: string,
  labels: Record<string, string>,
  runner: string,
): string | undefined {
  if (workers.some((w) => workerServes(w, pool, labels, runner))) return undefined;
  const kv = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  const head = `no live worker serves pool "${pool}"${kv.length ? ` with labels ${kv.join(",")}` : ""} and runner "${runner}"`;
  if (workers.length === 0)
    return `${head}: no worker is live; start one (\`mesh up\`, or \`meshd --nats <url>\`)`;
  const inPool = workers.filter((w) => w.pools.includes(pool));
  if (inPool.length === 0) {
    const pools = [...new Set(workers.flatMap((w) => w.pools))].sort();
    return `${head}: no live worker is in pool "${pool}" (live workers serve ${pools.join(",")}); start one with --pools ${pool}`;
  }
  const named = inPool
    .slice(0, MAX_NAMED)
    .map((w) => `${w.workerId} ${whyNotServed(w, pool, labels, runner)}`);
  if (inPool.length > MAX_NAMED) named.push(`and ${inPool.length - MAX_NAMED} more`);
  return `${head}: ${named.join("; ")}`;
}
