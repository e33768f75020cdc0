/** The MeshService handlers: translate API messages <-> MeshApi calls; no logic of their own. */
import { type handleUnaryCall, type ServerUnaryCall, status } from "@grpc/grpc-js";
import type { Logger } from "pino";
import {
  type MeshServiceServer,
  type TaskState as TaskStateMsg,
  taskStateName,
  type WatchMeshResponse,
  type WatchTaskResponse,
} from "../../../proto/index.js";
import type { MeshApi, TaskFilter } from "../../api/index.js";
import type { QuotaEntry } from "../../quota/index.js";
import type { MeshTransfer } from "../../transfer/index.js";
import { MeshError } from "../../errors.js";
import { parsePlanSubmitDocument } from "../../plans/index.js";
import type { TaskSpec, TaskState } from "../../tasks/index.js";
import { formatBytes } from "../../util/index.js";
import {
  meshEventToProto,
  planConflictToProto,
  planToProto,
  quotaEntryToProto,
  submitResultToProto,
  taskEventToProto,
  taskToProto,
  workerToProto,
} from "./convert.js";
import { serviceError, toServiceError } from "./status.js";
import { type PumpOptions, pumpStream } from "./stream.js";

export interface HandlerContext {
  api: MeshApi;
  logger: Logger;
  maxBacklog: number;
  /** The largest submit document accepted (bytes of UTF-8), checked before parsing. */
  maxSubmitBytes: number;
  /** Parses and validates a submit document (off the event loop). */
  parse(text: string, source: string): Promise<TaskSpec[]>;
  /** False once the server is stopping: new calls are refused with UNAVAILABLE. */
  accepting(): boolean;
  track: PumpOptions["track"];
  /** The bundle store's daemon side; none: ShipRepo and FetchResults answer UNIMPLEMENTED. */
  transfer?: MeshTransfer;
  /** The mesh's quota caps and slots (GetQuota); none: FAILED_PRECONDITION. */
  quota?: () => Promise<QuotaEntry[]>;
  /**
   * This listener's callers are on the daemon's machine (the Unix socket): only they may name
   * local paths (ShipRepo reads one, FetchResults writes one).
   */
  localPaths: boolean;
}

function requireId(id: string): string {
  if (!id) throw new MeshError("INVALID_ARGUMENT", "id: a task id is required", { field: "id" });
  return id;
}

function statesFilter(states: TaskStateMsg[]): TaskState[] | undefined {
  if (states.length === 0) return undefined;
  return states.map((s, i) => {
    const name = taskStateName(s);
    if (name === "unknown") {
      throw new MeshError("INVALID_ARGUMENT", `states[${i}]: ${s} is not a task state`, {
        field: `states[${i}]`,
      });
    }
    return name as TaskState;
  });
}

const shuttingDown = () =>
  serviceError(status.UNAVAILABLE, "meshd is shutting down; reconnect when it is back", "UNAVAILABLE");

export function meshServiceHandlers(ctx: HandlerContext): MeshServiceServer {
  const { api, logger } = ctx;

  function unary<Req, Res>(name: string, fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>) {
    const handler: handleUnaryCall<Req, Res> = (call, callback) => {
      if (!ctx.accepting()) return callback(shuttingDown());
      fn(call.request, call).then(
        (res) => callback(null, res),
        (err: unknown) => {
          const { error, internal } = toServiceError(err);
          if (internal) logger.error({ err, method: name }, "grpc call failed");
          else logger.debug({ method: name, code: error.code, msg: error.details }, "grpc call refused");
          // After a deadline or a client cancel grpc-js drops this; nothing else to undo.
          callback(error);
        },
      );
    };
    return handler;
  }

  const pump = { maxBacklog: ctx.maxBacklog, logger, track: ctx.track };
  const transfer = (what: string): MeshTransfer => {
    if (!ctx.localPaths) {
      throw new MeshError(
        "FAILED_PRECONDITION",
        `${what} names a folder of the daemon's machine: call it on the daemon's Unix socket (run mesh on that machine)`,
        { field: "path" },
      );
    }
    if (!ctx.transfer) {
      throw new MeshError("FAILED_PRECONDITION", `${what}: this daemon has no bundle store`);
    }
    return ctx.transfer;
  };

  return {
    submitTasks: unary("SubmitTasks", async (req) => {
      if (!req.document.trim()) {
        throw new MeshError("INVALID_ARGUMENT", "document: the task spec document is empty", {
          field: "document",
        });
      }
      const size = Buffer.byteLength(req.document);
      if (size > ctx.maxSubmitBytes) {
        throw new MeshError(
          "RESOURCE_EXHAUSTED",
          `document: ${formatBytes(size)} is over this daemon's submit limit of ${formatBytes(ctx.maxSubmitBytes)} (limits.submitMaxBytes); nothing was submitted. Split the tasks into several submits`,
          { field: "document" },
        );
      }
      // Validation lives in one place (parseTaskSpecs, in a worker thread), all or nothing,
      // before anything is written.
      const specs = await ctx.parse(req.document, req.source || "input");
      const results = await api.submit(specs);
      return { results: results.map(submitResultToProto) };
    }),
    submitPlan: unary("SubmitPlan", async (req) => {
      if (!req.document.trim()) {
        throw new MeshError("INVALID_ARGUMENT", "document: the plan document is empty", {
          field: "document",
        });
      }
      const size = Buffer.byteLength(req.document);
      if (size > ctx.maxSubmitBytes) {
        throw new MeshError(
          "RESOURCE_EXHAUSTED",
          `document: ${formatBytes(size)} is over this daemon's submit limit of ${formatBytes(ctx.maxSubmitBytes)} (limits.submitMaxBytes); nothing was submitted. Split the plan`,
          { field: "document" },
        );
      }
      // Validated whole, before anything is written.
      const plan = parsePlanSubmitDocument(req.document, req.source || "input");
      const res = await api.submitPlan(plan, req.submitter || undefined);
      return { planId: res.planId, created: res.created, tasks: res.tasks.map(submitResultToProto) };
    }),
    getPlan: unary("GetPlan", async (req) => {
      if (!req.id) throw new MeshError("INVALID_ARGUMENT", "id: a plan id is required", { field: "id" });
      const v = await api.getPlan(req.id);
      return {
        plan: planToProto(v.plan),
        tasks: v.tasks.map(taskToProto),
        missing: v.missing,
        conflicts: v.conflicts.map(planConflictToProto),
      };
    }),
    listPlans: unary("ListPlans", async () => ({
      plans: (await api.listPlans()).map((p) => planToProto(p.plan, p.states)),
    })),
    getQuota: unary("GetQuota", async () => {
      if (!ctx.quota) throw new MeshError("FAILED_PRECONDITION", "GetQuota: this daemon keeps no quota slots");
      return { entries: (await ctx.quota()).map(quotaEntryToProto) };
    }),
    listWorkers: unary("ListWorkers", async () => ({
      workers: (await api.listWorkers()).map(workerToProto),
    })),
    getTask: unary("GetTask", async (req) => ({ task: taskToProto(await api.getTask(requireId(req.id))) })),
    listTasks: unary("ListTasks", async (req) => {
      const filter: TaskFilter = {};
      const states = statesFilter(req.states);
      if (states) filter.state = states;
      if (req.pool) filter.pool = req.pool;
      if (req.workerId) filter.workerId = req.workerId;
      if (req.plan) filter.plan = req.plan;
      if (req.limit > 0) filter.limit = req.limit;
      const { tasks, unreadable } = await api.listTasks(filter);
      return { tasks: tasks.map(taskToProto), unreadable };
    }),
    watchTask: (call) => {
      if (!ctx.accepting()) return void call.emit("error", shuttingDown());
      let id: string;
      try {
        id = requireId(call.request.id);
      } catch (err) {
        return void call.emit("error", toServiceError(err).error);
      }
      void pumpStream(
        call,
        (signal) => (call.request.history ? api.taskHistory(id, signal) : api.watchTask(id, signal)),
        (ev): WatchTaskResponse => ({ event: taskEventToProto(ev) }),
        pump,
      );
    },
    watchMesh: (call) => {
      if (!ctx.accepting()) return void call.emit("error", shuttingDown());
      void pumpStream(
        call,
        (signal) => api.watchMesh(signal),
        (ev): WatchMeshResponse => meshEventToProto(ev),
        pump,
      );
    },
    cancelTask: unary("CancelTask", async (req) => ({
      task: taskToProto(await api.cancel(requireId(req.id))),
    })),
    retryTask: unary("RetryTask", async (req) => ({ task: taskToProto(await api.retry(requireId(req.id))) })),
    shipRepo: unary("ShipRepo", async (req) => {
      const t = transfer("ShipRepo");
      if (!req.path) throw new MeshError("INVALID_ARGUMENT", "path: a folder is required", { field: "path" });
      const r = await t.ship({ path: req.path, dirty: req.dirty, ...(req.ref ? { ref: req.ref } : {}) });
      return {
        repoId: r.repoId,
        commit: r.commit,
        head: r.head,
        toplevel: r.toplevel,
        dirty: r.dirty,
        dirtyShipped: r.dirtyShipped,
        uploaded: r.uploaded,
        bytes: r.bytes,
        requires: r.requires,
        bundle: r.bundle ?? "",
      };
    }),
    fetchResults: unary("FetchResults", async (req) => {
      const t = transfer("FetchResults");
      if (!req.path) throw new MeshError("INVALID_ARGUMENT", "path: a folder is required", { field: "path" });
      const results = await t.fetch(api, {
        path: req.path,
        ids: req.ids,
        all: req.all,
        force: req.force,
        hidden: req.hidden,
      });
      return {
        results: results.map((r) =>
          "hiddenRef" in r
            ? {
                id: r.id,
                outcome: r.outcome,
                branch: r.branch ?? "",
                base: r.base,
                head: r.head,
                previous: r.previous ?? "",
                bytes: r.bytes,
                reason: r.reason ?? "",
                hiddenRef: r.hiddenRef,
              }
            : {
                id: r.id,
                outcome: r.outcome,
                branch: "",
                base: "",
                head: "",
                previous: "",
                bytes: 0,
                reason: r.reason,
                hiddenRef: "",
              },
        ),
      };
    }),
  };
}
