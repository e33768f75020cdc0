/** One human line per task event or mesh event. */
import { type AgentEvent, type TaskEvent, taskStateName, type WatchMeshResponse } from "../proto/index.js";
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

/**
 * The ownership hook's verdicts carry their reason (the path, and who owns or holds it); the
 * result-time gate's report its policy and the paths outside owns.
 */
function agentDetail(a: { kind: string; dataJson: string }): string {
  if (a.kind === "owns_violation") return ownsViolationDetail(a.dataJson);
  if (a.kind !== "hook_denied" && a.kind !== "hook_note") return "";
  try {
    const d = JSON.parse(a.dataJson) as { tool?: unknown; reason?: unknown; note?: unknown };
    const text = a.kind === "hook_denied" ? d.reason : d.note;
    return typeof text === "string" ? ` (${String(d.tool ?? "?")}): ${text}` : "";
  } catch {
    return "";
  }
}

function ownsViolationDetail(dataJson: string): string {
  try {
    const d = JSON.parse(dataJson) as { policy?: unknown; paths?: unknown; omitted?: unknown };
    if (!Array.isArray(d.paths)) return "";
    const more = typeof d.omitted === "number" && d.omitted > 0 ? ` and ${d.omitted} more` : "";
    return ` (${String(d.policy ?? "?")}): outside owns: ${d.paths.map(String).join(", ")}${more}`;
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

const str = (v: unknown): string => (typeof v === "string" ? v : "");
const oneLine = (s: string, max = 160): string => {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
};

/** An agent event as a short line: its kind and what it is about (tool, text, totals). */
export function agentSummary(a: AgentEvent): string {
  let d: Record<string, unknown> = {};
  try {
    d = JSON.parse(a.dataJson) as Record<string, unknown>;
  } catch {
    // the kind alone
  }
  const detail = (() => {
    switch (a.kind) {
      case "session_started":
        return [str(d.model), str(d.claudeVersion) && `claude ${str(d.claudeVersion)}`]
          .filter(Boolean)
          .join(", ");
      case "assistant_text":
        return oneLine(str(d.text));
      case "tool_use":
        return `${str(d.tool)}${d.command ? `: ${oneLine(str(d.command))}` : d.filePath ? `: ${str(d.filePath)}` : ""}`;
      case "tool_result":
        return `${str(d.tool) || str(d.toolUseId)}${d.isError ? " (error)" : ""}`;
      case "tool_denied":
        return `${str(d.tool)}${d.filePath ? `: ${str(d.filePath)}` : ""} (permission denied)`;
      case "api_retry":
        return `status ${String(d.status ?? "-")}, attempt ${String(d.attempt ?? "?")}${d.error ? `: ${oneLine(str(d.error))}` : ""}`;
      case "result": {
        const cost = typeof d.costUsd === "number" ? `$${d.costUsd.toFixed(4)}` : "";
        const turns = typeof d.turns === "number" ? `${d.turns} turns` : "";
        return [str(d.subtype), cost, turns, oneLine(str(d.summary))].filter(Boolean).join(", ");
      }
      default:
        return "";
    }
  })();
  return detail ? `${a.kind} ${detail}` : a.kind;
}
