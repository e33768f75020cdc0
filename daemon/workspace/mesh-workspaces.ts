/**
 * The daemon's workspace provider: tasks with a repo get a git worktree, the rest an empty
 * folder. Both live under `<stateDir>/work/<task id>/a<n>` and are removed once idle for longer
 * than the retention (checked by a timer started with the first task; it never holds the
 * process open). Scratch folders of the attempts go with the same retention; task branches and
 * repo caches with theirs (see evict.ts).
 */
import { join, resolve } from "node:path";
import type { Logger } from "../log.js";
import type { TaskSpec } from "../tasks/index.js";
import { DirWorkspaceProvider } from "./dir-workspace.js";
import { type GitWorkspaceOptions, GitWorkspaceProvider } from "./git-workspace.js";
import { sweepAttempts } from "./sweep.js";
import type { PrepareCarry, PreparedWorkspace, WorkspaceProvider } from "./workspace.js";

export interface MeshWorkspacesOptions extends GitWorkspaceOptions {
  /** How often to sweep; default a quarter of the retention, between 1 s and 1 h. */
  sweepIntervalMs?: number;
}

export class MeshWorkspaces implements WorkspaceProvider {
  readonly git: GitWorkspaceProvider;
  private readonly dir: DirWorkspaceProvider;
  private readonly activeDirs = new Set<string>();
  private readonly log: Logger;
  private readonly workRoot: string;
  private readonly scratchRoot: string;
  private readonly claudeRoot: string;
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: MeshWorkspacesOptions) {
    this.git = new GitWorkspaceProvider(opts);
    this.workRoot = join(resolve(opts.stateDir), "work");
    this.scratchRoot = join(resolve(opts.stateDir), "scratch");
    // Where the Claude runner keeps each task's config and transcripts (see runtime.ts).
    this.claudeRoot = join(resolve(opts.stateDir), "claude");
    this.dir = new DirWorkspaceProvider(this.workRoot);
    this.log = opts.log.child({ component: "workspaces" });
  }

  async prepare(
    spec: TaskSpec,
    attempt: number,
    signal: AbortSignal,
    carry?: PrepareCarry,
  ): Promise<PreparedWorkspace> {
    this.startTimer();
    if (spec.repo) return this.git.prepare(spec, attempt, signal, carry);
    const ws = await this.dir.prepare(spec, attempt);
    this.activeDirs.add(ws.workdir);
    const release = (): void => {
      this.activeDirs.delete(ws.workdir);
    };
    signal.addEventListener("abort", release, { once: true });
    return {
      ...ws,
      finish: async (outcome) => {
        signal.removeEventListener("abort", release);
        release();
        return ws.finish(outcome);
      },
    };
  }

  /** Removes worktrees, folders and scratch of attempts idle for longer than the retention. */
  sweep(): Promise<void> {
    this.sweeping ??= this.doSweep().finally(() => {
      this.sweeping = undefined;
    });
    return this.sweeping;
  }

  private async doSweep(): Promise<void> {
    const removed = await sweepAttempts({
      workRoot: this.workRoot,
      scratchRoot: this.scratchRoot,
      taskStateRoots: [this.claudeRoot],
      retentionMs: this.opts.retentionMs,
      isActive: (p) => this.activeDirs.has(p) || this.git.isActive(p),
      removeWorktree: (p) => this.git.removeWorktree(p),
    });
    if (removed.length) this.log.info({ removed: removed.length }, "removed workspaces past retention");
    await this.git.evict();
  }

  private startTimer(): void {
    if (this.timer || this.closing) return;
    const every =
      this.opts.sweepIntervalMs ??
      Math.min(3_600_000, Math.max(1_000, Math.floor(this.opts.retentionMs / 4)));
    this.timer = setInterval(() => {
      this.sweep().catch((err: unknown) => this.log.warn({ err }, "workspace sweep failed"));
    }, every);
    this.timer.unref();
  }

  /**
   * Stops the sweep timer (a prepare() after it starts none) and waits for a sweep in progress:
   * the daemon calls it on its way out, so that nothing removes worktrees after it stopped.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      await this.sweeping?.catch(() => undefined);
    })();
    return this.closing;
  }
}
