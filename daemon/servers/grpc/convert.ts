/** Domain objects -> API messages. Typed fields for common needs plus the full object as JSON. */
import {
  type Attempt,
  type Plan,
  type QuotaEntry as QuotaEntryMsg,
  type PlanConflict as PlanConflictMsg,
  type Task,
  type TaskEvent as TaskEventMsg,
  type TaskResult,
  TaskState as TaskStateMsg,
  taskStateFromName,
  type WatchMeshResponse,
  type Worker,
} from "../../../proto/index.js";
import type { MeshEvent, SubmitResult, TaskView } from "../../api/index.js";
import { type PlanConflict, type PlanRecord, planNeeds } from "../../plans/index.js";
import type { QuotaEntry } from "../../quota/index.js";
import type { WorkerInfo } from "../../registry/index.js";
import type { AttemptInfo, ResultBundle, TaskEvent, TaskResultInfo, TaskState } from "../../tasks/index.js";

export const bundleToProto = (b: ResultBundle) => ({
  name: b.name ?? "",
  repoId: b.repoId,
  base: b.base,
  head: b.head,
  size: b.size,
});

export function stateToProto(s: TaskState): TaskStateMsg {
  return taskStateFromName(s) ?? TaskStateMsg.TASK_STATE_UNSPECIFIED;
}

function attemptToProto(a: AttemptInfo): Attempt {
  return {
    attempt: a.attempt,
    workerId: a.workerId,
    host: a.host,
    claimedAt: a.claimedAt,
    startedAt: a.startedAt ?? "",
    endedAt: a.endedAt ?? "",
    outcome: a.outcome ?? "",
    reason: a.reason ?? "",
    ...(typeof a.exitCode === "number" ? { exitCode: a.exitCode } : {}),
    signal: a.signal ?? "",
    ...(a.bundle ? { bundle: bundleToProto(a.bundle) } : {}),
  };
}

function resultToProto(r: TaskResultInfo): TaskResult {
  return {
    summary: r.summary ?? "",
    ...(r.costUsd !== undefined ? { costUsd: r.costUsd } : {}),
    ...(r.tokens ? { tokens: { ...r.tokens } } : {}),
    ...(r.turns !== undefined ? { turns: r.turns } : {}),
    sessionId: r.sessionId ?? "",
    branch: r.branch ?? "",
    headCommit: r.headCommit ?? "",
    ...(r.durationMs !== undefined ? { durationMs: Math.round(r.durationMs) } : {}),
    model: r.model ?? "",
    ...(r.bundle ? { bundle: bundleToProto(r.bundle) } : {}),
  };
}

export function taskToProto(view: TaskView): Task {
  const r = view.record;
  // The record drops its owner when the task ends; the last attempt still says who ran it.
  const last = r.attempts.at(-1);
  const owner = r.owner ?? (last ? { workerId: last.workerId, host: last.host } : undefined);
  return {
    id: r.id,
    title: r.spec.title ?? "",
    state: stateToProto(r.state),
    pool: r.spec.pool,
    labels: { ...r.spec.labels },
    runner: r.spec.runner,
    attempt: r.attempt,
    maxAttempts: r.maxAttempts,
    countedFailures: r.countedFailures,
    ownerWorkerId: owner?.workerId ?? "",
    ownerHost: owner?.host ?? "",
    cancelRequested: r.cancelRequested ?? false,
    submittedAt: r.submittedAt,
    updatedAt: r.updatedAt,
    finishedAt: r.finishedAt ?? "",
    notBefore: r.notBefore ?? "",
    reason: r.reason ?? "",
    attempts: r.attempts.map(attemptToProto),
    ...(r.result ? { result: resultToProto(r.result) } : {}),
    unschedulableReason: view.unschedulable ?? "",
    revision: view.revision,
    recordJson: JSON.stringify(r),
    ...(view.status
      ? {
          status: {
            kind: view.status.kind,
            detail: view.status.detail ?? "",
            attention: view.status.attention,
            workerId: view.status.workerId ?? "",
          },
        }
      : {}),
    plan: r.spec.plan ?? "",
    needs: [...(r.spec.needs ?? [])],
    waitingOn: [...(view.waitingOn ?? [])],
  };
}

export function workerToProto(w: WorkerInfo): Worker {
  return {
    workerId: w.workerId,
    name: w.name,
    host: w.host,
    pools: [...w.pools],
    labels: { ...w.labels },
    runners: [...w.runners],
    slotsTotal: w.slotsTotal,
    slotsFree: w.slotsFree,
    running: [...w.running],
    version: w.version,
    startedAt: w.startedAt,
    updatedAt: w.updatedAt,
    httpUrl: w.httpUrl ?? "",
    draining: w.draining ?? false,
    infoJson: JSON.stringify(w),
    unavailableRunners: (w.unavailableRunners ?? []).map((u) => ({ runner: u.runner, reason: u.reason })),
  };
}

export function submitResultToProto(r: SubmitResult): { id: string; created: boolean; state: TaskStateMsg } {
  return { id: r.id, created: r.created, state: stateToProto(r.state) };
}

export function taskEventToProto(e: TaskEvent): TaskEventMsg {
  const base = {
    taskId: e.taskId,
    at: e.at,
    attempt: e.attempt,
    workerId: e.workerId ?? "",
    eventJson: JSON.stringify(e),
  };
  switch (e.type) {
    case "state":
      return { ...base, state: { state: stateToProto(e.state), reason: e.reason ?? "" } };
    case "log":
      return { ...base, log: { stream: e.stream, line: e.line } };
    case "agent":
      return { ...base, agent: { kind: e.kind, dataJson: JSON.stringify(e.data) } };
    default:
      // an event kind newer than this server's mapping: still delivered via event_json
      return base;
  }
}

export function meshEventToProto(e: MeshEvent): WatchMeshResponse {
  switch (e.type) {
    case "task":
      return { task: taskEventToProto(e.event) };
    case "worker_joined":
      return { workerJoined: workerToProto(e.worker) };
    case "worker_left":
      return { workerLeft: { workerId: e.workerId, at: e.at } };
  }
}

export function planToProto(p: PlanRecord, states: Partial<Record<TaskState, number>> = {}): Plan {
  return {
    id: p.id,
    title: p.title ?? "",
    createdAt: p.createdAt,
    submitter: p.submitter,
    tasks: [...planNeeds(p)].map(([id, needs]) => ({ id, needs })),
    states: Object.fromEntries(Object.entries(states).filter(([, n]) => (n ?? 0) > 0)) as Record<
      string,
      number
    >,
  };
}

export function quotaEntryToProto(e: QuotaEntry): QuotaEntryMsg {
  return {
    kind: e.kind,
    name: e.name,
    capacity: e.capacity,
    inUse: e.inUse,
    holders: e.holders.map((h) => ({
      taskId: h.taskId,
      attempt: h.attempt,
      workerId: h.workerId,
      host: h.host,
      units: h.units,
      since: h.since,
    })),
    startsPerMinute: e.startsPerMinute ?? 0,
    startedLastMinute: e.startedLastMinute ?? 0,
    workers: e.workers ?? [],
    state: e.state ?? "",
    rejectedUntil: e.rejectedUntil ?? "",
  };
}

export function planConflictToProto(c: PlanConflict): PlanConflictMsg {
  return { tasks: [...c.tasks], heads: [...c.heads], files: c.files, foundAt: c.foundAt, foundBy: c.foundBy };
}
