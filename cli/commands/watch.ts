/** `mesh watch <id>`: one task's events to its end. `mesh watch`: the whole mesh, until Ctrl-C. */
import { Command } from "commander";
import { type Ctx, parseDurationFlag } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { meshEventLine, taskEventLine } from "../events.js";
import { eventJson, meshEventJson, unschedulableEventJson } from "../json.js";
import { taskStateName } from "../../proto/index.js";
import {
  FROM_START,
  notifyLive,
  type Since,
  type TerminalNotifier,
  terminalNotifier,
} from "../notify-osc.js";
import { run } from "../run.js";
import {
  FAILED,
  TERMINAL,
  unschedulableError,
  unschedulableWarning,
  watchUntilTerminal,
} from "../watching.js";

interface Opts {
  notify: boolean;
  waitTimeout: string;
  unschedulableTimeout: string;
}

async function watchTask(
  ctx: Ctx,
  id: string,
  deadlineMs: number,
  unschedulableMs: number,
  notifier: TerminalNotifier | undefined,
): Promise<void> {
  // What the task was when the watch began: its replayed past is not news.
  let since: Since = FROM_START;
  if (notifier) {
    const { task } = await ctx.client().getTask(id);
    if (task) since = { terminal: TERMINAL.has(taskStateName(task.state)), attempt: task.attempt };
  }
  const final = await watchUntilTerminal(ctx, id, {
    deadlineMs,
    unschedulableMs,
    onEvent: (e) => {
      if (notifier) notifyLive(notifier, e, since, true);
      if (ctx.json) ctx.printJson(eventJson(e));
      else ctx.print(taskEventLine(ctx.style, e, false));
    },
    onUnschedulable: (u) => {
      ctx.warn(unschedulableWarning(id, u.reason, unschedulableMs));
      if (ctx.json) ctx.printJson(unschedulableEventJson(id, u));
    },
  });
  if (!final)
    throw new CliError(
      EXIT.INTERRUPTED,
      `stopped watching ${id} (interrupted); the task keeps running`,
      "INTERRUPTED",
    );
  if (final.unschedulable) throw unschedulableError([final], unschedulableMs);
  if (FAILED.has(final.state)) {
    throw new CliError(
      EXIT.TASK_FAILED,
      `task ${id} ended ${final.state}${final.reason ? `: ${final.reason}` : ""}; see \`mesh task ${id}\``,
      "TASK_FAILED",
    );
  }
}

async function watchMesh(
  ctx: Ctx,
  deadlineMs: number,
  notifier: TerminalNotifier | undefined,
): Promise<void> {
  ctx.note("watching the mesh: task state changes and workers joining and leaving (Ctrl-C to stop)");
  try {
    for await (const m of ctx.client().watchMesh({ signal: ctx.signal, deadlineMs })) {
      if (notifier && m.task) notifyLive(notifier, m.task, FROM_START, true);
      if (ctx.json) ctx.printJson(meshEventJson(m));
      else ctx.print(meshEventLine(ctx.style, m));
    }
  } catch (err) {
    // Reaching --wait-timeout is the planned end of a mesh watch.
    if (err instanceof CliError && err.code === "TIMEOUT") return;
    throw err;
  }
}

async function watch(ctx: Ctx, id: string | undefined, opts: Opts): Promise<void> {
  const deadlineMs = parseDurationFlag(opts.waitTimeout, "--wait-timeout");
  const unschedulableMs = parseDurationFlag(opts.unschedulableTimeout, "--unschedulable-timeout", true);
  const notifier = terminalNotifier(opts.notify);
  if (id) await watchTask(ctx, id, deadlineMs, unschedulableMs, notifier);
  else await watchMesh(ctx, deadlineMs, notifier);
}

export function watchCommand(): Command {
  return new Command("watch")
    .description(
      "follow a task's events from its start until it ends (exit 1 unless it succeeded); without an id, follow the whole mesh until Ctrl-C",
    )
    .argument("[id]", "task id")
    .option("--wait-timeout <duration>", "stop after this long (with an id: exit 5)", "24h")
    .option(
      "--no-notify",
      "no terminal notification (OSC 9/777) when a task ends or needs attention (also MESH_NOTIFY=0)",
    )
    .option(
      "--unschedulable-timeout <duration>",
      "with an id: stop when no live worker could serve the task for this long (exit 6); 0 waits forever",
      "60s",
    )
    .addHelpText(
      "after",
      `
--json output: one object per line.
  with an id, task events:
    {"type":"state","taskId","at","attempt","workerId","state","reason"}
    {"type":"log","taskId","at","attempt","workerId","stream","line"}
    {"type":"agent","taskId","at","attempt","workerId","kind","data"}
    {"type":"unschedulable","taskId","at","attempt","workerId","reason"}   no live worker serves it
  while no live worker can serve the task, stderr also gets
    {"warning":{"code":"UNSCHEDULABLE","message","taskId","reason"}}
  without an id, mesh events:
    {"type":"task_state","taskId","at","attempt","workerId","state","reason"}
    {"type":"worker_joined","worker":WORKER}   (see \`mesh workers --help\`)
    {"type":"worker_left","workerId","at"}`,
    )
    .action(run<[string | undefined, Opts]>((ctx, id, opts) => watch(ctx, id, opts)));
}
