/**
 * Property-based tests of spec parsing and validation (fast-check): random and mutated task
 * documents, as text and as objects, are either accepted or refused with a MeshError
 * INVALID_ARGUMENT naming a field, never anything else; accepted specs survive the trip through
 * a record; and against a real daemon, a refused batch writes nothing to NATS while the daemon
 * keeps serving.
 */
import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify as toYaml } from "yaml";
import { compileConfig, type Daemon, startDaemon } from "../daemon/index.js";
import { EVENTS_STREAM, TASKS_BUCKET_STREAM, TASKS_STREAM } from "../daemon/nats/names.js";
import { checkTaskPolicy } from "../daemon/tasks/policy.js";
import {
  MAX_SPEC_BYTES,
  parseTaskDocument,
  parseTaskSpecs,
  type TaskSpec,
  validateTaskBatch,
  validateTaskSpec,
} from "../daemon/tasks/spec.js";
import { MeshServiceClient } from "../proto/index.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { FAST } from "./support/mesh.js";

/** Runs `fn`; a throw must be INVALID_ARGUMENT with a field. Returns what was accepted, or undefined. */
function acceptOrRefuse<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    const e = err as { name?: string; code?: string; field?: unknown; message?: string };
    if (e?.name !== "MeshError" || e.code !== "INVALID_ARGUMENT" || typeof e.field !== "string" || !e.field) {
      throw new Error(`not a field-naming INVALID_ARGUMENT: ${String(err)}`, { cause: err });
    }
    return undefined;
  }
}

// ---- generators ------------------------------------------------------------------------------

const word = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,12}$/);
const text = fc.string({ minLength: 1, maxLength: 40, unit: "grapheme" });
const optionLike = fc.string({ maxLength: 12 }).map((s) => `-${s}`);
const envName = fc.oneof(
  word
    .map((w) => `TASK_${w.replace(/-/g, "_")}`)
    .filter((n) => !/(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)/i.test(n)), // secret-looking: refused
  fc.constantFrom("CI", "TZ", "LANG", "NODE_ENV", "DEBUG"),
);

const agent = fc.record(
  {
    model: fc.constantFrom("claude-sonnet-4-6", "claude-opus-4-1", "us.anthropic.claude:0"),
    maxTurns: fc.integer({ min: 1, max: 50 }),
    maxBudgetUsd: fc.double({ min: 0.01, max: 20, noNaN: true }),
    permissionMode: fc.constantFrom("plan", "dontAsk", "default", "acceptEdits"),
    disallowedTools: fc.array(fc.constantFrom("WebFetch", "Bash", "Bash(rm:*)"), { maxLength: 3 }),
    appendSystemPrompt: text,
    resume: fc.constantFrom("auto", "never"),
  },
  { requiredKeys: [] },
);

/** Specs the default ceilings accept. */
const validSpec = fc
  .record(
    {
      id: word,
      title: fc.stringMatching(/^[A-Za-z0-9 .,:!?-]{1,40}$/),
      prompt: text,
      repo: fc.constantFrom(
        "/srv/repos/app",
        "https://example.com/acme/app.git",
        "git@example.com:acme/app.git",
      ),
      ref: fc.constantFrom("main", "release/1.2", "v1.0.0", "HEAD~1"),
      push: fc.boolean(),
      pool: word,
      labels: fc.dictionary(word, word, { maxKeys: 3 }),
      timeout: fc.oneof(
        fc.integer({ min: 1, max: 86_400 }),
        fc.constantFrom("30s", "10m", "2h", "1h30m", "7d"),
      ),
      maxAttempts: fc.integer({ min: 1, max: 100 }),
      env: fc.dictionary(envName, fc.string({ maxLength: 20 }), { maxKeys: 4 }),
      agent,
    },
    { requiredKeys: ["prompt"] },
  )
  .chain((s) =>
    fc.oneof(
      fc.constant({ ...s, runner: "noop" }),
      fc.constant({ ...s, runner: "claude" }),
      fc
        .array(fc.string({ maxLength: 10 }), { maxLength: 4 })
        .map((args) => ({ ...s, runner: "command", command: ["node", ...args] })),
    ),
  );

type Doc = Record<string, unknown>;

/** One mutation of a spec object: a field dropped, retyped, made option-like or unsafe, or added. */
const mutation: fc.Arbitrary<(d: Doc) => Doc> = fc.oneof(
  fc
    .constantFrom(...["id", "prompt", "runner", "command", "agent", "env", "timeout"])
    .map((k) => (d: Doc) => {
      const { [k]: _drop, ...rest } = d;
      return rest;
    }),
  fc
    .tuple(
      fc.constantFrom(
        "id",
        "title",
        "prompt",
        "repo",
        "ref",
        "pool",
        "labels",
        "timeout",
        "maxAttempts",
        "runner",
        "command",
        "agent",
        "env",
        "push",
      ),
      fc.anything({ maxDepth: 2 }),
    )
    .map(([k, v]) => (d: Doc) => ({ ...d, [k]: v })),
  fc
    .tuple(
      fc.constantFrom(
        "model",
        "permissionMode",
        "allowedTools",
        "disallowedTools",
        "appendSystemPrompt",
        "maxTurns",
      ),
      fc.anything({ maxDepth: 1 }),
    )
    .map(([k, v]) => (d: Doc) => ({ ...d, agent: { ...((d.agent as Doc) ?? {}), [k]: v } })),
  fc.tuple(fc.constantFrom("repo", "ref", "pool", "id"), optionLike).map(([k, v]) => (d: Doc) => ({
    ...d,
    [k]: v,
  })),
  optionLike.map((v) => (d: Doc) => ({
    ...d,
    agent: { ...((d.agent as Doc) ?? {}), model: v, allowedTools: [v] },
  })),
  fc
    .constantFrom(
      "PATH",
      "LD_PRELOAD",
      "GIT_SSH_COMMAND",
      "BASH_ENV",
      "HTTPS_PROXY",
      "NODE_OPTIONS",
      "PYTHONPATH",
      "bad name",
      "",
    )
    .map((n) => (d: Doc) => ({ ...d, env: { ...((d.env as Doc) ?? {}), [n]: "x" } })),
  fc.constantFrom("25d", 9_999_999, -1, 0, "0s", "1e9s").map((t) => (d: Doc) => ({ ...d, timeout: t })),
  word.map((k) => (d: Doc) => ({ ...d, [`x${k}`]: 1 })),
);

const mutatedSpec = fc
  .tuple(validSpec, fc.array(mutation, { minLength: 1, maxLength: 3 }))
  .map(([s, ms]) => ms.reduce<Doc>((d, m) => m(d), s as Doc));

/** A document's text, as YAML or JSON, sometimes cut short or with a character put in. */
const documentText = (value: fc.Arbitrary<unknown>) =>
  fc
    .tuple(
      value,
      fc.boolean(),
      fc.option(fc.tuple(fc.nat(), fc.string({ maxLength: 3 })), { nil: undefined }),
    )
    .map(([v, json, cut]) => {
      const t = json ? JSON.stringify(v) : toYaml(v);
      if (!cut) return t;
      const at = cut[0] % (t.length + 1);
      return t.slice(0, at) + cut[1] + t.slice(at + (cut[1] ? 0 : 1));
    });

/** What a record stores, turned back into a document (the timeout stored in ms). */
function asDocument(s: TaskSpec): Doc {
  const { timeout, ...rest } = s;
  return { ...rest, ...(timeout !== undefined ? { timeout: `${timeout}ms` } : {}) };
}

// ---- pure properties -------------------------------------------------------------------------

describe("spec parsing and validation, by property", () => {
  it("any text is accepted or refused with a field, never a crash", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.string({ unit: "grapheme" })), (t) => {
        acceptOrRefuse(() => parseTaskSpecs(t, "input"));
      }),
      { numRuns: 500 },
    );
  });

  it("any value is accepted or refused with a field", () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.array(fc.anything(), { maxLength: 3 })), (v) => {
        acceptOrRefuse(() => validateTaskBatch(Array.isArray(v) ? v : [v]));
      }),
      { numRuns: 500 },
    );
  });

  it("mutated documents, as objects and as YAML/JSON text, are accepted or refused with a field", () => {
    fc.assert(
      fc.property(
        mutatedSpec,
        documentText(fc.array(mutatedSpec, { minLength: 1, maxLength: 3 })),
        (obj, t) => {
          acceptOrRefuse(() => validateTaskSpec(obj));
          acceptOrRefuse(() => parseTaskSpecs(t, "tasks.yaml"));
        },
      ),
      { numRuns: 400 },
    );
  });

  it("valid specs are accepted, within the ceilings, and round-trip through a record", () => {
    const ceilings = compileConfig({}).taskPolicy;
    fc.assert(
      fc.property(validSpec, fc.boolean(), (doc, asJson) => {
        const s = validateTaskSpec(doc);
        checkTaskPolicy(s, ceilings);
        const stored = JSON.parse(JSON.stringify(s)) as TaskSpec;
        expect(stored).toEqual(s);
        expect(Buffer.byteLength(JSON.stringify(s))).toBeLessThanOrEqual(MAX_SPEC_BYTES);
        expect(validateTaskSpec(asDocument(stored))).toEqual(s);
        const named = { ...doc, id: s.id };
        const text = asJson ? JSON.stringify(named) : toYaml(named);
        const [again] = validateTaskBatch(parseTaskDocument(text, "t.yaml"));
        expect(again).toEqual(s);
      }),
      { numRuns: 300 },
    );
  });
});

// ---- against a real daemon ---------------------------------------------------------------------

let nats: NatsServer;
let daemon: Daemon;
let client: MeshServiceClient;
let nc: NatsConnection;

beforeAll(async () => {
  nats = await NatsServer.start();
  const config = compileConfig({
    ...FAST,
    logLevel: process.env.MESH_TEST_LOG ?? "silent",
    http: { enabled: false },
    nats: { servers: [nats.url] },
    stateDir: await makeTempDir("meshd-prop-"),
    pools: ["prop"],
    runners: ["noop"],
  });
  daemon = await startDaemon(config);
  client = new MeshServiceClient(`unix:${config.socketPath}`, credentials.createInsecure());
  nc = await connect({ servers: nats.url });
}, 60_000);

afterAll(async () => {
  client?.close();
  await nc?.close();
  await daemon?.stop(0);
  await nats?.cleanup();
  await removeTempDirs();
});

function submit(document: string): Promise<ServiceError | undefined> {
  return new Promise((resolve) =>
    client.submitTasks(
      { document, source: "prop.yaml" },
      new Metadata(),
      { deadline: Date.now() + 20_000 },
      (e) => resolve(e ?? undefined),
    ),
  );
}

/** The last sequence of every stream a submit writes to: any write moves one. */
async function streamSeqs(): Promise<number[]> {
  const jsm = await jetstreamManager(nc);
  const names = [TASKS_BUCKET_STREAM, TASKS_STREAM, EVENTS_STREAM];
  return Promise.all(names.map(async (n) => (await jsm.streams.info(n)).state.last_seq));
}

/** A batch of valid tasks with one refused task somewhere in it (refused by syntax or by the ceilings). */
const refusedBatch = fc
  .tuple(
    fc.array(validSpec, { minLength: 1, maxLength: 4 }),
    fc.oneof(
      mutatedSpec
        .map((d) => ({ ...d, id: "prop-bad" }))
        .filter((d) => acceptOrRefuse(() => validateTaskSpec(d)) === undefined),
      validSpec.map((d) => ({
        ...d,
        agent: { ...((d.agent as Doc) ?? {}), permissionMode: "bypassPermissions" },
      })),
      validSpec.map((d) => ({ ...d, env: { EXTRA_NOT_ALLOWED: "1" } })),
      validSpec.map((d) => ({ ...d, agent: { ...((d.agent as Doc) ?? {}), allowedTools: ["Bash"] } })),
    ),
    fc.nat(),
  )
  .map(([good, bad, at]) => {
    const tasks: Doc[] = good.map((g, i) => ({ ...g, id: `prop-${i}-${String(g.id ?? "x")}` }));
    tasks.splice(at % (tasks.length + 1), 0, { ...bad, id: (bad as Doc).id ?? "prop-bad" });
    return tasks;
  });

describe("a refused batch against a real daemon", () => {
  it("changes nothing in NATS, names the field, and the daemon keeps serving", async () => {
    await fc.assert(
      fc.asyncProperty(refusedBatch, fc.boolean(), async (tasks, asJson) => {
        const before = await streamSeqs();
        const err = await submit(asJson ? JSON.stringify({ tasks }) : toYaml({ tasks }));
        expect(err?.code, err?.details).toBe(status.INVALID_ARGUMENT);
        expect(String(err?.metadata.get("mesh-error-field")[0] ?? "")).toMatch(/^tasks\[\d+\]/);
        expect(await streamSeqs()).toEqual(before);
      }),
      { numRuns: 30 },
    );
    // Still serving: a good task runs to the end.
    expect(await submit("{id: prop-after, prompt: still here, runner: noop, pool: prop}")).toBeUndefined();
    await waitFor(async () => (await daemon.api.getTask("prop-after")).record.state === "succeeded", {
      name: "prop-after succeeded",
      timeoutMs: 20_000,
    });
  }, 120_000);
});
