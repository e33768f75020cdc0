/**
 * The mesh at a glance as the terminal views read it: ListTasks and ListWorkers from the local
 * daemon, folded by the same `overview` the web dashboard uses, with the daemon's status of each
 * task (one status model for every view).
 */
import { type Overview, overview, type TaskStatus } from "../../daemon/lite.js";
import type { Task } from "../../proto/index.js";
import type { MeshClient } from "../client.js";

const UNKNOWN: TaskStatus = { kind: "queued", attention: false };

function statusOf(t: Task): TaskStatus {
  const s = t.status;
  if (!s?.kind) return UNKNOWN;
  return {
    kind: s.kind as TaskStatus["kind"],
    attention: s.attention,
    ...(s.detail ? { detail: s.detail } : {}),
    ...(s.workerId ? { workerId: s.workerId } : {}),
  };
}

export async function fetchOverview(client: MeshClient): Promise<Overview & { at: number }> {
  const [list, workers] = await Promise.all([
    client.listTasks({ states: [], pool: "", workerId: "", limit: 0, plan: "" }),
    client.listWorkers(),
  ]);
  const tasks = list.tasks.flatMap((t) => {
    try {
      return [{ record: JSON.parse(t.recordJson), status: statusOf(t) }];
    } catch {
      return [];
    }
  });
  return { ...overview(tasks, workers.workers), at: Date.now() };
}
