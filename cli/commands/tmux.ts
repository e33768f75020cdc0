/**
 * `mesh tmux [plan]`: a tmux session with a status pane (`mesh top --compact`, which also keeps
 * the panes in step) and one pane per running task showing its live `mesh watch`; panes appear,
 * close and re-tile as tasks start and end and workers join and leave. Attaches to it (or
 * switches to it inside tmux); `--detach` only creates it. tmux runs by argv, never a shell.
 */
import { spawn } from "node:child_process";
import { Command } from "commander";
import type { Ctx } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { run } from "../run.js";
import { runTmux } from "../views/tmux.js";

interface Opts {
  session?: string;
  detach?: boolean;
}

/** tmux session names cannot hold `.` or `:`. */
const sessionName = (plan: string | undefined, given: string | undefined): string =>
  (given ?? (plan ? `mesh-${plan}` : "mesh")).replace(/[.:]/g, "_");

async function tmuxCommand(ctx: Ctx, plan: string | undefined, opts: Opts): Promise<void> {
  const name = sessionName(plan, opts.session);
  try {
    await runTmux(["-V"]);
  } catch (err) {
    throw new CliError(
      EXIT.USAGE,
      `mesh tmux needs tmux on PATH (apt-get install tmux, brew install tmux): ${(err as Error).message}`,
      "FAILED_PRECONDITION",
    );
  }
  const exists = await runTmux(["has-session", "-t", `=${name}`]).then(
    () => true,
    () => false,
  );
  if (!exists) {
    const daemon = ctx.client().target;
    const env = ["-e", `MESH_DAEMON=${daemon}`, ...(process.env.NO_COLOR ? ["-e", "NO_COLOR=1"] : [])];
    const status = [
      process.execPath,
      process.argv[1] ?? "mesh",
      "--daemon",
      daemon,
      "top",
      "--compact",
      "--tmux-window",
      `=${name}:0`,
      ...(plan ? ["--plan", plan] : []),
    ];
    const cols = String(process.stdout.columns ?? 200);
    const rows = String(process.stdout.rows ?? 50);
    await runTmux(["new-session", "-d", "-s", name, "-x", cols, "-y", rows, ...env, ...status]);
    await runTmux(["select-pane", "-t", `=${name}:0.0`, "-T", "mesh status"]).catch(() => undefined);
  }
  if (opts.detach) {
    if (ctx.json) ctx.printJson({ session: name, created: !exists });
    else ctx.print(`${name}${exists ? " (already there)" : ""}: attach with \`tmux attach -t ${name}\``);
    return;
  }
  if (process.env.TMUX) {
    await runTmux(["switch-client", "-t", `=${name}`]);
    return;
  }
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn("tmux", ["attach-session", "-t", `=${name}`], { stdio: "inherit" });
    child.once("error", reject);
    child.once("exit", (c) => resolve(c ?? 1));
  });
  if (code !== 0)
    throw new CliError(EXIT.USAGE, `tmux attach-session -t ${name} exited ${code}`, "UNAVAILABLE");
}

export function tmuxSessionCommand(): Command {
  return new Command("tmux")
    .description(
      "a tmux session with one pane per running task (its live `mesh watch`) and a status pane; panes follow the mesh",
    )
    .argument("[plan]", "only the tasks of this plan")
    .option("--session <name>", "the tmux session's name (default: mesh, or mesh-<plan>)")
    .option("--detach", "create the session (if it is not there) without attaching to it")
    .addHelpText(
      "after",
      `
--json output (with --detach): {"session","created"}
The status pane runs \`mesh top --compact\`: its keys work there (enter, c, r, q; q ends the
pane updates, kill the session with \`tmux kill-session -t mesh\`).`,
    )
    .action(run<[string | undefined, Opts]>((ctx, plan, opts) => tmuxCommand(ctx, plan, opts)));
}
