/**
 * The liveness rule of a slot holder, the same as a task's: the holder's attempt is alive while
 * the task record shows that attempt held (claimed or running) by that worker. A dead owner's
 * record keeps showing it until another worker takes it over after a lease of silence; from
 * then on its slots are free. A record that cannot be read counts as held (never over a cap).
 */
import { isMeshError } from "../errors.js";
import type { TaskStore } from "../tasks/index.js";
import type { Liveness } from "./slot-store.js";

export function recordLiveness(store: Pick<TaskStore, "get">): Liveness {
  return async (h) => {
    try {
      const cur = await store.get(h.taskId);
      if (!cur) return false;
      const r = cur.record;
      return (
        r.attempt === h.attempt &&
        r.owner?.workerId === h.workerId &&
        (r.state === "claimed" || r.state === "running")
      );
    } catch (err) {
      if (isMeshError(err, "DATA_LOSS")) return true;
      throw err;
    }
  };
}
