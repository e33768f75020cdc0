/** `mesh logs <id>`: what a task did so far, every attempt, as readable lines; `--follow` stays. */
import { Command } from "commander";
import { type TaskEvent, taskStateName } from "../../proto/index.js";
import { type Ctx, parseDurationFlag } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { agentSummary } from "../events.js";
import { clock, paint, paintState, type Style } from "../format.js";
import { eventJson } from "../json.js";
import { run } from "../run.js";
import { watchUntilTerminal } from "../watching.js";

interface Opts {
  follow?: boolean;
  waitTimeout: string;
}

/** Prints events as readable lines, a heading before each attempt's first event. */
export class LogPrinter {
  private attempt = -1;

  constructor(private readonly style: Style) {}

  lines(e: TaskEvent): string[] {
    const out: string[] = [];
    if (e.attempt > 0 && e.attempt !== this.attempt) {
      this.attempt = e.attempt;
      out.push(paint(this.style, "bold", `── attempt ${e.attempt}`));
    }
    out.push(logLine(this.style, e));
    return out;
  }
}

/** One event: `HH:MM:SS  state    running`, `HH:MM:SS  stdout   text`, `HH:MM:SS  agent    tool_use Bash: ls`. */
export function logLine(style: Style, e: TaskEvent): string {
  const head = paint(style, "gray", clock(e.at));
  if (e.state) {
    const state = taskStateName(e.state.state);
    const who = e.workerId ? ` on ${e.workerId}` : "";
    return `${head}  state   ${paintState(style, state)}${who}${e.state.reason ? `: ${e.state.reason}` : ""}`;
  }
  if (e.log) {
    const stream = e.log.stream === "stderr" ? paint(style, "red", "stderr") : "stdout";
    return `${head}  ${stream}  ${e.log.line}`;
  }
  if (e.agent) return `${head}  ${paint(style, "blue", "agent")}   ${agentSummary(e.agent)}`;
  return `${head}  event`;
}

async function logs(ctx: Ctx, id: string, opts: Opts): Promise<void> {
  const deadlineMs = parseDurationFlag(opts.waitTimeout, "--wait-timeout");
  const printer = new LogPrinter(ctx.style);
  const show = (e: TaskEvent) => {
    if (ctx.json) ctx.printJson(eventJson(e));
    else for (const l of printer.lines(e)) ctx.print(l);
  };
  if (!opts.follow) {
    for await (const msg of ctx.client().watchTask(id, { signal: ctx.signal, deadlineMs, history: true })) {
      if (msg.event) show(msg.event);
    }
    return;
  }
  const final = await watchUntilTerminal(ctx, id, {
    deadlineMs,
    unschedulableMs: 0,
    onEvent: show,
    onUnschedulable: () => {},
  });
  if (!final) {
    throw new CliError(
      EXIT.INTERRUPTED,
      `stopped following ${id} (interrupted); the task keeps running`,
      "INTERRUPTED",
    );
  }
}

export function logsCommand(): Command {
  return new Command("logs")
    .description(
      "print what a task did so far (state changes, output lines, agent events; every attempt) and exit; --follow stays until it ends",
    )
    .argument("<id>", "task id")
    .option("-f, --follow", "after what is stored, keep printing until the task reaches a terminal state")
    .option("--wait-timeout <duration>", "with --follow: stop after this long (exit 5)", "24h")
    .addHelpText(
      "after",
      `
Exits 0 once printed (whatever the task's state); 4 when there is no such task.
--json output: one event object per line, as \`mesh watch <id> --json\`:
    {"type":"state","taskId","at","attempt","workerId","state","reason"}
    {"type":"log","taskId","at","attempt","workerId","stream","line"}
    {"type":"agent","taskId","at","attempt","workerId","kind","data"}`,
    )
    .action(run<[string, Opts]>((ctx, id, opts) => logs(ctx, id, opts)));
}
