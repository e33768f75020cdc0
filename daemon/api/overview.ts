/**
 * The mesh at a glance, for every view (web dashboard, `mesh top`, `mesh tmux`): workers, tasks
 * ordered attention first, plans (tasks grouped by `spec.plan`, with their `needs` edges), and
 * cost and tokens. Pure: built from what the API answers, the same on every machine.
 */
import { statusRank, type TaskStatus } from "./status.js";

/** A task as the overview reads it: its record's fields that views show, and its status. */
export interface OverviewTaskInput {
  record: {
    id: string;
    state: string;
    attempt: number;
    spec: { title?: string; runner: string; pool: string; plan?: string; needs?: string[] };
    owner?: { workerId: string; host: string };
    attempts: ReadonlyArray<{ workerId: string; host: string }>;
    submittedAt: string;
    updatedAt: string;
    result?: { costUsd?: number; tokens?: { input: number; output: number } };
  };
  status?: TaskStatus;
}

export interface OverviewWorkerInput {
  workerId: string;
  name: string;
  host: string;
  slotsTotal: number;
  slotsFree: number;
  running: string[];
  draining?: boolean;
}

export interface OverviewTask {
  id: string;
  title: string;
  state: string;
  status: TaskStatus;
  runner: string;
  worker: string;
  host: string;
  attempt: number;
  plan?: string;
  needs: string[];
  costUsd: number;
  tokens: number;
  updatedAt: string;
}

export interface OverviewPlan {
  id: string;
  tasks: string[];
  /** Counts by status kind. */
  counts: Record<string, number>;
  edges: Array<{ from: string; to: string }>;
}

export interface Overview {
  workers: Array<OverviewWorkerInput & { busy: number }>;
  tasks: OverviewTask[];
  plans: OverviewPlan[];
  totals: { costUsd: number; inputTokens: number; outputTokens: number; byKind: Record<string, number> };
}

const FALLBACK: TaskStatus = { kind: "queued", attention: false };

export function overview(
  tasks: readonly OverviewTaskInput[],
  workers: readonly OverviewWorkerInput[],
): Overview {
  const names = new Map(workers.map((w) => [w.workerId, w.name]));
  const totals = { costUsd: 0, inputTokens: 0, outputTokens: 0, byKind: {} as Record<string, number> };
  const out: OverviewTask[] = tasks.map(({ record: r, status }) => {
    const st = status ?? FALLBACK;
    const last = r.owner ?? r.attempts.at(-1);
    const cost = r.result?.costUsd ?? 0;
    const tin = r.result?.tokens?.input ?? 0;
    const tout = r.result?.tokens?.output ?? 0;
    totals.costUsd += cost;
    totals.inputTokens += tin;
    totals.outputTokens += tout;
    totals.byKind[st.kind] = (totals.byKind[st.kind] ?? 0) + 1;
    return {
      id: r.id,
      title: r.spec.title ?? "",
      state: r.state,
      status: st,
      runner: r.spec.runner,
      worker: last ? (names.get(last.workerId) ?? last.workerId) : "",
      host: last?.host ?? "",
      attempt: r.attempt,
      ...(r.spec.plan ? { plan: r.spec.plan } : {}),
      needs: r.spec.needs ?? [],
      costUsd: cost,
      tokens: tin + tout,
      updatedAt: r.updatedAt,
    };
  });
  out.sort(
    (a, b) =>
      statusRank(a.status.kind) - statusRank(b.status.kind) ||
      b.updatedAt.localeCompare(a.updatedAt) ||
      a.id.localeCompare(b.id),
  );
  const plans = new Map<string, OverviewPlan>();
  for (const t of out) {
    if (!t.plan) continue;
    let p = plans.get(t.plan);
    if (!p) {
      p = { id: t.plan, tasks: [], counts: {}, edges: [] };
      plans.set(t.plan, p);
    }
    p.tasks.push(t.id);
    p.counts[t.status.kind] = (p.counts[t.status.kind] ?? 0) + 1;
    for (const n of t.needs) p.edges.push({ from: n, to: t.id });
  }
  return {
    workers: workers.map((w) => ({ ...w, busy: w.slotsTotal - w.slotsFree })),
    tasks: out,
    plans: [...plans.values()].sort((a, b) => a.id.localeCompare(b.id)),
    totals,
  };
}
