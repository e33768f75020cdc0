/**
 * `mesh top`: the mesh live in the whole terminal (alternate screen, only changed lines redrawn,
 * NO_COLOR honoured). It talks to the local daemon only, so it works in any terminal of any mesh
 * machine. Keys: ↑/↓ or j/k select, enter the task's live log (esc or q back), c cancel (y to
 * confirm), r retry, q quit.
 */
import { Command, Option } from "commander";
import type { Overview } from "../../daemon/lite.js";
import type { Ctx } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { terminalNotifier } from "../notify-osc.js";
import { taskEventLine } from "../events.js";
import { paint, terminalSafe } from "../format.js";
import { run } from "../run.js";
import { splitKeys } from "../views/keys.js";
import { Screen } from "../views/screen.js";
import { fetchOverview } from "../views/snapshot.js";
import { TmuxPanes } from "../views/tmux.js";
import { TopNotices } from "../views/top-notify.js";
import { fitWidth, renderTop, type TopState, visibleTasks } from "../views/top-view.js";

interface Opts {
  compact?: boolean;
  plan?: string;
  interval: string;
  /** false with --no-notify: no terminal notifications. */
  notify?: boolean;
  /** Keep this tmux window's panes in step with the running tasks (the status pane of `mesh tmux`). */
  tmuxWindow?: string;
}

/** Tasks that get a pane: running or starting on a live worker. */
const RUNNING = new Set(["claimed", "running"]);

const REFRESH_MS = 500;
const MAX_LOG_LINES = 2000;

interface LogView {
  id: string;
  lines: string[];
  stop: AbortController;
  ended?: string;
}

async function top(ctx: Ctx, opts: Opts): Promise<void> {
  const intervalMs = Number(opts.interval);
  if (!Number.isInteger(intervalMs) || intervalMs < 100 || intervalMs > 60_000)
    throw new CliError(
      EXIT.USAGE,
      `--interval "${opts.interval}" is not a whole number of milliseconds from 100 to 60000; e.g. --interval 500`,
      "INVALID_ARGUMENT",
      { field: "--interval" },
    );
  const stdin = process.stdin;
  const stdout = process.stdout;
  if (!stdout.isTTY || !stdin.isTTY)
    throw new CliError(
      EXIT.USAGE,
      "mesh top needs a terminal (stdin and stdout a TTY); for scripts use `mesh tasks --json` or `mesh watch`",
      "INVALID_ARGUMENT",
    );
  const client = ctx.client();
  const screen = new Screen(stdout);
  const state: TopState = {
    ...(opts.compact ? { compact: true } : {}),
    ...(opts.plan ? { plan: opts.plan } : {}),
  };
  let ov: Overview | undefined;
  let log: LogView | undefined;
  let error: string | undefined;
  let quit: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    quit = resolve;
  });

  const frame = () => {
    const size = { width: stdout.columns ?? 100, height: stdout.rows ?? 30 };
    if (log) {
      const head = paint(ctx.style, "bold", `log ${log.id}`) + paint(ctx.style, "gray", "  (esc or q: back)");
      const body = log.lines.slice(-(size.height - 2));
      const lines = [fitWidth(head, size.width), ...body.map((l) => fitWidth(l, size.width))];
      while (lines.length < size.height - 1) lines.push("");
      lines.push(fitWidth(log.ended ?? "", size.width));
      screen.draw(lines);
      return;
    }
    if (!ov) {
      screen.draw([error ? `mesh top: ${error}` : "mesh top: asking the daemon…"]);
      return;
    }
    const msg = error ? { message: paint(ctx.style, "red", error) } : {};
    screen.draw(renderTop(ov, { ...state, ...msg }, size, ctx.style));
  };

  const panes = opts.tmuxWindow
    ? new TmuxPanes(
        opts.tmuxWindow,
        [process.execPath, process.argv[1] ?? "mesh", "--daemon", client.target, "watch"],
        process.env.TMUX_PANE ?? "",
      )
    : undefined;
  let syncing = false;
  const syncPanes = async (o: Overview) => {
    if (!panes || syncing) return;
    syncing = true;
    try {
      const running = visibleTasks(o, state)
        .filter((t) => RUNNING.has(t.state) && t.status.kind !== "lost")
        .map((t) => t.id)
        .sort();
      await panes.sync(running);
    } catch (err) {
      error = `tmux: ${err instanceof Error ? err.message : String(err)}`;
    } finally {
      syncing = false;
    }
  };

  // Terminal notifications (OSC 9/777) as tasks end or come to need attention.
  const notifier = terminalNotifier(opts.notify !== false && !opts.tmuxWindow);
  const notices = new TopNotices();
  const refresh = async () => {
    try {
      ov = await fetchOverview(client);
      error = undefined;
      if (notifier) for (const { key, n } of notices.next(ov)) notifier.notify(n, key);
      await syncPanes(ov);
      const tasks = visibleTasks(ov, state);
      if (!tasks.some((t) => t.id === state.selected)) {
        const first = tasks[0];
        if (first) state.selected = first.id;
        else delete state.selected;
      }
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    frame();
  };

  const openLog = (id: string) => {
    const view: LogView = { id, lines: [], stop: new AbortController() };
    log = view;
    void (async () => {
      try {
        for await (const m of client.watchTask(id, { signal: view.stop.signal, deadlineMs: 24 * 3600_000 })) {
          if (!m.event) continue;
          view.lines.push(terminalSafe(taskEventLine(ctx.style, m.event, false)));
          if (view.lines.length > MAX_LOG_LINES) view.lines.splice(0, view.lines.length - MAX_LOG_LINES);
          if (log === view) frame();
        }
        view.ended = paint(ctx.style, "gray", "— the task ended —");
      } catch (err) {
        if (!view.stop.signal.aborted)
          view.ended = paint(ctx.style, "red", err instanceof Error ? err.message : String(err));
      }
      if (log === view) frame();
    })();
    frame();
  };

  const act = async (what: "cancel" | "retry", id: string) => {
    try {
      const res = what === "cancel" ? await client.cancelTask(id) : await client.retryTask(id);
      state.message = `${what}: ${id} is ${res.task?.status?.kind || "updated"}`;
    } catch (err) {
      state.message = paint(
        ctx.style,
        "red",
        `${what} ${id}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    await refresh();
  };

  const move = (d: number) => {
    if (!ov) return;
    const tasks = visibleTasks(ov, state);
    if (tasks.length === 0) return;
    const i = Math.max(
      0,
      tasks.findIndex((t) => t.id === state.selected),
    );
    const next = tasks[Math.min(tasks.length - 1, Math.max(0, i + d))];
    if (next) state.selected = next.id;
    frame();
  };

  const onData = (buf: Buffer) => {
    for (const k of splitKeys(buf.toString("utf8"))) onKey(k);
  };

  const onKey = (k: string) => {
    if (k === "\x03") return quit(); // Ctrl-C (raw mode: no SIGINT)
    if (log) {
      if (k === "q" || k === "\x1b" || k === "\x7f") {
        log.stop.abort();
        log = undefined;
        screen.invalidate();
        frame();
      }
      return;
    }
    if (state.confirm) {
      const pending = state.selected;
      delete state.confirm;
      if ((k === "y" || k === "Y") && pending) void act("cancel", pending);
      else {
        state.message = "cancel: not confirmed";
        frame();
      }
      return;
    }
    switch (k) {
      case "q":
        return quit();
      case "j":
      case "\x1b[B":
      case "\x1bOB":
        return move(1);
      case "k":
      case "\x1b[A":
      case "\x1bOA":
        return move(-1);
      case "\r":
      case "\n":
        if (state.selected) openLog(state.selected);
        return;
      case "c":
        if (state.selected) {
          state.confirm = `cancel ${state.selected}? y/n`;
          frame();
        }
        return;
      case "r":
        if (state.selected) void act("retry", state.selected);
        return;
    }
  };

  const onResize = () => {
    screen.invalidate();
    frame();
  };
  screen.enter();
  stdin.setRawMode(true);
  stdin.resume();
  stdin.on("data", onData);
  stdout.on("resize", onResize);
  ctx.signal.addEventListener("abort", () => quit(), { once: true });
  const interval = setInterval(() => void refresh(), intervalMs);
  try {
    await refresh();
    await done;
  } finally {
    clearInterval(interval);
    log?.stop.abort();
    stdin.off("data", onData);
    stdout.off("resize", onResize);
    stdin.setRawMode(false);
    stdin.pause();
    screen.leave();
  }
}

export function topCommand(): Command {
  return new Command("top")
    .description(
      "the mesh live in the whole terminal: workers, tasks (attention first), plans, cost and tokens",
    )
    .option("--compact", "tasks only (the status pane of `mesh tmux`)")
    .option("--plan <id>", "only the tasks of this plan")
    .option("--interval <ms>", "how often to ask the daemon, in ms", String(REFRESH_MS))
    .option("--no-notify", "no terminal notifications (OSC 9/777) when tasks end or need attention")
    .addOption(
      new Option(
        "--tmux-window <target>",
        "keep this tmux window's task panes in step (used by `mesh tmux`)",
      ).hideHelp(),
    )
    .addHelpText(
      "after",
      `
Keys: ↑/↓ or j/k select a task · enter its live log (esc or q: back) · c cancel (y confirms) ·
r retry · q quit. Status (the same in every view): working, tool (waiting for a tool), attention
(a denied tool, parked on quota, a conflict, no worker serves it), lost (its worker left or its
lease went silent for three heartbeats), queued, waiting, succeeded, failed, cancelled.`,
    )
    .action(run<[Opts]>((ctx, opts) => top(ctx, opts)));
}
