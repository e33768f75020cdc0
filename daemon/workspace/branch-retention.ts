/**
 * When a task's branch in a repo cache may go: keep it while the task's record exists and is not
 * finished-and-past the task retention (a retry continues the branch; `mesh task` names it).
 */
import { isTerminal, type TaskState } from "../tasks/index.js";
import type { KeepBranch } from "./evict.js";

export interface TaskRecordView {
  state: TaskState;
  finishedAt?: string;
}

/**
 * `getRecord` reads the task's record (undefined: there is none); `taskRetentionMs` 0 keeps
 * finished tasks forever. A failed read keeps the branch.
 */
export function keepBranchWhileTaskLives(
  getRecord: (taskId: string) => Promise<TaskRecordView | undefined>,
  taskRetentionMs: number,
  now: () => number = Date.now,
): KeepBranch {
  return async (taskId) => {
    const r = await getRecord(taskId);
    if (!r) return false;
    if (!isTerminal(r.state) || taskRetentionMs <= 0) return true;
    const finished = r.finishedAt ? Date.parse(r.finishedAt) : Number.NaN;
    return Number.isNaN(finished) || now() - finished < taskRetentionMs;
  };
}
