/**
 * `mesh top` as lines: a pure function of the overview and what the person selected, so a frame
 * can be tested without a terminal. Sections: header (counts, cost, tokens), workers, tasks
 * (attention first, as the overview orders them), plans; a key line at the bottom.
 */
import type { Overview, OverviewTask, StatusKind } from "../../daemon/lite.js";
import { type Color, clock, paint, type Style } from "../format.js";

export interface TopState {
  selected?: string;
  /** A question waiting for y/n (cancel). */
  confirm?: string;
  /** One line of feedback (an action's outcome, an error). */
  message?: string;
  compact?: boolean;
  /** The plan this view is limited to (`mesh tmux <plan>`). */
  plan?: string;
}

const KIND_COLOR: Record<StatusKind, Color> = {
  working: "blue",
  tool: "blue",
  attention: "yellow",
  lost: "red",
  queued: "gray",
  waiting: "gray",
  succeeded: "green",
  failed: "red",
  cancelled: "gray",
};

// biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colour codes
const ANSI_RE = /\x1b\[[0-9;]*m/g;

/** `s` cut or padded to exactly `w` visible columns (colour codes kept, reset when cut). */
export function fitWidth(s: string, w: number): string {
  const plain = s.replace(ANSI_RE, "");
  const chars = [...plain];
  if (chars.length <= w) return s + " ".repeat(w - chars.length);
  if (plain === s) return `${chars.slice(0, Math.max(0, w - 1)).join("")}…`;
  // Cut a coloured line by walking it, keeping codes.
  let out = "";
  let seen = 0;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: splits at ANSI colour codes
  for (const part of s.split(/(\x1b\[[0-9;]*m)/)) {
    if (part.startsWith("\x1b[")) {
      out += part;
      continue;
    }
    for (const ch of part) {
      if (seen >= w - 1) break;
      out += ch;
      seen++;
    }
  }
  return `${out}…\x1b[0m`;
}

const cell = (s: string, w: number) => fitWidth(s, w);

export function visibleTasks(ov: Overview, st: TopState): OverviewTask[] {
  return st.plan ? ov.tasks.filter((t) => t.plan === st.plan) : ov.tasks;
}

export function renderTop(
  ov: Overview,
  st: TopState,
  size: { width: number; height: number },
  style: Style,
  now = Date.now(),
): string[] {
  const W = Math.max(40, size.width);
  const H = Math.max(10, size.height);
  const tasks = visibleTasks(ov, st);
  const count = (k: StatusKind[]) => tasks.filter((t) => k.includes(t.status.kind)).length;
  const attention = tasks.filter((t) => t.status.attention).length;
  const cost = tasks.reduce((n, t) => n + t.costUsd, 0);
  const tokens = tasks.reduce((n, t) => n + t.tokens, 0);
  const lines: string[] = [];
  const push = (s: string) => lines.push(fitWidth(s, W));
  const head = `${paint(style, "bold", st.plan ? `mesh top · plan ${st.plan}` : "mesh top")} · ${ov.workers.length} workers · ${count(["working", "tool"])} working · ${attention ? paint(style, "yellow", `${attention} attention`) : "0 attention"} · ${count(["queued", "waiting"])} queued · cost $${cost.toFixed(2)} · tokens ${tokens.toLocaleString("en-US")}`;
  const stamp = clock(new Date(now).toISOString());
  push(`${fitWidth(head, W - stamp.length - 1)} ${stamp}`);

  if (!st.compact) {
    push("");
    push(paint(style, "bold", "WORKERS"));
    push(`  ${cell("NAME", 18)} ${cell("HOST", 14)} ${cell("SLOTS", 6)} RUNNING`);
    for (const w of ov.workers.slice(0, 8))
      push(
        `  ${cell(w.name + (w.draining ? " (draining)" : ""), 18)} ${cell(w.host, 14)} ${cell(`${w.busy}/${w.slotsTotal}`, 6)} ${w.running.join(" ")}`,
      );
    if (ov.workers.length > 8) push(`  … ${ov.workers.length - 8} more`);
    if (ov.workers.length === 0) push(paint(style, "gray", "  no live workers"));
    push("");
  }

  const plans = st.compact || st.plan ? [] : ov.plans;
  const planLines = plans.length === 0 ? 0 : Math.min(plans.length, 4) + 2;
  const footer = 2;
  push(paint(style, "bold", `TASKS${tasks.length ? ` (${tasks.length})` : ""}`));
  push(
    `  ${cell("STATUS", 10)} ${cell("TASK", 28)} ${cell("WORKER", 14)} ${cell("ATT", 3)} ${cell("COST", 7)} DETAIL`,
  );
  const room = Math.max(1, H - lines.length - planLines - footer);
  const sel = Math.max(
    0,
    tasks.findIndex((t) => t.id === st.selected),
  );
  const start = Math.min(Math.max(0, sel - room + 1), Math.max(0, tasks.length - room));
  for (const [i, t] of tasks.slice(start, start + room).entries()) {
    const mark = start + i === sel && st.selected !== undefined ? ">" : " ";
    const kind = paint(style, KIND_COLOR[t.status.kind] ?? "gray", cell(t.status.kind, 10));
    const row = `${mark} ${kind} ${cell(t.id, 28)} ${cell(t.worker || "-", 14)} ${cell(String(t.attempt), 3)} ${cell(t.costUsd ? `$${t.costUsd.toFixed(3)}` : "", 7)} ${t.status.detail ?? t.title}`;
    push(row);
  }
  if (tasks.length === 0) push(paint(style, "gray", "  no tasks"));
  while (lines.length < H - planLines - footer) push("");

  if (planLines) {
    push(paint(style, "bold", "PLANS"));
    for (const p of plans.slice(0, 4)) {
      const counts = Object.entries(p.counts)
        .map(([k, n]) => `${n} ${k}`)
        .join(", ");
      push(`  ${cell(p.id, 28)} ${p.tasks.length} tasks: ${counts}`);
    }
    push("");
  }
  push(st.confirm ? paint(style, "yellow", st.confirm) : (st.message ?? ""));
  push(paint(style, "gray", "↑↓/j/k select · enter log · c cancel · r retry · q quit"));
  return lines.slice(0, H);
}
