// biome-ignore-all lint/suspicious/noExplicitAny: the CLI's parsed JSON output and the index entries are asserted field by field
/**
 * Code goes out, results come home (issue 13 §1, §2), end to end with real meshd processes on a
 * real nats-server and real git: a "laptop" daemon that serves no pool of the tasks (so it only
 * submits and fetches) and worker daemons with their own state dirs. The laptop's repository is
 * in a folder no worker is given: tasks name it `repo: .`, the CLI has the laptop daemon ship it
 * as bundles, the worker imports them, and `mesh fetch` brings the task branch back.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { credentials, Metadata } from "@grpc/grpc-js";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBundleStream } from "../daemon/transfer/git-bundle.js";
import { type BundleEntry, BundleStore } from "../daemon/transfer/index.js";
import { cacheDirFor, Git, parseRepo } from "../daemon/workspace/index.js";
import { MeshServiceClient, type ShipRepoResponse } from "../proto/index.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { spawnMeshd } from "./support/mesh.js";
import { type Meshd, startMeshdProcess, stopMeshdProcess } from "./support/meshd-proc.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(ROOT, "dist", "cli", "main.js");
const LONG = 120_000;
const ID = ["-c", "user.name=Laptop User", "-c", "user.email=laptop@example.com"];

let nats: NatsServer;
let nc: NatsConnection;
let laptop: Meshd;
let laptopConfig: string;
let box1: Meshd | undefined;
const daemons: Meshd[] = [];
let work: string;
let repo: string;

async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await execa("git", [...ID, ...args], { cwd, env: { LC_ALL: "C" } });
  return r.stdout.trim();
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  json(): any;
}

async function mesh(args: string[], o: { cwd?: string; input?: string; socket?: string } = {}): Promise<Run> {
  const r = await execa(process.execPath, [CLI, ...args], {
    reject: false,
    cwd: o.cwd ?? repo,
    ...(o.input !== undefined ? { input: o.input } : { stdin: "ignore" }),
    env: { NO_COLOR: "1", MESH_DAEMON: o.socket ?? laptop.socket, MESH_TOKEN: "", MESH_TLS_CA: "" },
    timeout: LONG,
  });
  const stdout = String(r.stdout);
  return { code: r.exitCode ?? -1, stdout, stderr: String(r.stderr), json: () => JSON.parse(stdout) };
}

function expectExit(r: Run, code: number): void {
  if (r.code !== code)
    throw new Error(`exit ${r.code}, expected ${code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

/** A task as JSON (a spec document is YAML, and JSON is YAML). */
const spec = (id: string, js: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    id,
    prompt: "p",
    repo: ".",
    runner: "command",
    command: ["node", "-e", js],
    maxAttempts: 1,
    ...extra,
  });

const uid = (p: string) => `${p}-${randomBytes(3).toString("hex")}`;

async function task(id: string, socket = laptop.socket): Promise<any> {
  const r = await mesh(["task", id, "--json"], { socket, cwd: work });
  expectExit(r, 0);
  return r.json().task;
}

async function waitState(id: string, states: string[], socket?: string): Promise<any> {
  return waitFor(
    async () => {
      const t = await task(id, socket);
      return states.includes(t.state) ? t : undefined;
    },
    { name: `task ${id} in ${states.join("|")}`, timeoutMs: 60_000, intervalMs: 200 },
  );
}

async function startWorker(name: string): Promise<Meshd> {
  const d = await startMeshdProcess({ natsUrl: nats.url, name, prefix: "xfer", logLevel: "info" });
  daemons.push(d);
  return d;
}

/** Everything `git` shows of the user's repo that submit must not change. */
async function repoSnapshot(dir: string): Promise<Record<string, string>> {
  // The index bytes first, and a status that does not refresh the index itself.
  const index = createHash("sha256")
    .update(await readFile(join(dir, ".git", "index")))
    .digest("hex");
  return {
    index,
    status: await git(dir, "--no-optional-locks", "status", "--porcelain=v2", "--untracked-files=all"),
    stash: await git(dir, "stash", "list"),
    refs: await git(dir, "for-each-ref", "--format=%(refname) %(objectname)"),
    head: await git(dir, "rev-parse", "HEAD"),
  };
}

async function objects(): Promise<Array<{ name: string; size: number }>> {
  const os = await new Objm(jetstream(nc)).open("mesh-bundles");
  return (await os.list()).map((o) => ({ name: o.name, size: o.size }));
}

async function indexEntry(repoId: string, commit: string): Promise<any> {
  const kv = await new Kvm(jetstream(nc)).open("mesh-bundle-index");
  return (await kv.get(`${repoId}.${commit}`))?.json();
}

function grpc(socket: string): MeshServiceClient {
  return new MeshServiceClient(`unix:${socket}`, credentials.createInsecure());
}

function shipRepo(socket: string, path: string): Promise<ShipRepoResponse> {
  const c = grpc(socket);
  return new Promise((res, rej) =>
    c.shipRepo(
      { path, ref: "", dirty: false },
      new Metadata(),
      { deadline: Date.now() + 60_000 },
      (err, r) => {
        c.close();
        return err ? rej(err) : res(r);
      },
    ),
  );
}

const workerCache = (d: Meshd, repoId: string) =>
  cacheDirFor(join(d.stateDir, "repos"), parseRepo(`mesh://${repoId}`));

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  work = await makeTempDir("xfer-work-");
  repo = join(work, "laptop-repo");
  await execa("git", ["init", "--quiet", "-b", "main", repo]);
  await writeFile(join(repo, "README.md"), "hello\n");
  await writeFile(join(repo, ".gitignore"), "ignored.txt\n");
  await git(repo, "add", ".");
  await git(repo, "commit", "--quiet", "-m", "first");
  await writeFile(join(repo, "lib.txt"), "v1\n");
  await git(repo, "add", ".");
  await git(repo, "commit", "--quiet", "-m", "second");
  laptopConfig = join(work, "laptop.yaml");
  await writeFile(laptopConfig, "limits:\n  bundleMaxBytes: 64KiB\n");
  // The laptop serves a pool no task uses: it submits, ships and fetches, and runs nothing.
  laptop = await startMeshdProcess({
    natsUrl: nats.url,
    name: "laptop",
    prefix: "xfer",
    extra: ["--pools", "laptop-only", "--config", laptopConfig],
  });
  daemons.push(laptop);
}, LONG);

afterAll(async () => {
  await Promise.allSettled(daemons.map(stopMeshdProcess));
  await nc?.close();
  await nats?.cleanup();
  await removeTempDirs();
}, LONG);

describe("git bundles through the mesh", () => {
  let first: { id: string; repoId: string; head: string; result: string };

  it(
    "ships repo: ., runs on a worker that never sees the laptop's folder, and fetch gets the same commit",
    async () => {
      const id = uid("ship");
      const head = await git(repo, "rev-parse", "HEAD");
      const sub = await mesh(["submit", "-", "--json"], {
        input: spec(id, "require('fs').writeFileSync('result.txt', 'done\\n')"),
      });
      expectExit(sub, 0);
      const queued = await task(id);
      const record = queued.record;
      expect(record.spec.repo).toMatch(/^mesh:\/\/[0-9a-f]{40}$/);
      expect(record.spec.ref).toBe(head);
      expect(JSON.stringify(record)).not.toContain(repo);
      const repoId = String(record.spec.repo).slice("mesh://".length);
      expect(repoId).toBe(await git(repo, "rev-list", "--max-parents=0", "HEAD"));

      // The laptop's folder is gone while the worker runs the task: only the bundles can serve it.
      const away = `${repo}-away`;
      await rename(repo, away);
      try {
        box1 = await startWorker("box1");
        const done = await waitState(id, ["succeeded", "failed", "dead"], laptop.socket);
        expect(done.state, JSON.stringify(done.attempts)).toBe("succeeded");
      } finally {
        await rename(away, repo);
      }
      const done = await task(id);
      const bundle = done.result.bundle;
      expect(bundle).toMatchObject({ repoId, base: head, head: done.result.headCommit });
      expect(bundle.name).toMatch(/^[0-9a-f]{64}$/);
      const workerHead = await git(workerCache(box1, repoId), "rev-parse", `refs/heads/mesh/${id}`);
      expect(workerHead).toBe(done.result.headCommit);

      const f = await mesh(["fetch", id, "--json"]);
      expectExit(f, 0);
      expect(f.json().results).toEqual([
        expect.objectContaining({ id, outcome: "created", head: workerHead }),
      ]);
      expect(await git(repo, "rev-parse", `refs/heads/mesh/${id}`)).toBe(workerHead);
      expect(await git(repo, "show", `mesh/${id}:result.txt`)).toBe("done");
      // The user's checkout stays on its branch; fetching again changes nothing.
      expect(await git(repo, "rev-parse", "HEAD")).toBe(head);
      const again = await mesh(["fetch", id, "--json"]);
      expect(again.json().results[0].outcome).toBe("unchanged");

      const d = await mesh(["diff", id, "--json"]);
      expectExit(d, 0);
      expect(d.json()).toMatchObject({ id, base: head, head: workerHead });
      expect(d.json().diff).toContain("+done");
      first = { id, repoId, head, result: workerHead };
    },
    LONG,
  );

  it(
    "refuses to move a diverged mesh/<id> branch unless --force",
    async () => {
      const { id, head, result } = first;
      const tree = await git(repo, "rev-parse", `${head}^{tree}`);
      const mine = await git(repo, "commit-tree", tree, "-p", head, "-m", "my own work on the task branch");
      await git(repo, "update-ref", `refs/heads/mesh/${id}`, mine);
      const refused = await mesh(["fetch", id, "--json"]);
      expectExit(refused, 5);
      expect(refused.json().results[0]).toMatchObject({ outcome: "diverged", previous: mine });
      expect(await git(repo, "rev-parse", `refs/heads/mesh/${id}`)).toBe(mine);
      const forced = await mesh(["fetch", id, "--force", "--json"]);
      expectExit(forced, 0);
      expect(forced.json().results[0]).toMatchObject({ outcome: "updated", previous: mine, head: result });
      expect(await git(repo, "rev-parse", `refs/heads/mesh/${id}`)).toBe(result);
    },
    LONG,
  );

  it(
    "a second task on the same repo ships only the new commits",
    async () => {
      const before = await objects();
      await writeFile(join(repo, "lib.txt"), "v2\n");
      await git(repo, "commit", "--quiet", "-am", "third");
      const head = await git(repo, "rev-parse", "HEAD");
      const id = uid("incr");
      // --wait --fetch brings the result home as it finishes.
      const sub = await mesh(["submit", "-", "--wait", "--fetch", "--json"], {
        input: spec(id, "require('fs').writeFileSync('incr.txt', 'x\\n')"),
      });
      expectExit(sub, 0);
      const row = sub.json().tasks[0];
      expect(row).toMatchObject({
        id,
        state: "succeeded",
        fetch: { outcome: "created", branch: `mesh/${id}` },
      });
      expect(await git(repo, "rev-parse", `mesh/${id}`)).toBe(row.fetch.head);
      expect(await git(repo, "rev-parse", `mesh/${id}^`)).toBe(head);
      const after = await objects();
      const added = after.filter((o) => !before.some((b) => b.name === o.name));
      const entry = await indexEntry(first.repoId, head);
      expect(entry).toMatchObject({ kind: "source", tip: head });
      // It builds on the first task's commit (what the mesh had) and holds one commit's objects.
      expect(entry.requires).toEqual([first.head]);
      const firstSource = await indexEntry(first.repoId, first.head);
      expect(added.map((o) => o.name)).toContain(entry.name);
      expect(entry.size).toBeLessThan(firstSource.size);
      // The worker imported only the new bundle on top of what it had.
      const cache = workerCache(box1 as Meshd, first.repoId);
      expect(await git(cache, "rev-parse", `refs/mesh/have/${head}`)).toBe(head);
      // Shipping the same commit again stores nothing new.
      const same = await objects();
      const id2 = uid("same");
      expectExit(await mesh(["submit", "-", "--json"], { input: spec(id2, "process.exit(0)") }), 0);
      expect((await objects()).length).toBe(same.length);
      await waitState(id2, ["succeeded"]);
    },
    LONG,
  );

  it(
    "a dirty tree is said and not shipped without --dirty; --dirty ships it and leaves the repo as it was",
    async () => {
      await writeFile(join(repo, "lib.txt"), "uncommitted\n");
      await writeFile(join(repo, "new.txt"), "untracked\n");
      await writeFile(join(repo, "ignored.txt"), "ignored\n");
      await git(repo, "add", "new.txt"); // staged in the user's index: must stay exactly so
      await writeFile(join(repo, "new.txt"), "untracked, changed after staging\n");
      const head = await git(repo, "rev-parse", "HEAD");
      const snap = await repoSnapshot(repo);
      const check =
        "const fs=require('fs');process.exit(fs.readFileSync('lib.txt','utf8')==='uncommitted\\n'&&fs.existsSync('new.txt')&&!fs.existsSync('ignored.txt')?0:9)";

      const plain = uid("clean");
      const r1 = await mesh(["submit", "-", "--json"], { input: spec(plain, check) });
      expectExit(r1, 0);
      expect(r1.stderr).toContain("--dirty");
      expect(JSON.parse(r1.stderr.trim().split("\n")[0] as string).warning.code).toBe("DIRTY_TREE");
      expect((await task(plain)).record.spec.ref).toBe(head);
      expect(await repoSnapshot(repo)).toEqual(snap);

      const dirty = uid("dirty");
      const r2 = await mesh(["submit", "-", "--dirty", "--wait", "--json"], { input: spec(dirty, check) });
      expectExit(r2, 0);
      expect(r2.stderr).not.toContain("DIRTY_TREE");
      const t = await task(dirty);
      expect(t.state).toBe("succeeded");
      const shipped = t.record.spec.ref as string;
      expect(shipped).not.toBe(head);
      expect(await repoSnapshot(repo)).toEqual(snap);
      // The same changes again make the same commit: the same spec, an idempotent submit.
      const r3 = await mesh(["submit", "-", "--dirty", "--json"], { input: spec(dirty, check) });
      expectExit(r3, 0);
      expect(r3.json().tasks[0]).toMatchObject({ id: dirty, created: false });
      // The clean-tree task ran on HEAD, which lacks the changes.
      expect((await waitState(plain, ["succeeded", "failed", "dead"])).state).toBe("dead");
      // fetch brings the shipped commit along (the user's repo never had it).
      expectExit(await mesh(["fetch", dirty]), 0);
      expect(await git(repo, "rev-parse", `mesh/${dirty}`)).toBe(shipped);
      expect(await git(repo, "rev-parse", `${shipped}^`)).toBe(head);
      await git(repo, "checkout", "--quiet", "--", "lib.txt");
      await git(repo, "rm", "--quiet", "--cached", "-f", "new.txt");
      await execa("rm", ["-f", join(repo, "new.txt"), join(repo, "ignored.txt")]);
    },
    LONG,
  );

  it(
    "refuses a bundle over limits.bundleMaxBytes with exit 2, naming the limit, submitting nothing",
    async () => {
      const big = join(work, "big-repo");
      await execa("git", ["init", "--quiet", "-b", "main", big]);
      await writeFile(join(big, "blob.bin"), randomBytes(200 * 1024));
      await git(big, "add", ".");
      await git(big, "commit", "--quiet", "-m", "big");
      const before = await objects();
      const id = uid("big");
      const r = await mesh(["submit", "-", "--json"], { cwd: big, input: spec(id, "process.exit(0)") });
      expectExit(r, 2);
      const err = JSON.parse(r.stderr.trim().split("\n").at(-1) as string).error;
      expect(err.code).toBe("RESOURCE_EXHAUSTED");
      expect(err.message).toContain("limits.bundleMaxBytes");
      expect(err.message).toContain("nothing was submitted");
      expect((await mesh(["task", id])).code).toBe(4);
      expect(await objects()).toEqual(before);
    },
    LONG,
  );

  it("refuses a bundle the store has no room for (limits.bundlesMaxBytes) before uploading it", async () => {
    const store = await BundleStore.open(jetstream(nc), nc.info?.max_payload ?? 1024 * 1024, {
      replicas: 1,
      maxBytes: 1024 * 1024,
      maxBundleBytes: 8 * 1024 * 1024,
      ttlMs: 0,
      chunkBytes: 1024 * 1024,
    });
    const before = await objects();
    await expect(store.admit(2 * 1024 * 1024, "a bundle", "repo")).rejects.toMatchObject({
      code: "RESOURCE_EXHAUSTED",
      field: "repo",
      message: expect.stringContaining("limits.bundlesMaxBytes"),
    });
    await expect(store.admit(16 * 1024, "a bundle", "repo")).resolves.toBeUndefined();
    expect(await objects()).toEqual(before);
  });

  it("stops a streamed bundle at limits.bundleMaxBytes while it streams, keeping no chunk of it", async () => {
    const store = await BundleStore.open(jetstream(nc), nc.info?.max_payload ?? 1024 * 1024, {
      replicas: 1,
      maxBytes: 64 * 1024 * 1024,
      maxBundleBytes: 1024 * 1024,
      ttlMs: 0,
      chunkBytes: 256 * 1024,
    });
    const jsm = await jetstream(nc).jetstreamManager();
    const messages = async () => (await jsm.streams.info("OBJ_mesh-bundles")).state.messages;
    const before = { objects: await objects(), messages: await messages() };
    let written = 0;
    let stopped = false;
    const entry: Omit<BundleEntry, "size"> = {
      v: 1,
      name: "overflow-test",
      repoId: "r".repeat(40),
      tip: "a".repeat(40),
      requires: [],
      kind: "source",
      at: new Date().toISOString(),
    };
    await expect(
      store.putStream(entry, "a streamed bundle", async (sink, signal) => {
        // An endless producer: only the limit ends it.
        while (!signal.aborted) {
          const chunk = randomBytes(64 * 1024);
          written += chunk.length;
          if (!sink.write(chunk) && !signal.aborted)
            await new Promise<void>((r) => {
              sink.once("drain", r);
              signal.addEventListener("abort", () => r(), { once: true });
            });
        }
        stopped = true;
        throw new Error("aborted");
      }),
    ).rejects.toMatchObject({
      code: "RESOURCE_EXHAUSTED",
      field: "repo",
      message: expect.stringContaining("limits.bundleMaxBytes"),
    });
    expect(stopped).toBe(true);
    expect(written).toBeLessThan(8 * 1024 * 1024);
    expect(await objects()).toEqual(before.objects);
    expect(await messages()).toBe(before.messages);
    expect(await indexEntry(entry.repoId, entry.tip)).toBeUndefined();
  });

  it("keeps the Object Store's SHA-256 digests exact with the native hash, and refuses a bundle whose bytes do not match", async () => {
    const store = await BundleStore.open(jetstream(nc), nc.info?.max_payload ?? 1024 * 1024, {
      replicas: 1,
      maxBytes: 64 * 1024 * 1024,
      maxBundleBytes: 8 * 1024 * 1024,
      ttlMs: 0,
      chunkBytes: 16 * 1024,
    });
    const body = randomBytes(100 * 1024 + 7);
    const entry: Omit<BundleEntry, "size"> = {
      v: 1,
      name: "digest-test",
      repoId: "d".repeat(40),
      tip: "e".repeat(40),
      requires: [],
      kind: "source",
      at: new Date().toISOString(),
    };
    await store.putStream(entry, "a bundle", async (sink) => {
      sink.write(body);
    });
    const os = await new Objm(jetstream(nc)).open("mesh-bundles");
    const info = await os.info("digest-test");
    expect(info?.digest).toBe(`SHA-256=${createHash("sha256").update(body).digest("base64url")}=`);
    const got = await store.open("digest-test");
    const chunks: Buffer[] = [];
    for await (const c of got.data) chunks.push(Buffer.from(c));
    await got.verified;
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
    // Same chunks, a digest of other bytes: the get must refuse it.
    const kv = await jetstream(nc).jetstreamManager();
    const metaSubject = `$O.mesh-bundles.M.${Buffer.from("digest-test").toString("base64").replace(/\+/g, "-").replace(/\//g, "_")}`;
    const m = await kv.streams.getMessage("OBJ_mesh-bundles", { last_by_subj: metaSubject });
    if (!m) throw new Error("no meta message");
    const forged = {
      ...m.json<Record<string, unknown>>(),
      digest: `SHA-256=${createHash("sha256").update("other").digest("base64url")}=`,
    };
    const h = (await import("@nats-io/transport-node")).headers();
    h.set("Nats-Rollup", "sub");
    await jetstream(nc).publish(m.subject, JSON.stringify(forged), { headers: h });
    expect((await os.info("digest-test"))?.digest).toBe(forged.digest);
    const bad = await store.open("digest-test");
    bad.data.on("error", () => undefined);
    bad.data.resume();
    await expect(bad.verified).rejects.toMatchObject({ code: "DATA_LOSS" });
  });

  it("a streamed import refuses a damaged pack or a missing prerequisite and keeps nothing of it", async () => {
    const src = join(work, "stream-src");
    await execa("git", ["init", "--quiet", "-b", "main", src]);
    await writeFile(join(src, "a.txt"), randomBytes(64 * 1024).toString("hex"));
    await git(src, "add", ".");
    await git(src, "commit", "--quiet", "-m", "one");
    const one = await git(src, "rev-parse", "HEAD");
    await writeFile(join(src, "b.txt"), "b\n");
    await git(src, "add", ".");
    await git(src, "commit", "--quiet", "-m", "two");
    const two = await git(src, "rev-parse", "HEAD");
    await git(src, "update-ref", `refs/mesh/c/${one}`, one);
    await git(src, "update-ref", `refs/mesh/c/${two}`, two);
    const whole = join(work, "one.bundle");
    const top = join(work, "two.bundle");
    await git(src, "bundle", "create", "--quiet", whole, `refs/mesh/c/${one}`);
    await git(src, "bundle", "create", "--quiet", top, `refs/mesh/c/${two}`, `^${one}`);
    const os = await new Objm(jetstream(nc)).open("mesh-bundles");
    const store = await BundleStore.open(jetstream(nc), nc.info?.max_payload ?? 1024 * 1024, {
      replicas: 1,
      maxBytes: 64 * 1024 * 1024,
      maxBundleBytes: 8 * 1024 * 1024,
      ttlMs: 0,
      chunkBytes: 16 * 1024,
    });
    const bytes = await readFile(whole);
    // Flip a byte in the middle of the pack (the digest the store keeps is of the damaged bytes).
    const damaged = Buffer.from(bytes);
    const at = bytes.indexOf("PACK") + Math.floor((bytes.length - bytes.indexOf("PACK")) / 2);
    damaged[at] = (damaged[at] ?? 0) ^ 0xff;
    await os.putBlob({ name: "stream-damaged" }, damaged);
    await os.putBlob({ name: "stream-whole" }, bytes);
    await os.putBlob({ name: "stream-top" }, await readFile(top));
    const g = new Git();
    const dst = join(work, "stream-dst.git");
    await execa("git", ["init", "--quiet", "--bare", dst]);
    const repo2 = { gitDir: dst };
    const packs = async () => (await execa("ls", [join(dst, "objects", "pack")])).stdout.trim();
    const ref = (c: string) => `refs/mesh/have/${c}`;
    await expect(
      importBundleStream(g, repo2, await store.open("stream-top"), two, ref(two)),
    ).rejects.toMatchObject({ code: "DATA_LOSS", message: expect.stringContaining("prerequisite") });
    await expect(
      importBundleStream(g, repo2, await store.open("stream-damaged"), one, ref(one)),
    ).rejects.toMatchObject({ code: "DATA_LOSS", message: expect.stringContaining("git bundle verify") });
    expect(await packs()).toBe("");
    expect((await execa("git", ["for-each-ref"], { env: { GIT_DIR: dst } })).stdout.trim()).toBe("");
    // The intact ones import, in order, and set their refs.
    await importBundleStream(g, repo2, await store.open("stream-whole"), one, ref(one));
    await importBundleStream(g, repo2, await store.open("stream-top"), two, ref(two));
    expect((await execa("git", ["rev-parse", ref(two)], { env: { GIT_DIR: dst } })).stdout.trim()).toBe(two);
    expect((await execa("git", ["fsck", "--no-progress"], { env: { GIT_DIR: dst } })).exitCode).toBe(0);
  });

  it(
    "a worker refuses a bundle that fails git bundle verify",
    async () => {
      const other = join(work, "other-repo");
      await execa("git", ["init", "--quiet", "-b", "main", other]);
      await writeFile(join(other, "a.txt"), "a\n");
      await git(other, "add", ".");
      await git(other, "commit", "--quiet", "-m", "other");
      const shipped = await shipRepo(laptop.socket, other);
      expect(shipped.uploaded).toBe(true);
      // Garbage under the bundle's name, with a valid digest: only git's verify can tell.
      const os = await new Objm(jetstream(nc)).open("mesh-bundles");
      await os.putBlob({ name: shipped.bundle }, new TextEncoder().encode("# v2 git bundle\nnot really\n"));
      const id = uid("corrupt");
      const doc = JSON.stringify({
        id,
        prompt: "p",
        repo: `mesh://${shipped.repoId}`,
        ref: shipped.commit,
        runner: "command",
        command: ["node", "-e", "process.exit(0)"],
        maxAttempts: 1,
      });
      expectExit(await mesh(["submit", "-", "--json"], { input: doc }), 0);
      const t = await waitState(id, ["succeeded", "failed", "dead"]);
      expect(t.state).not.toBe("succeeded");
      expect(t.attempts[0].reason).toContain("git bundle verify");
      const cache = workerCache(box1 as Meshd, shipped.repoId);
      const has = await execa("git", ["cat-file", "-e", `${shipped.commit}^{commit}`], {
        cwd: cache,
        reject: false,
      });
      expect(has.exitCode).not.toBe(0);
    },
    LONG,
  );

  it(
    "results wait in the store while the submitting daemon is down",
    async () => {
      const id = uid("offline");
      const go = join(work, `${id}.go`);
      const js = `const fs=require('fs');const t=setInterval(()=>{if(fs.existsSync(${JSON.stringify(go)})){clearInterval(t);fs.writeFileSync('late.txt','late\\n')}},50)`;
      expectExit(await mesh(["submit", "-", "--json"], { input: spec(id, js, { timeout: "60s" }) }), 0);
      await waitState(id, ["running"]);
      const stateDir = laptop.stateDir;
      await stopMeshdProcess(laptop);
      await writeFile(go, "");
      const done = await waitState(id, ["succeeded", "failed", "dead"], (box1 as Meshd).socket);
      expect(done.state).toBe("succeeded");
      // Back with the same state dir.
      const p = await spawnMeshd([
        "--nats",
        nats.url,
        "--state-dir",
        stateDir,
        "--name",
        "laptop",
        "--pools",
        "laptop-only",
        "--runners",
        "command",
        "--no-http",
        "--config",
        laptopConfig,
      ]);
      laptop = { ...p, name: "laptop", socket: join(stateDir, "meshd.sock") };
      daemons.push(laptop);
      await waitFor(async () => (await mesh(["workers", "--json"])).code === 0, {
        name: "the laptop daemon is back",
        timeoutMs: 60_000,
        intervalMs: 200,
      });
      const f = await mesh(["fetch", id, "--json"]);
      expectExit(f, 0);
      expect(f.json().results[0]).toMatchObject({ outcome: "created", head: done.result.headCommit });
      expect(await git(repo, "show", `mesh/${id}:late.txt`)).toBe("late");
    },
    LONG,
  );

  it(
    "keeps a failed attempt's commits, and a retry on another host continues from them",
    async () => {
      const id = uid("retry");
      // Attempt 1 commits a file and fails; attempt 2 needs that file, adds one, and succeeds.
      const js = [
        "const fs=require('fs'),cp=require('child_process');",
        "if(process.env.MESH_ATTEMPT==='1'){fs.writeFileSync('one.txt','1\\n');",
        "cp.execFileSync('git',['-c','user.name=a','-c','user.email=a@x','add','one.txt']);",
        "cp.execFileSync('git',['-c','user.name=a','-c','user.email=a@x','commit','-qm','attempt one']);process.exit(1)}",
        "if(!fs.existsSync('one.txt'))process.exit(7);fs.writeFileSync('two.txt','2\\n')",
      ].join("");
      expectExit(await mesh(["submit", "-", "--json"], { input: spec(id, js) }), 0);
      const failed = await waitState(id, ["dead", "failed", "succeeded"]);
      expect(failed.state).toBe("dead");
      const kept = failed.attempts[0].bundle;
      expect(kept).toMatchObject({ repoId: first.repoId });
      expect(kept.name).toMatch(/^[0-9a-f]{64}$/);
      expect(kept.head).not.toBe(kept.base);
      // Another host: box1 is gone, box2 has never seen this repo or task.
      await stopMeshdProcess(box1 as Meshd);
      const box2 = await startWorker("box2");
      expectExit(await mesh(["retry", id]), 0);
      const done = await waitState(id, ["succeeded", "dead", "failed"]);
      expect(done.state, JSON.stringify(done.attempts)).toBe("succeeded");
      expect(done.attempts[1].workerId).toContain("box2");
      const head = done.result.headCommit as string;
      const cache = workerCache(box2, first.repoId);
      expect(
        (await execa("git", ["merge-base", "--is-ancestor", kept.head, head], { cwd: cache, reject: false }))
          .exitCode,
      ).toBe(0);
      expectExit(await mesh(["fetch", id]), 0);
      expect(await git(repo, "show", `mesh/${id}:one.txt`)).toBe("1");
      expect(await git(repo, "show", `mesh/${id}:two.txt`)).toBe("2");
      expect(done.result.bundle.base).toBe(kept.base);
      // --all: every succeeded task of this repository (the other repo's and the dead ones left out).
      const all = await mesh(["fetch", "--all", "--json"]);
      expectExit(all, 0);
      const outcomes = all.json().results.map((r: { outcome: string }) => r.outcome);
      expect(outcomes.length).toBeGreaterThanOrEqual(6);
      expect(outcomes.every((o: string) => o === "unchanged" || o === "created")).toBe(true);
    },
    LONG,
  );
});
