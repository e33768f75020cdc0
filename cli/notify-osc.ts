/**
 * Desktop notifications through the terminal: OSC 9 (iTerm2, WezTerm, Windows Terminal, Ghostty)
 * or OSC 777 (rxvt-unicode, foot, Konsole, VTE), passed through tmux when $TMUX is set (tmux
 * needs `set -g allow-passthrough on`). Written to stdout only when it is a terminal and not
 * disabled (--no-notify, MESH_NOTIFY=0). `mesh submit --wait`, `mesh watch` and `mesh top` use it.
 */
import type { TaskEvent } from "../proto/index.js";
import { taskStateName } from "../proto/index.js";

export type OscFormat = "osc9" | "osc777";

export interface Notification {
  title: string;
  body: string;
}

export interface NotifyTarget {
  isTTY?: boolean;
  write(s: string): unknown;
}

const ESC = "\x1b";
const BEL = "\x07";
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters end an OSC early
const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;

/** Text safe inside an OSC string: no control characters; `;` separates OSC 777's fields. */
function clean(s: string, semicolons: boolean): string {
  const t = s.replace(CONTROL, " ");
  return (semicolons ? t : t.replace(/;/g, ",")).slice(0, 200);
}

/** The escape sequence for `n` in `format`, wrapped for tmux passthrough when `tmux`. */
export function oscSequence(n: Notification, format: OscFormat, tmux: boolean): string {
  const seq =
    format === "osc777"
      ? `${ESC}]777;notify;${clean(n.title, false)};${clean(n.body, true)}${BEL}`
      : `${ESC}]9;${clean(n.title, true)}: ${clean(n.body, true)}${BEL}`;
  // tmux passes a DCS `tmux;` payload to the outer terminal with every ESC doubled.
  return tmux ? `${ESC}Ptmux;${seq.replaceAll(ESC, ESC + ESC)}${ESC}\\` : seq;
}

/**
 * Which format to use: MESH_NOTIFY=osc9|osc777 picks one; otherwise OSC 777 on the terminals
 * that speak it and not OSC 9, and OSC 9 elsewhere. undefined: notifications are off.
 */
export function oscFormat(env: NodeJS.ProcessEnv): OscFormat | undefined {
  const v = (env.MESH_NOTIFY ?? "").trim().toLowerCase();
  if (v === "0" || v === "off" || v === "false" || v === "no") return undefined;
  if (v === "osc9" || v === "osc777") return v;
  const term = env.TERM ?? "";
  if (/^(rxvt|foot)/.test(term) || env.KONSOLE_VERSION || env.VTE_VERSION) return "osc777";
  return "osc9";
}

export class TerminalNotifier {
  private readonly sent = new Set<string>();

  constructor(
    private readonly out: NotifyTarget,
    private readonly format: OscFormat,
    private readonly tmux: boolean,
  ) {}

  /** Sends `n` once per `key` (a task's terminal state is announced once, not per replay). */
  notify(n: Notification, key = `${n.title}\n${n.body}`): void {
    if (this.sent.has(key)) return;
    this.sent.add(key);
    this.out.write(oscSequence(n, this.format, this.tmux));
  }

  /** A task event worth a notification: its end, or it needs attention (a tool denied). */
  taskEvent(e: TaskEvent): void {
    const n = taskNotification(e);
    if (n) this.notify(n, `${e.taskId}/${e.attempt}/${n.title}`);
  }
}

const ENDED: Record<string, string> = {
  succeeded: "succeeded",
  failed: "failed (needs attention)",
  dead: "died (needs attention)",
  cancelled: "cancelled",
};

function toolOf(dataJson: string): string {
  try {
    const d = JSON.parse(dataJson) as { tool?: unknown };
    return typeof d.tool === "string" ? d.tool : "a tool";
  } catch {
    return "a tool";
  }
}

/** The notification a task event calls for, if any. */
export function taskNotification(e: TaskEvent): Notification | undefined {
  if (e.state) {
    const state = taskStateName(e.state.state);
    const ended = ENDED[state];
    if (!ended) return undefined;
    const reason = e.state.reason ? `: ${e.state.reason}` : "";
    return { title: `mesh: ${e.taskId} ${ended}`, body: `attempt ${e.attempt}${reason}` };
  }
  if (e.agent?.kind === "tool_denied") {
    const tool = toolOf(e.agent.dataJson);
    return { title: `mesh: ${e.taskId} needs attention`, body: `permission denied for ${tool}` };
  }
  return undefined;
}

/**
 * The notifier for this process's stdout, or undefined when notifications are off: stdout is
 * not a terminal, `enabled` is false (--no-notify), or MESH_NOTIFY=0.
 */
export function terminalNotifier(
  enabled: boolean,
  out: NotifyTarget = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): TerminalNotifier | undefined {
  if (!enabled || !out.isTTY) return undefined;
  const format = oscFormat(env);
  return format ? new TerminalNotifier(out, format, Boolean(env.TMUX)) : undefined;
}

/** Where a command's following of a task began: what it replays from before is not news. */
export interface Since {
  /** The task was already terminal: nothing to notify. */
  terminal: boolean;
  /** The task's attempt then: an earlier attempt's end is history. */
  attempt: number;
}

export const FROM_START: Since = { terminal: false, attempt: 0 };

/**
 * What a waiting command notifies for one task event: a tool denied, and a task's end when
 * `endings` (commands following several tasks pass false and notify a summary instead; a task
 * that fails or dies needs attention and is notified either way). Nothing for a task that had
 * already ended when the command began, nor for an attempt before the one it began at.
 */
export function notifyLive(n: TerminalNotifier, e: TaskEvent, since: Since, endings: boolean): void {
  if (since.terminal || e.attempt < since.attempt) return;
  const state = e.state ? taskStateName(e.state.state) : "";
  if (e.agent || endings || state === "failed" || state === "dead") n.taskEvent(e);
}
