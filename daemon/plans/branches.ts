/**
 * The finished branches of each plan and the conflicts found between them, in the KV bucket
 * mesh-plan-branches (names.ts): what the early conflict check compares a newly finished branch
 * with, and what `mesh plan status` shows (`listPlanConflicts`). Entries expire with the
 * bucket's TTL (two task retentions, like the bundles the branches are in).
 */
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { isWrongLastSequence, kvStream, kvSubjectPrefix, PLAN_BRANCHES_BUCKET } from "../nats/index.js";
import type { ResultBundle } from "../tasks/index.js";

/** At most this many changed paths are kept per branch; beyond it the branch touches "everything". */
export const MAX_BRANCH_PATHS = 2000;

export interface PlanBranch {
  v: 1;
  plan: string;
  taskId: string;
  /** The task's repo as its spec names it (branches of other repos are never compared). */
  repo: string;
  bundle: ResultBundle;
  /** Paths changed between the bundle's base and head, sorted; cut at MAX_BRANCH_PATHS. */
  paths: string[];
  /** More paths changed than are listed: compare with every branch. */
  morePaths?: boolean;
  finishedAt: string;
}

export interface PlanConflict {
  v: 1;
  plan: string;
  /** The two tasks, sorted. */
  tasks: [string, string];
  /** Their heads when checked (same order). */
  heads: [string, string];
  /** The paths `git merge-tree` could not merge, sorted. */
  files: string[];
  foundAt: string;
  /** The worker that found it. */
  foundBy: string;
}

type Nats = { js: JetStreamClient; jsm: JetStreamManager };

const bucketExists = (nats: Nats): Promise<boolean> =>
  nats.jsm.streams.info(kvStream(PLAN_BRANCHES_BUCKET)).then(
    () => true,
    () => false,
  );

const enc = new TextEncoder();
const dec = new TextDecoder();

const branchKey = (plan: string, taskId: string): string => `${plan}.branch.${taskId}`;
const conflictKey = (plan: string, a: string, b: string): string => `${plan}.conflict.${a}.${b}`;

export interface PlanBranchStoreOptions {
  replicas: number;
  /** How long entries live (0: forever). */
  ttlMs: number;
}

export class PlanBranchStore {
  constructor(
    private readonly kv: KV,
    private readonly jsm: JetStreamManager,
  ) {}

  /** Opens the bucket, making it when it is not there (an existing one keeps its settings). */
  static async open(nats: Nats, opts: PlanBranchStoreOptions): Promise<PlanBranchStore> {
    const kvm = new Kvm(nats.js);
    if (!(await bucketExists(nats))) {
      try {
        await kvm.create(PLAN_BRANCHES_BUCKET, {
          history: 1,
          replicas: opts.replicas,
          ...(opts.ttlMs > 0 ? { ttl: opts.ttlMs } : {}),
        });
      } catch (err) {
        // Made by another daemon meanwhile (maybe with another TTL): use that one.
        if (!(await bucketExists(nats))) throw err;
      }
    }
    return new PlanBranchStore(await kvm.open(PLAN_BRANCHES_BUCKET), nats.jsm);
  }

  async putBranch(b: PlanBranch): Promise<void> {
    await this.kv.put(branchKey(b.plan, b.taskId), enc.encode(JSON.stringify(b)));
  }

  async branches(plan: string): Promise<PlanBranch[]> {
    return this.read<PlanBranch>(`${plan}.branch.`);
  }

  /**
   * Records a conflict; true when it is news (no entry for the pair, or one about other heads),
   * so that two workers finding it at once report it once.
   */
  async addConflict(c: PlanConflict): Promise<boolean> {
    const key = conflictKey(c.plan, c.tasks[0], c.tasks[1]);
    const data = enc.encode(JSON.stringify(c));
    for (;;) {
      const old = await this.kv.get(key);
      try {
        if (old?.operation !== "PUT") {
          await this.kv.create(key, data);
          return true;
        }
        const prev = JSON.parse(dec.decode(old.value)) as PlanConflict;
        if (prev.heads[0] === c.heads[0] && prev.heads[1] === c.heads[1]) return false;
        await this.kv.update(key, data, old.revision);
        return true;
      } catch (err) {
        // Another worker wrote the pair meanwhile: read it again.
        if (!isWrongLastSequence(err)) throw err;
      }
    }
  }

  /** The conflicts found between the plan's branches, sorted by task pair. */
  async conflicts(plan: string): Promise<PlanConflict[]> {
    return this.read<PlanConflict>(`${plan}.conflict.`);
  }

  private async read<T>(prefix: string): Promise<T[]> {
    // One stream-info request for this plan's keys only (kvKeys lists the whole bucket).
    const subjects = kvSubjectPrefix(PLAN_BRANCHES_BUCKET);
    const info = await this.jsm.streams.info(kvStream(PLAN_BRANCHES_BUCKET), {
      subjects_filter: `${subjects}${prefix}>`,
    });
    const keys = Object.keys(info.state.subjects ?? {})
      .filter((k) => k.startsWith(`${subjects}${prefix}`))
      .map((k) => k.slice(subjects.length))
      .sort();
    const out: T[] = [];
    for (const k of keys) {
      const e = await this.kv.get(k);
      if (e?.operation !== "PUT") continue;
      try {
        out.push(JSON.parse(dec.decode(e.value)) as T);
      } catch {
        // An entry that cannot be read is skipped: the check is advisory, the record the truth.
      }
    }
    return out;
  }
}

/** The store as a reader (it creates nothing); undefined when the bucket does not exist yet. */
async function reader(nats: Nats): Promise<PlanBranchStore | undefined> {
  if (!(await bucketExists(nats))) return undefined;
  return new PlanBranchStore(await new Kvm(nats.js).open(PLAN_BRANCHES_BUCKET), nats.jsm);
}

/** The conflicts of `plan` (for `mesh plan status`), sorted by task pair. */
export async function listPlanConflicts(nats: Nats, plan: string): Promise<PlanConflict[]> {
  return (await (await reader(nats))?.conflicts(plan)) ?? [];
}

/** The finished branches of `plan` the check has recorded, with their changed paths, by task id. */
export async function listPlanBranches(nats: Nats, plan: string): Promise<PlanBranch[]> {
  return (await (await reader(nats))?.branches(plan)) ?? [];
}
