/**
 * The panes of a `mesh tmux` session: one per running task (its live `mesh watch`), kept in step
 * with the mesh by `sync`: a pane is split off for a task that started, killed for one that is no
 * longer running (ended, lost, taken over), and the window re-tiled only when the set of panes
 * changed (a `mesh watch` that ends closes its own pane; the next sync notices and re-tiles).
 * tmux runs by argv (execFile, never a shell); pane commands are argv too (tmux >= 3.0 runs a
 * multi-argument command directly).
 */
import { execFile } from "node:child_process";

export type TmuxRun = (args: string[]) => Promise<string>;

/** Runs `tmux <args>` (no shell); rejects with tmux's stderr. */
export const runTmux: TmuxRun = (args) =>
  new Promise((resolve, reject) => {
    execFile("tmux", args, { encoding: "utf8", timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`tmux ${args[0]}: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
  });

/** The pane option that names the task a pane follows. */
export const TASK_OPTION = "@mesh-task";
/** The window option naming the task panes (ids, comma-joined) the window was last tiled for. */
export const TILED_OPTION = "@mesh-tiled";

export interface SyncResult {
  added: string[];
  removed: string[];
  retiled: boolean;
  /** How many task panes the window has now. */
  panes: number;
}

export class TmuxPanes {
  private tiledSet = "";

  /**
   * @param target the window, e.g. `mesh:0`
   * @param watchArgv the argv that follows one task (the task id is appended)
   * @param statusPane the pane id of the status pane (never killed)
   */
  constructor(
    private readonly target: string,
    private readonly watchArgv: readonly string[],
    private readonly statusPane: string,
    private readonly tmux: TmuxRun = runTmux,
  ) {}

  /** Task panes now: pane id -> task id. */
  async panes(): Promise<Map<string, string>> {
    const out = await this.tmux(["list-panes", "-t", this.target, "-F", `#{pane_id} #{${TASK_OPTION}}`]);
    const m = new Map<string, string>();
    for (const line of out.split("\n")) {
      const [pane, task] = line.trim().split(" ");
      if (pane && task && pane !== this.statusPane) m.set(pane, task);
    }
    return m;
  }

  async sync(running: readonly string[]): Promise<SyncResult> {
    const want = new Set(running);
    const have = await this.panes();
    const removed: string[] = [];
    for (const [pane, task] of have) {
      if (want.has(task)) continue;
      await this.tmux(["kill-pane", "-t", pane]).catch(() => undefined); // it may have closed itself
      have.delete(pane);
      removed.push(task);
    }
    const shown = new Set(have.values());
    const added: string[] = [];
    for (const task of running) {
      if (shown.has(task)) continue;
      const pane = await this.split(task);
      if (pane === undefined) break; // no room left: the status pane still lists it
      if (pane === "") continue; // its watch ended at once (the task ended): nothing to show
      have.set(pane, task);
      added.push(task);
    }
    const set = [...have.keys()].sort().join(",");
    let retiled = false;
    if (set !== this.tiledSet) {
      await this.tmux(["select-layout", "-t", this.target, "tiled"]);
      // Says which panes the last tiling was for (scripts and tests can wait on it).
      await this.tmux(["set-option", "-w", "-t", this.target, TILED_OPTION, set]).catch(() => undefined);
      this.tiledSet = set;
      retiled = true;
    }
    return { added, removed, retiled, panes: have.size };
  }

  /** The new pane's id; "" when it closed at once; undefined when there is no room for it. */
  private async split(task: string): Promise<string | undefined> {
    const args = ["split-window", "-d", "-t", this.target, "-P", "-F", "#{pane_id}", ...this.watchArgv, task];
    let pane: string;
    try {
      pane = (await this.tmux(args)).trim();
    } catch {
      // "no space for new pane": tile what is there and try once more.
      await this.tmux(["select-layout", "-t", this.target, "tiled"]).catch(() => undefined);
      this.tiledSet = "";
      try {
        pane = (await this.tmux(args)).trim();
      } catch {
        return undefined;
      }
    }
    try {
      await this.tmux(["set-option", "-p", "-t", pane, TASK_OPTION, task]);
    } catch {
      return ""; // the pane is gone already
    }
    await this.tmux(["select-pane", "-t", pane, "-T", task]).catch(() => undefined);
    return pane;
  }
}
