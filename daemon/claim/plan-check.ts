/**
 * Conflicts found early (issue 14 §4): when a task of a plan has succeeded with a result
 * bundle, the daemon that ran it records the branch (its changed paths) and compares it with
 * the plan's other finished branches that touch one of the same paths, with `git merge-tree`
 * in its repo cache (the others' commits come from the bundle store). A conflict is stored
 * (PlanBranchStore), published on the plan's event subject and counted, before anyone fetches.
 *
 * Branches of which one contains the other (a task that needs the other) are not compared:
 * such a pair cannot conflict, and the dependent starts from its needs anyway. Two tasks that
 * finish at once on two daemons both record their branch before reading the others', so at
 * least one of them sees the other; the pair's KV entry makes it one report.
 *
 * Advisory: a failed check is logged and changes no task.
 */
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import { planEventSubject } from "../nats/index.js";
import {
  MAX_BRANCH_PATHS,
  type PlanBranch,
  type PlanBranchStore,
  type PlanConflict,
} from "../plans/index.js";
import type { TaskRecord } from "../tasks/index.js";
import type { BranchCompare } from "../workspace/index.js";
import type { MeshObserver } from "./observer.js";

/** A plan event on `mesh.events.plan.<plan id>`. */
export type PlanEvent =
  | ({ type: "conflict"; at: string; workerId: string } & Omit<PlanConflict, "v" | "foundAt" | "foundBy">)
  | {
      type: "needs_conflict";
      plan: string;
      taskId: string;
      /** The needs whose results could not be merged. */
      needs: string[];
      files: string[];
      at: string;
      workerId: string;
    };

export interface PlanCheckDeps {
  branches: PlanBranchStore;
  git: BranchCompare;
  /** Publishes a plan event (best effort, like task events). */
  publish(subject: string, event: PlanEvent): void;
  observer: MeshObserver;
  log: Logger;
  workerId: string;
}

export class PlanCheck {
  private readonly pending = new Set<Promise<void>>();
  private readonly log: Logger;

  constructor(private readonly deps: PlanCheckDeps) {
    this.log = deps.log.child({ component: "plan-check" });
  }

  /** A task succeeded (the record as written): checks its branch in the background. */
  finished(record: TaskRecord, pool: string): void {
    const { plan, repo } = record.spec;
    const bundle = record.result?.bundle;
    if (!plan || !repo || !bundle?.name || bundle.head === bundle.base) return;
    const p: Promise<void> = this.check(record, pool)
      .catch((err: unknown) =>
        this.log.warn({ taskId: record.id, plan, err: errorMessage(err) }, "plan conflict check failed"),
      )
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** A dependent could not start: its needs' results conflict. */
  needsConflict(record: TaskRecord, needs: string[], files: string[]): void {
    const plan = record.spec.plan;
    if (!plan) return;
    this.deps.publish(planEventSubject(plan), {
      type: "needs_conflict",
      plan,
      taskId: record.id,
      needs,
      files,
      at: new Date().toISOString(),
      workerId: this.deps.workerId,
    });
  }

  /** Waits for the checks in progress (the daemon's stop). */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }

  private async check(record: TaskRecord, pool: string): Promise<void> {
    const { deps } = this;
    const plan = record.spec.plan!;
    const repo = record.spec.repo!;
    const bundle = record.result!.bundle!;
    const all = await deps.git.changedPaths(repo, bundle);
    const mine: PlanBranch = {
      v: 1,
      plan,
      taskId: record.id,
      repo,
      bundle,
      paths: all.slice(0, MAX_BRANCH_PATHS),
      ...(all.length > MAX_BRANCH_PATHS ? { morePaths: true } : {}),
      finishedAt: record.finishedAt ?? new Date().toISOString(),
    };
    await deps.branches.putBranch(mine);
    const others = (await deps.branches.branches(plan)).filter(
      (b) =>
        b.taskId !== record.id &&
        b.repo === repo &&
        b.bundle.repoId === bundle.repoId &&
        b.bundle.head !== bundle.head &&
        touchSame(mine, b),
    );
    if (!others.length) return;
    const found = await deps.git.conflicts(
      repo,
      { taskId: record.id, head: bundle.head, bundle },
      others.map((b) => ({ taskId: b.taskId, head: b.bundle.head, bundle: b.bundle })),
    );
    for (const c of found) {
      const mineFirst = record.id < c.taskId;
      const conflict: PlanConflict = {
        v: 1,
        plan,
        tasks: mineFirst ? [record.id, c.taskId] : [c.taskId, record.id],
        heads: mineFirst ? [bundle.head, c.head] : [c.head, bundle.head],
        files: c.files,
        foundAt: new Date().toISOString(),
        foundBy: deps.workerId,
      };
      if (!(await deps.branches.addConflict(conflict))) continue;
      this.log.warn({ plan, tasks: conflict.tasks, files: conflict.files }, "branches of a plan conflict");
      deps.observer.planConflict?.({ pool });
      deps.publish(planEventSubject(plan), {
        type: "conflict",
        plan,
        tasks: conflict.tasks,
        heads: conflict.heads,
        files: conflict.files,
        at: conflict.foundAt,
        workerId: deps.workerId,
      });
    }
  }
}

/** Whether two branches change a path in common (a cut path list touches everything). */
function touchSame(a: PlanBranch, b: PlanBranch): boolean {
  if (a.morePaths || b.morePaths) return true;
  const set = new Set(a.paths);
  return b.paths.some((p) => set.has(p));
}
