/**
 * `npm run bench -- transfer`: what the bundle store's chunk size does to throughput on
 * loopback (puts and gets of the same bytes with 128 KiB and 1 MiB chunks, the default and the
 * server's max_payload), then a first and an incremental ship of a generated repository through
 * the daemon's own code (shipRepo, ensureCommit) at the chosen chunk size.
 */
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import { execa } from "execa";
import { BundleStore, DEFAULT_CHUNK_BYTES, ensureCommit, Git, shipRepo } from "../daemon/index.js";
import { makeTempDir, NatsServer, removeTempDirs } from "../test/harness/index.js";
import { percentile, round } from "./stats.js";

export interface TransferOptions {
  rounds: number;
}

const MiB = 1024 * 1024;

async function chunkRows(url: string, rounds: number): Promise<Array<Record<string, string | number>>> {
  const nc = await connect({ servers: url });
  const objm = new Objm(jetstream(nc));
  const rows: Array<Record<string, string | number>> = [];
  for (const sizeMiB of [8, 32]) {
    const data = randomBytes(sizeMiB * MiB);
    for (const chunk of [128 * 1024, MiB]) {
      const os = await objm.create(`bench-${chunk}-${sizeMiB}`, { max_bytes: 1024 * MiB });
      const put: number[] = [];
      const get: number[] = [];
      for (let i = 0; i < rounds; i++) {
        let t = performance.now();
        await os.putBlob({ name: `o${i}`, options: { max_chunk_size: Math.min(chunk, MiB - 4096) } }, data);
        put.push(performance.now() - t);
        t = performance.now();
        const back = await os.getBlob(`o${i}`);
        get.push(performance.now() - t);
        if (back?.length !== data.length) throw new Error("object came back short");
        await os.delete(`o${i}`);
      }
      await os.destroy();
      const mbps = (ms: number) => round(sizeMiB / (ms / 1000), 1);
      rows.push({
        object: `${sizeMiB} MiB`,
        chunk: chunk === MiB ? "1 MiB" : "128 KiB",
        putMBps_p50: mbps(percentile(put, 50)),
        getMBps_p50: mbps(percentile(get, 50)),
        putMs_p50: round(percentile(put, 50)),
        getMs_p50: round(percentile(get, 50)),
      });
    }
  }
  await nc.close();
  return rows;
}

/** A repository of ~`files` files over `commits` commits, about 10 MB of mostly incompressible text. */
async function generateRepo(dir: string, files: number, commits: number): Promise<void> {
  const id = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"];
  await execa("git", ["init", "--quiet", "-b", "main", dir]);
  for (let c = 0; c < commits; c++) {
    const n = c === 0 ? files : 5;
    for (let i = 0; i < n; i++) {
      const f = join(dir, `d${i % 20}`, `f${(c * 7 + i) % files}.txt`);
      await mkdir(join(dir, `d${i % 20}`), { recursive: true });
      await writeFile(f, `${randomBytes(c === 0 ? 4096 : 512).toString("base64")}\n`);
    }
    await execa("git", [...id, "add", "-A"], { cwd: dir });
    await execa("git", [...id, "commit", "--quiet", "-m", `c${c}`], { cwd: dir });
  }
}

export async function transferScenario(
  o: TransferOptions,
): Promise<{ rows: object[] } & Record<string, unknown>> {
  const nats = await NatsServer.start();
  try {
    const rows = await chunkRows(nats.url, o.rounds);
    // The real path at the chosen chunk size: a first sync, then one new commit.
    const nc = await connect({ servers: nats.url });
    const store = await BundleStore.open(jetstream(nc), nc.info?.max_payload ?? MiB, {
      replicas: 1,
      maxBytes: 1024 * MiB,
      maxBundleBytes: 512 * MiB,
      ttlMs: 0,
      chunkBytes: DEFAULT_CHUNK_BYTES,
    });
    const git = new Git();
    const dir = await makeTempDir("bench-xfer-");
    const repo = join(dir, "repo");
    await generateRepo(repo, 2000, 100);
    const tmpRoot = await makeTempDir("bench-xfer-tmp-");
    const worker = join(dir, "worker.git");
    await execa("git", ["init", "--quiet", "--bare", worker]);
    const ship = async () => {
      const t = performance.now();
      const r = await shipRepo({ git, store, path: repo, dirty: false, tmpRoot });
      const shipMs = performance.now() - t;
      const t2 = performance.now();
      const e = await ensureCommit({
        git,
        store,
        repo: { gitDir: worker },
        repoId: r.repoId,
        commit: r.commit,
        tmpRoot,
        refPrefix: "refs/mesh/have/",
      });
      return {
        bytes: r.bytes,
        shipMs: round(shipMs),
        importMs: round(performance.now() - t2),
        importedBundles: e.imported.length,
      };
    };
    const firstSync = await ship();
    await writeFile(join(repo, "d0", "new.txt"), "one more line\n");
    await execa("git", ["-c", "user.name=b", "-c", "user.email=b@x", "add", "-A"], { cwd: repo });
    await execa("git", ["-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "next"], { cwd: repo });
    const incremental = await ship();
    await nc.close();
    return {
      scenario: "transfer",
      rows,
      chosenChunkBytes: DEFAULT_CHUNK_BYTES,
      repo: { files: 2000, commits: 100 },
      firstSync,
      incremental,
      note: "loopback, one nats-server 2.9.10 (file store), 2 cores; MB/s = MiB per second of object bytes",
    };
  } finally {
    await nats.cleanup();
    await removeTempDirs();
  }
}
