/**
 * The `claims` scenario's latency rows, measured the same way for every system (the mesh, and
 * BullMQ on Redis as the peer): one worker process with the same concurrency, the same number of
 * tasks, and each task's latency taken from the bench's clock just before its submit call to the
 * moment a worker started running it, as each system records it: the mesh, the attempt's
 * `startedAt` in the record (stamped when the daemon writes its claim); BullMQ, the job's
 * `processedOn` (stamped when the worker moves it to active). Same machine, same clock.
 *
 * - idle pickup: an idle fleet gets one task at a time, the next only after the previous has
 *   finished and a short random pause (so submits fall anywhere in the workers' idle cycle, e.g.
 *   a pending pull's expiry); p50 is the target.
 * - light load: tasks arrive at a fixed rate of a few per second whether or not the earlier
 *   ones have finished; p99 is the target.
 * The systems are up at the same time and measured side by side (turn by turn when idle, on
 * offset schedules under light load).
 */
import { percentile, round } from "./stats.js";

/** Now, epoch ms with a fraction: the workers stamp whole ms, both systems alike. */
const now = () => performance.timeOrigin + performance.now();

/** One system under test, warm and idle. */
export interface LightSide {
  /** Submits task (or job) `id`; `t` is the bench's clock just before the call. */
  submit(id: string, t: number): Promise<void>;
  /**
   * Resolves once every task in `ids` has finished; returns each one's submit -> running ms,
   * measured from the `t` its submit was given.
   */
  finished(ids: string[]): Promise<number[]>;
  stop(): Promise<void>;
}

export interface LightOptions {
  /** Tasks in each of the two measurements. */
  count: number;
  /** Light load: tasks per second. */
  ratePerSec: number;
  /** Unmeasured tasks first (connections, JIT), one at a time. */
  warmup: number;
}

export interface LightResult {
  tasks: number;
  idlePickupP50Ms: number;
  idlePickupP99Ms: number;
  lightLoadRatePerSec: number;
  lightLoadP50Ms: number;
  lightLoadP99Ms: number;
  lightLoadMaxMs: number;
}

let serial = 0;
const nextId = (tag: string) => `${tag}-${Date.now().toString(36)}-${serial++}`;

/**
 * Idle pickup: one task at a time per system, each after the previous finished and a pause of
 * 0-50 ms; the systems take turns task by task, so a machine that gets busier mid-run slows
 * them alike.
 */
async function idlePickup(sides: Array<[string, LightSide]>, tag: string, count: number) {
  const out = sides.map((): number[] => []);
  for (let i = 0; i < count; i++) {
    for (const [j, [name, side]] of sides.entries()) {
      const id = nextId(`${name}-${tag}`);
      await side.submit(id, now());
      out[j]!.push(...(await side.finished([id])));
      // Not a wait for a condition: an idle gap of random length before the next submit.
      await new Promise((r) => setTimeout(r, Math.random() * 50));
    }
  }
  return out;
}

/**
 * Light load: each system gets `count` tasks on a fixed schedule of `ratePerSec`, all at the
 * same time, their schedules offset evenly.
 */
async function lightLoad(sides: Array<[string, LightSide]>, count: number, ratePerSec: number) {
  const gap = 1000 / ratePerSec;
  const start = Date.now();
  return Promise.all(
    sides.map(async ([name, side], j) => {
      const ids: string[] = [];
      const submits: Promise<void>[] = [];
      for (let i = 0; i < count; i++) {
        const wait = start + (j * gap) / sides.length + i * gap - Date.now();
        // The schedule, not a wait for a condition.
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const id = nextId(`${name}-light`);
        ids.push(id);
        submits.push(side.submit(id, now()));
      }
      await Promise.all(submits);
      return side.finished(ids);
    }),
  );
}

/** Both measurements for every system in `sides` (name -> side), side by side. */
export async function measureLight(
  sides: Array<[string, LightSide]>,
  opts: LightOptions,
): Promise<Record<string, LightResult>> {
  await idlePickup(sides, "warm", opts.warmup);
  const idle = await idlePickup(sides, "idle", opts.count);
  const light = await lightLoad(sides, opts.count, opts.ratePerSec);
  const out: Record<string, LightResult> = {};
  for (const [j, [name]] of sides.entries()) {
    out[name] = {
      tasks: opts.count,
      idlePickupP50Ms: round(percentile(idle[j]!, 50)),
      idlePickupP99Ms: round(percentile(idle[j]!, 99)),
      lightLoadRatePerSec: opts.ratePerSec,
      lightLoadP50Ms: round(percentile(light[j]!, 50)),
      lightLoadP99Ms: round(percentile(light[j]!, 99)),
      lightLoadMaxMs: round(Math.max(...light[j]!)),
    };
  }
  return out;
}
