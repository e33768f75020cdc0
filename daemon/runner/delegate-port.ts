/**
 * The per-task port's `add-task` kind: the running task adds a task to its own plan (through
 * the daemon's plan service), and each answer is also an event of the task: `delegated`, or
 * `delegate_refused` with the reason the agent is told.
 */
import type { AddTaskRequest } from "../../agent-shim/index.js";
import type { RunContext } from "../claim/index.js";
import { isMeshError } from "../errors.js";
import type { Logger } from "../log.js";
import type { ChildRequest } from "../plans/index.js";
import type { TaskSpec } from "../tasks/index.js";
import type { TaskPortHandlers } from "./task-port.js";

/** Adds a task to the parent's plan (the daemon's plan service); resolves with what it made. */
export type AddTaskFn = (
  parent: TaskSpec,
  req: ChildRequest,
) => Promise<{ taskId: string; created: boolean; state: string; depth: number }>;

export function addTaskHandler(
  ctx: RunContext,
  addTask: AddTaskFn,
  log: Logger | undefined,
): NonNullable<TaskPortHandlers["add-task"]> {
  return async (req: AddTaskRequest) => {
    const { name, prompt, title, owns, needs } = req;
    try {
      const added = await addTask(ctx.spec, { name, prompt, owns, needs, ...(title ? { title } : {}) });
      ctx.emit({ type: "agent", kind: "delegated", data: { ...added, owns, needs } });
      return { ok: true, kind: "add-task", ...added };
    } catch (err) {
      if (isMeshError(err)) {
        log?.info({ name, code: err.code, why: err.message }, "delegation refused");
        ctx.emit({
          type: "agent",
          kind: "delegate_refused",
          data: { name, owns, needs, code: err.code, reason: err.message },
        });
      }
      throw err;
    }
  };
}
