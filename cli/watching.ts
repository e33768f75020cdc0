/** Following one task to its end over WatchTask, resuming once if the daemon ends a slow stream. */
import type { TaskEvent } from "../proto/index.js";
import { taskStateName } from "../proto/index.js";
import type { Ctx } from "./context.js";
import { CliError, EXIT } from "./errors.js";
import { guardSchedulable, type Unschedulable } from "./unschedulable.js";

export type { Unschedulable };

export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "dead"]);
export const FAILED = new Set(["failed", "cancelled", "dead"]);

export interface Final {
  id: string;
  state: string;
  attempt: number;
  workerId: string | null;
  reason: string | null;
  /** Set when the watch gave up because no live worker could serve the task (it is not terminal). */
  unschedulable: string | null;
}

export interface WatchOptions {
  /** Give up (WAIT_TIMEOUT) after this long. */
  deadlineMs: number;
  /** Give up after the task was unschedulable this long without a break; 0 waits forever. */
  unschedulableMs: number;
  onEvent(e: TaskEvent): void;
  /** The task became unschedulable (again): no live worker serves its pool, labels and runner. */
  onUnschedulable(u: Unschedulable): void;
}

/**
 * Streams `id`'s events (replayed from the start, then live) into `onEvent` until the task is
 * terminal (the daemon ends the stream on the terminal state of the record's current attempt).
 * Returns its final state; one with `unschedulable` set when no live worker could serve it for
 * `unschedulableMs`; undefined when interrupted (Ctrl-C).
 */
export async function watchUntilTerminal(ctx: Ctx, id: string, o: WatchOptions): Promise<Final | undefined> {
  const client = ctx.client();
  const inner = new AbortController();
  const stopInner = () => inner.abort();
  ctx.signal.addEventListener("abort", stopInner, { once: true });
  let gaveUp: Unschedulable | undefined;
  const guard = guardSchedulable(client, id, {
    timeoutMs: o.unschedulableMs,
    signal: inner.signal,
    onUnschedulable: o.onUnschedulable,
  }).then((u) => {
    if (u && !inner.signal.aborted) {
      gaveUp = u;
      inner.abort();
    }
  });
  try {
    return await follow(ctx, id, o, inner.signal, () => gaveUp);
  } finally {
    ctx.signal.removeEventListener("abort", stopInner);
    // Stops the guard; not awaited: a poll in flight must not hold up the answer.
    inner.abort();
    void guard;
  }
}

async function follow(
  ctx: Ctx,
  id: string,
  o: WatchOptions,
  signal: AbortSignal,
  gaveUp: () => Unschedulable | undefined,
): Promise<Final | undefined> {
  const client = ctx.client();
  let seen = 0;
  let last: Final | undefined;
  const unschedulable = (u: Unschedulable): Final => ({
    id,
    state: u.state,
    attempt: u.attempt,
    workerId: null,
    reason: null,
    unschedulable: u.reason,
  });
  for (let resumes = 0; ; resumes++) {
    let index = 0;
    try {
      for await (const msg of client.watchTask(id, { signal, deadlineMs: o.deadlineMs })) {
        const e = msg.event;
        if (!e) continue;
        // A resumed watch replays from the start: skip what was already shown.
        if (index++ < seen) continue;
        seen++;
        if (e.state) {
          last = {
            id,
            state: taskStateName(e.state.state),
            attempt: e.attempt,
            workerId: e.workerId || null,
            reason: e.state.reason || null,
            unschedulable: null,
          };
        }
        o.onEvent(e);
      }
    } catch (err) {
      if (err instanceof CliError && err.code === "RESOURCE_EXHAUSTED" && resumes < 3) continue;
      if (err instanceof CliError && err.code === "TIMEOUT") {
        throw new CliError(
          EXIT.OTHER,
          `gave up waiting for task ${id} (--wait-timeout); it is still ${last?.state ?? "not finished"}: follow it with \`mesh watch ${id}\``,
          "WAIT_TIMEOUT",
          { cause: err },
        );
      }
      throw err;
    }
    const u = gaveUp();
    if (u) return unschedulable(u);
    if (ctx.signal.aborted) return undefined;
    if (last && TERMINAL.has(last.state)) return last;
    // The stream ended without a terminal event: ask for the record instead of guessing.
    const { task } = await client.getTask(id);
    const state = task ? taskStateName(task.state) : "unknown";
    if (task && TERMINAL.has(state)) {
      return {
        id,
        state,
        attempt: task.attempt,
        workerId: task.ownerWorkerId || null,
        reason: task.reason || null,
        unschedulable: null,
      };
    }
    if (resumes >= 3) {
      throw new CliError(
        EXIT.OTHER,
        `the watch of task ${id} kept ending before the task finished (it is ${state})`,
        "INTERNAL",
      );
    }
  }
}

/** How a waiting command words "no live worker can serve it", on stderr in every output mode. */
export function unschedulableWarning(
  id: string,
  reason: string,
  giveUpMs: number,
): { code: string; message: string; taskId: string; reason: string } {
  const wait =
    giveUpMs > 0
      ? `waiting ${formatMs(giveUpMs)} for one (--unschedulable-timeout), then exit ${EXIT.UNSCHEDULABLE}`
      : "waiting for one with no limit (--unschedulable-timeout 0)";
  return {
    code: "UNSCHEDULABLE",
    message: `task ${id} cannot run yet: ${reason}; ${wait}. Start a worker that serves it, or \`mesh cancel ${id}\``,
    taskId: id,
    reason,
  };
}

/** The error a waiting command ends with when it gave up on unschedulable tasks. */
export function unschedulableError(finals: Final[], giveUpMs: number): CliError {
  const first = finals[0] as Final;
  const more = finals.length > 1 ? ` (and ${finals.length - 1} more)` : "";
  return new CliError(
    EXIT.UNSCHEDULABLE,
    `task ${first.id}${more} is still ${first.state}: ${first.unschedulable}; gave up after ${formatMs(giveUpMs)} (--unschedulable-timeout). Start a worker that serves it, or \`mesh cancel ${first.id}\``,
    "UNSCHEDULABLE",
  );
}

export function formatMs(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Runs `fn` over `items` with at most `limit` in flight; rejects on the first failure. */
export async function eachLimited<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(workers);
}
