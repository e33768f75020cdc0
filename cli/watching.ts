/** Following one task to its end over WatchTask, resuming once if the daemon ends a slow stream. */
import type { TaskEvent } from "../proto/index.js";
import { taskStateName } from "../proto/index.js";
import type { Ctx } from "./context.js";
import { CliError, EXIT } from "./errors.js";

export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "dead"]);
export const FAILED = new Set(["failed", "cancelled", "dead"]);

export interface Final {
  id: string;
  state: string;
  attempt: number;
  workerId: string | null;
  reason: string | null;
}

/**
 * Streams `id`'s events (replayed from the start, then live) into `onEvent` until the task is
 * terminal. Returns its final state, or undefined when interrupted (Ctrl-C).
 */
export async function watchUntilTerminal(
  ctx: Ctx,
  id: string,
  deadlineMs: number,
  onEvent: (e: TaskEvent) => void,
): Promise<Final | undefined> {
  const client = ctx.client();
  let seen = 0;
  let last: Final | undefined;
  for (let resumes = 0; ; resumes++) {
    let index = 0;
    try {
      for await (const msg of client.watchTask(id, { signal: ctx.signal, deadlineMs })) {
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
          };
        }
        onEvent(e);
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
