/**
 * Daemon configuration in two stages: `DaemonOptions` (what a user writes in a config file or
 * passes as flags, validated once with zod) compiled to `DaemonConfig` (every field required,
 * durations in ms).
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { z } from "zod";
import { MeshError } from "./errors.js";
import { DEFAULT_SUBMIT_MAX_BYTES } from "./limits.js";
import { natsOptionsSchema } from "./nats/index.js";
import { webhookSchema } from "./notify/index.js";
import { defaultStateDir } from "./state-dir.js";
import {
  DEFAULT_TASK_ENV_ALLOW,
  envPatternProblem,
  formatTimerLimit,
  LABEL_KEY_RE,
  MAX_TIMER_MS,
  NAME_RE,
  PERMISSION_ORDER,
  type TaskPolicy,
} from "./tasks/index.js";
import { formatBytes, parseBytes, parseDuration, yaml } from "./util/index.js";

/** A duration a timer can hold: at most 2^31-1 ms (about 24.8 days). */
const durationMs = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  const ms = typeof v === "number" ? v : parseDuration(v);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: "custom", message: `"${v}" is not a duration; use e.g. 500ms, 15s, 2m` });
    return z.NEVER;
  }
  if (ms > MAX_TIMER_MS) {
    ctx.addIssue({ code: "custom", message: `"${v}" is longer than the limit of ${formatTimerLimit()}` });
    return z.NEVER;
  }
  return ms;
});

/** An age compared with timestamps, never put in a timer: no upper bound. */
const ageMs = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  const ms = typeof v === "number" ? v : parseDuration(v);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({ code: "custom", message: `"${v}" is not a duration; use e.g. 12h, 7d, 90d` });
    return z.NEVER;
  }
  return ms;
});

const envPattern = z.string().superRefine((p, ctx) => {
  const problem = envPatternProblem(p);
  if (problem) ctx.addIssue({ code: "custom", message: problem });
});

/** A duration, or "forever" (0). */
const retention = z.union([z.number().int().positive(), z.string()]).transform((v, ctx) => {
  if (v === "forever") return 0;
  const ms = typeof v === "number" ? v : parseDuration(v);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({
      code: "custom",
      message: `"${v}" is not a duration or "forever"; use e.g. 12h, 7d, forever`,
    });
    return z.NEVER;
  }
  return ms;
});

/** A size in bytes: a number, or text such as 64KiB, 8MiB, 1GiB. */
const bytes = (min: number) =>
  z.union([z.number().int(), z.string()]).transform((v, ctx) => {
    const n = typeof v === "number" ? v : parseBytes(v);
    if (n === undefined || n < min) {
      ctx.addIssue({
        code: "custom",
        message: `"${v}" is not a size of at least ${formatBytes(min)}; use e.g. 64KiB, 8MiB, 1GiB`,
      });
      return z.NEVER;
    }
    return n;
  });

/** Bounds on what a client can make this daemon hold or do (see README "Limits"). */
const limitsSchema = z.strictObject({
  /** The largest submit document (YAML/JSON text) accepted, checked before it is parsed. */
  submitMaxBytes: bytes(1024).default(DEFAULT_SUBMIT_MAX_BYTES),
  /** A submit document still being parsed after this long is refused (its parser is stopped). */
  submitParseTimeout: durationMs.default(30_000),
  /** A gRPC call whose request has not fully arrived after this long is ended. */
  requestReadTimeout: durationMs.default(30_000),
  /** MESH_EVENTS keeps at most this many bytes (oldest events dropped first). */
  eventsMaxBytes: bytes(64 * 1024).default(1024 ** 3),
  /** MESH_EVENTS drops events older than this. */
  eventsMaxAge: durationMs.default(7 * 86_400_000),
  /** The task records bucket holds at most this many bytes; a submit that would pass 90% of it is refused. */
  tasksMaxBytes: bytes(64 * 1024).default(1024 ** 3),
  /** Agent events one attempt may put on the bus; the rest are only counted. */
  agentEventsPerAttempt: z.number().int().min(10).default(5000),
  /** Bytes of agent events one attempt may put on the bus. */
  agentEventBytesPerAttempt: bytes(4096).default(10 * 1024 * 1024),
  /** The largest git bundle shipped or stored (a repo's first sync is one bundle). */
  bundleMaxBytes: bytes(64 * 1024).default(256 * 1024 ** 2),
  /** The bundle store (mesh-bundles) holds at most this many bytes; a bundle that does not fit is refused. */
  bundlesMaxBytes: bytes(1024 ** 2).default(2 * 1024 ** 3),
  /** Object Store chunk size of bundles (at most the server's max_payload). */
  bundleChunkBytes: bytes(16 * 1024).default(1024 ** 2),
});

const LIMITS_DEFAULTS = limitsSchema.parse({});

const capName = (what: string) => z.string().regex(NAME_RE, `${what} names are 1-64 of A-Z a-z 0-9 _ -`);
const cap = z.number().int("a cap is a whole number").min(1, "a cap is at least 1").max(1_000_000);

/** Caps held mesh-wide as leased slots (daemon/quota/). */
const quotaSchema = z.strictObject({
  /** Per Claude account: sessions at once and sessions started per minute, across the mesh. */
  accounts: z
    .record(
      capName("account"),
      z.strictObject({ maxSessions: cap.optional(), startsPerMinute: cap.optional() }),
    )
    .default({}),
  /** Per pool: attempts (any runner) at once across the mesh. */
  pools: z.record(capName("pool"), z.strictObject({ maxSessions: cap })).default({}),
  /** Named shared resources tasks declare in `uses:`, with their capacity in units. */
  resources: z.record(capName("resource"), z.strictObject({ capacity: cap })).default({}),
});

export const daemonOptionsSchema = z.strictObject({
  nats: natsOptionsSchema,
  name: z.string().regex(NAME_RE, "names are 1-64 of A-Z a-z 0-9 _ -").optional(),
  pools: z
    .array(z.string().regex(NAME_RE, "pool names are 1-64 of A-Z a-z 0-9 _ -"))
    .min(1)
    .default(["default"]),
  labels: z.record(z.string().regex(LABEL_KEY_RE, "bad label key"), z.string().max(128)).default({}),
  slots: z.number().int().min(1).max(256).default(2),
  stateDir: z.string().min(1).optional(),
  runners: z
    .array(z.enum(["claude", "command", "noop"]))
    .min(1)
    .default(["claude", "command", "noop"]),
  lease: durationMs.default(15_000),
  presenceInterval: durationMs.default(5_000),
  shutdownGrace: durationMs.default(30_000),
  retryDelay: durationMs.default(2_000),
  /** Default timeout of a task that sets none. */
  taskTimeout: durationMs.default(3_600_000),
  /** How long a finished task's record is kept before the sweeper deletes it ("forever": never). */
  taskRetention: retention.default(7 * 86_400_000),
  /** How often the mesh's sweeper passes over the task records (default: 2 leases, at least 10 s). */
  sweepInterval: durationMs.optional(),
  grpc: z
    .strictObject({
      socket: z.string().min(1).optional(),
      tcp: z
        .strictObject({
          host: z.string().default("127.0.0.1"),
          port: z.number().int().min(0).max(65535),
          tlsCertFile: z.string().min(1),
          tlsKeyFile: z.string().min(1),
          tlsCaFile: z.string().min(1).optional(),
          tokenFile: z.string().min(1),
        })
        .optional(),
    })
    .default({}),
  http: z
    .strictObject({
      enabled: z.boolean().default(true),
      host: z.string().default("127.0.0.1"),
      port: z.number().int().min(0).max(65535).default(0),
      tokenFile: z.string().min(1).optional(),
      /** The dashboard's write scope (cancel, retry): a file holding a bearer token; unset: read-only. */
      writeTokenFile: z.string().min(1).optional(),
      /** Serve HTTPS (both or neither). */
      tlsCertFile: z.string().min(1).optional(),
      tlsKeyFile: z.string().min(1).optional(),
      /**
       * Addresses other daemons and Prometheus use to reach this one: host, host:port or URL, one
       * or a list (default: the bound address; for 0.0.0.0 or ::, the interface addresses).
       */
      advertise: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(16)]).optional(),
    })
    .default({ enabled: true, host: "127.0.0.1", port: 0 }),
  /** Repos a task may name: prefixes (a path, or a URL) matched at a path boundary; unset: any. */
  repos: z.array(z.string().min(1)).optional(),
  /** Names a task's `env` may set: NAME, PREFIX* or *; the loader/shell/git/TLS/proxy names never. */
  taskEnv: z
    .strictObject({ allow: z.array(envPattern).default([...DEFAULT_TASK_ENV_ALLOW]) })
    .default({ allow: [...DEFAULT_TASK_ENV_ALLOW] }),
  command: z
    .strictObject({
      /** Variables of the daemon's environment `command` tasks also get (beyond PATH, HOME, ...). */
      passEnv: z
        .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env names are letters, digits and _"))
        .default([]),
    })
    .default({ passEnv: [] }),
  claude: z
    .strictObject({
      command: z.array(z.string().min(1)).min(1).default(["claude"]),
      model: z.string().min(1).optional(),
      permissionMode: z.enum(PERMISSION_ORDER).default("acceptEdits"),
      /** The most permissive mode a task may ask for (default: permissionMode). */
      maxPermissionMode: z.enum(PERMISSION_ORDER).optional(),
      allowedTools: z.array(z.string().min(1)).optional(),
      /** Tools a task may pre-approve beyond allowedTools; ["*"]: any. */
      taskAllowedTools: z.array(z.string().min(1)).default([]),
      disallowedTools: z.array(z.string().min(1)).optional(),
      /** Each session's turn limit, and the most a task's `agent.maxTurns` may ask for. */
      maxTurns: z.number().int().positive().optional(),
      /** Each session's budget in USD, and the most a task's `agent.maxBudgetUsd` may ask for. */
      maxBudgetUsd: z.number().positive().optional(),
      env: z.record(z.string(), z.string()).default({}),
      /** Variables of the daemon's environment Claude Code also gets (beyond PATH, HOME, ...). */
      passEnv: z
        .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "env names are letters, digits and _"))
        .default([]),
      apiKeyFile: z.string().min(1).optional(),
      /** The variable Claude Code gets the credential in: an API key, or a subscription's OAuth token. */
      credentialEnv: z
        .enum(["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"])
        .default("ANTHROPIC_API_KEY"),
      hangTimeout: durationMs.default(300_000),
      resume: z.enum(["auto", "never"]).default("auto"),
      /** The account these credentials belong to: its usage limits are shared mesh-wide (mesh-accounts). */
      account: z
        .string()
        .regex(NAME_RE, "account names are 1-64 of A-Z a-z 0-9 _ - and start with a letter or digit")
        .default("default"),
      /** Reported utilisation (0..1) from which new sessions of the account wait for its window's reset. */
      warnUtilization: z.number().gt(0).max(1).optional(),
      /** Each daemon starts sessions again up to this long after a reset (drawn per daemon). */
      resumeJitter: z.union([z.literal(0), durationMs]).default(5_000),
      /** A limit met without a reset time (API keys) pauses the account this long. */
      limitPause: durationMs.default(60_000),
    })
    .default({
      command: ["claude"],
      permissionMode: "acceptEdits",
      taskAllowedTools: [],
      env: {},
      passEnv: [],
      credentialEnv: "ANTHROPIC_API_KEY",
      hangTimeout: 300_000,
      resume: "auto",
      account: "default",
      resumeJitter: 5_000,
      limitPause: 60_000,
    }),
  workspaces: z
    .strictObject({
      retention: ageMs.default(86_400_000),
      /** Repo caches unused this long (and holding no task branch) are removed. */
      cacheRetention: retention.default(7 * 86_400_000),
      /** git settings for the daemon's own git (it reads no global or system config). */
      gitConfig: z
        .record(z.string(), z.string().regex(/^[^\0\n\r]*$/, "must be one line"))
        .superRefine((rec, ctx) => {
          for (const key of Object.keys(rec)) {
            if (/^[A-Za-z][A-Za-z0-9-]*(\.[^\s=]+)?\.[A-Za-z][A-Za-z0-9-]*$/.test(key)) continue;
            ctx.addIssue({
              code: "custom",
              path: [key],
              message: "expected a git config key like credential.helper or http.https://host.extraHeader",
            });
          }
        })
        .default({}),
    })
    .default({ retention: 86_400_000, cacheRetention: 7 * 86_400_000, gitConfig: {} }),
  limits: limitsSchema.default(LIMITS_DEFAULTS),
  /** Mesh-wide caps (issue 15; README "Quota"): the smallest a live daemon declares applies. */
  quota: quotaSchema.default({ accounts: {}, pools: {}, resources: {} }),
  /** POSTs on task state events (see README "Webhooks"); each has a durable consumer. */
  webhooks: z.array(webhookSchema).max(32).default([]),
  /** Delegation inside plans: how deep tasks may hand work on, and how many tasks one may add. */
  plans: z
    .strictObject({
      /** The deepest a delegated task may be (top-level: 0); 0 turns delegation off. */
      maxDepth: z.number().int().min(0).max(100).default(2),
      /** Tasks one task may add to its plan. */
      maxChildren: z.number().int().min(1).max(1000).default(8),
    })
    .default({ maxDepth: 2, maxChildren: 8 }),
  logLevel: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

export type DaemonOptions = z.input<typeof daemonOptionsSchema>;
type Parsed = z.output<typeof daemonOptionsSchema>;

export interface DaemonConfig
  extends Omit<
    Parsed,
    | "stateDir"
    | "name"
    | "lease"
    | "presenceInterval"
    | "shutdownGrace"
    | "retryDelay"
    | "taskTimeout"
    | "taskRetention"
    | "sweepInterval"
  > {
  name: string;
  host: string;
  stateDir: string;
  leaseMs: number;
  heartbeatMs: number;
  presenceIntervalMs: number;
  presenceTtlMs: number;
  shutdownGraceMs: number;
  retryDelayMs: number;
  taskTimeoutMs: number;
  /** 0: keep finished tasks forever. */
  taskRetentionMs: number;
  sweepIntervalMs: number;
  socketPath: string;
  /** The ceilings for task input, checked at submit and again at claim. */
  taskPolicy: TaskPolicy;
}

export { defaultStateDir };

function issueToError(err: z.ZodError, source: string): MeshError {
  const issue = err.issues[0]!;
  let path = issue.path.map(String);
  let msg = issue.message;
  if (issue.code === "unrecognized_keys") {
    path = [...path, issue.keys[0]!];
    msg = `unknown option "${issue.keys[0]}"`;
  } else if (issue.code === "invalid_key") {
    // zod says only "Invalid key in record"; say what is wrong with the name.
    const inner = issue.issues[0]?.message;
    msg = `the name "${path.at(-1)}" is not allowed${inner ? `: ${inner}` : ""}`;
  }
  const field = path.join(".") || "(root)";
  return new MeshError("INVALID_ARGUMENT", `${source}: ${field}: ${msg}`, { field, cause: err });
}

export function compileConfig(input: unknown, source = "config"): DaemonConfig {
  const res = daemonOptionsSchema.safeParse(input ?? {});
  if (!res.success) throw issueToError(res.error, source);
  const o = res.data;
  if (o.nats.password && !o.nats.user) {
    throw new MeshError("INVALID_ARGUMENT", `${source}: nats.password needs nats.user`, {
      field: "nats.user",
    });
  }
  if (o.nats.credsFile && o.nats.nkeySeedFile) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `${source}: nats.credsFile and nats.nkeySeedFile: give one of them`,
      {
        field: "nats.credsFile",
      },
    );
  }
  if ((o.nats.tlsCertFile === undefined) !== (o.nats.tlsKeyFile === undefined)) {
    throw new MeshError("INVALID_ARGUMENT", `${source}: nats.tlsCertFile and nats.tlsKeyFile go together`, {
      field: "nats.tlsKeyFile",
    });
  }
  if ((o.http.tlsCertFile === undefined) !== (o.http.tlsKeyFile === undefined)) {
    throw new MeshError("INVALID_ARGUMENT", `${source}: http.tlsCertFile and http.tlsKeyFile go together`, {
      field: "http.tlsKeyFile",
    });
  }
  if (o.lease < 1000) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `${source}: lease: must be at least 1s (JetStream ack wait floor)`,
      {
        field: "lease",
      },
    );
  }
  const maxMode = o.claude.maxPermissionMode ?? o.claude.permissionMode;
  if (PERMISSION_ORDER.indexOf(o.claude.permissionMode) > PERMISSION_ORDER.indexOf(maxMode)) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `${source}: claude.maxPermissionMode: "${maxMode}" is below claude.permissionMode "${o.claude.permissionMode}"; raise it or lower permissionMode`,
      { field: "claude.maxPermissionMode" },
    );
  }
  const stateDir = resolve(o.stateDir ?? defaultStateDir());
  const host = hostname();
  const presenceTtlMs = o.presenceInterval * 3;
  const {
    lease,
    presenceInterval,
    shutdownGrace,
    retryDelay,
    taskTimeout,
    taskRetention,
    sweepInterval,
    ...rest
  } = o;
  return {
    ...rest,
    name: o.name ?? host.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 48),
    host,
    stateDir,
    leaseMs: lease,
    heartbeatMs: Math.max(200, Math.floor(lease / 3)),
    presenceIntervalMs: presenceInterval,
    presenceTtlMs,
    shutdownGraceMs: shutdownGrace,
    retryDelayMs: retryDelay,
    taskTimeoutMs: taskTimeout,
    taskRetentionMs: taskRetention,
    sweepIntervalMs: sweepInterval ?? Math.max(lease * 2, 10_000),
    socketPath: o.grpc.socket ? resolve(o.grpc.socket) : join(stateDir, "meshd.sock"),
    taskPolicy: {
      maxPermissionMode: maxMode,
      operatorTools: o.claude.allowedTools ?? [],
      taskTools: o.claude.taskAllowedTools,
      repos: o.repos,
      envAllow: o.taskEnv.allow,
      ...(o.claude.maxTurns !== undefined ? { maxTurns: o.claude.maxTurns } : {}),
      ...(o.claude.maxBudgetUsd !== undefined ? { maxBudgetUsd: o.claude.maxBudgetUsd } : {}),
    },
  };
}

/** Read a YAML/JSON config file into raw options (validated later by compileConfig). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new MeshError("INVALID_ARGUMENT", `config file ${path}: cannot read (${(err as Error).message})`, {
      field: "config",
      cause: err,
    });
  }
  let value: unknown;
  try {
    value = yaml().parse(text);
  } catch (err) {
    throw new MeshError(
      "INVALID_ARGUMENT",
      `config file ${path}: not valid YAML: ${(err as Error).message.split("\n")[0]}`,
      {
        field: "config",
        cause: err,
      },
    );
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new MeshError("INVALID_ARGUMENT", `config file ${path}: must be a mapping of options`, {
      field: "config",
    });
  }
  return value as Record<string, unknown>;
}
