/**
 * The transfer benchmark's hands on a host: `node transfer-agent.js <op> <json>`, run inside a
 * network-namespace host with MESH_STATE_DIR set to a state dir that `mesh join` filled. It
 * connects to the joined hub exactly as meshd does (TLS, this machine's nkey, the daemon's
 * config defaults), opens the bundle store as meshd does, and calls the daemon's own transfer
 * functions. Prints one JSON line; the timings exclude its own start-up and the connect.
 *
 * - ship {path}: shipRepo (what `mesh submit` of `repo: .` has the local daemon do)
 * - import {gitDir, repoId, commit}: ensureCommit into a new bare repository (a worker's import)
 * - forget {repoId, commit}: removes that commit's bundle and index entry (a fresh first sync)
 * - sizes {repoId, commits}: the stored bundle size of each commit (0: none)
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { execa } from "execa";
import {
  BUNDLE_INDEX_BUCKET,
  BundleStore,
  compileConfig,
  connectNats,
  ensureCommit,
  Git,
  indexKey,
  joinedNatsOptions,
  readJoinedHub,
  shipRepo,
} from "../daemon/index.js";

const [op, arg] = process.argv.slice(2);
const input = JSON.parse(arg ?? "{}") as Record<string, unknown>;
const stateDir = process.env.MESH_STATE_DIR;
if (!stateDir) throw new Error("transfer-agent: MESH_STATE_DIR is not set");
const joined = readJoinedHub(stateDir);
if (!joined) throw new Error(`transfer-agent: ${stateDir} has not joined a hub (mesh join)`);
const cfg = compileConfig({
  stateDir,
  logLevel: "silent",
  http: { enabled: false },
  nats: joinedNatsOptions(joined, {}),
});
const nc = await connectNats(cfg.nats, `bench-transfer-${op}`);
const js = jetstream(nc);
// As daemon.ts opens it (same options: the buckets exist with this configuration).
const store = await BundleStore.open(js, nc.info?.max_payload ?? 1024 * 1024, {
  replicas: cfg.nats.replicas,
  maxBytes: cfg.limits.bundlesMaxBytes,
  maxBundleBytes: cfg.limits.bundleMaxBytes,
  chunkBytes: cfg.limits.bundleChunkBytes,
  ttlMs: cfg.taskRetentionMs * 2,
});
const git = new Git({ config: cfg.workspaces.gitConfig });
const tmpRoot = join(stateDir, "bench-tmp");
await mkdir(tmpRoot, { recursive: true, mode: 0o700 });
const str = (k: string): string => {
  const v = input[k];
  if (typeof v !== "string") throw new Error(`transfer-agent ${op}: ${k} is missing`);
  return v;
};

let out: Record<string, unknown>;
if (op === "ship") {
  const t = performance.now();
  const r = await shipRepo({ git, store, path: str("path"), dirty: false, tmpRoot });
  out = {
    ms: performance.now() - t,
    bytes: r.bytes,
    uploaded: r.uploaded,
    repoId: r.repoId,
    commit: r.commit,
    requires: r.requires,
  };
} else if (op === "import") {
  await execa("git", ["init", "--quiet", "--bare", str("gitDir")]);
  const t = performance.now();
  const r = await ensureCommit({
    git,
    store,
    repo: { gitDir: str("gitDir") },
    repoId: str("repoId"),
    commit: str("commit"),
    tmpRoot,
    refPrefix: "refs/mesh/have/",
  });
  out = { ms: performance.now() - t, bytes: r.bytes, bundles: r.imported.length };
} else if (op === "forget") {
  const e = await store.entry(str("repoId"), str("commit"));
  const kv = await new Kvm(js).open(BUNDLE_INDEX_BUCKET);
  await kv.purge(indexKey(str("repoId"), str("commit")));
  if (e) await store.objectStore.delete(e.name);
  out = { forgot: e?.name ?? null };
} else if (op === "sizes") {
  const sizes: Record<string, number> = {};
  for (const c of input.commits as string[]) sizes[c] = (await store.entry(str("repoId"), c))?.size ?? 0;
  out = { sizes };
} else {
  throw new Error(`transfer-agent: unknown op "${op}" (ship, import, forget, sizes)`);
}
await nc.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
