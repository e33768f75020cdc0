/** One human line per task event or mesh event. */
import { type TaskEvent, taskStateName, type WatchMeshResponse } from "../proto/index.js";
import { clock, labelsText, paint, paintState, type Style } from "./format.js";

export function taskEventLine(style: Style, e: TaskEvent, withId: boolean): string {
  const head = `${paint(style, "gray", clock(e.at))}${withId ? `  ${e.taskId}` : ""}`;
  if (e.state) {
    const state = taskStateName(e.state.state);
    const who = e.workerId ? ` on ${e.workerId}` : "";
    const attempt = e.attempt > 0 ? ` (attempt ${e.attempt}${who})` : "";
    const reason = e.state.reason ? `: ${e.state.reason}` : "";
    return `${head}  ${paintState(style, state)}${attempt}${reason}`;
  }
  if (e.log) {
    const stream = e.log.stream === "stderr" ? paint(style, "red", "stderr") : paint(style, "gray", "stdout");
    return `${head}  ${stream}  ${e.log.line}`;
  }
  if (e.agent) return `${head}  ${paint(style, "blue", "agent")}   ${e.agent.kind}${agentDetail(e.agent)}`;
  return `${head}  event`;
}

/** The ownership hook's verdicts carry their reason (the path, and who owns or holds it). */
function agentDetail(a: { kind: string; dataJson: string }): string {
  if (a.kind !== "hook_denied" && a.kind !== "hook_note") return "";
  try {
    const d = JSON.parse(a.dataJson) as { tool?: unknown; reason?: unknown; note?: unknown };
    const text = a.kind === "hook_denied" ? d.reason : d.note;
    return typeof text === "string" ? ` (${String(d.tool ?? "?")}): ${text}` : "";
  } catch {
    return "";
  }
}

export function meshEventLine(style: Style, m: WatchMeshResponse): string {
  if (m.task) return taskEventLine(style, m.task, true);
  if (m.workerJoined) {
    const w = m.workerJoined;
    return `${paint(style, "gray", clock(w.updatedAt || new Date().toISOString()))}  ${paint(style, "green", "worker joined")}  ${w.workerId} (${w.host}; pools ${w.pools.join(",")}; labels ${labelsText(w.labels)}; ${w.slotsTotal} slots)`;
  }
  if (m.workerLeft) {
    return `${paint(style, "gray", clock(m.workerLeft.at))}  ${paint(style, "yellow", "worker left")}  ${m.workerLeft.workerId}`;
  }
  return `${paint(style, "gray", clock(new Date().toISOString()))}  event`;
}
