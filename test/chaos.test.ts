/**
 * Chaos, sized for CI: 4 meshd processes x 4 slots run a few hundred tasks while daemons are
 * killed with SIGKILL and restarted at random and NATS itself is restarted (single node) or
 * loses its stream leader (3-node cluster, R3). An independent checker then reads the tasks'
 * side-effect log and the raw records.
 */
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterEach, describe, expect, it } from "vitest";
import { TASKS_STREAM } from "../daemon/nats/names.js";
import { pause } from "../daemon/util/abort.js";
import { makeTempDir, NatsCluster, NatsServer, waitFor } from "./harness/index.js";
import { checkChaos, readRecords, writeChaosScript } from "./support/chaos.js";
import { type MeshClient, type MeshdProcess, openClient, spawnMeshd } from "./support/mesh.js";
import { nodeTask } from "./support/tasks.js";

const DAEMONS = 4;
const SLOTS = 4;
const KILLS = 8;
const LEASE = "3s";

interface FleetMember {
  name: string;
  proc: MeshdProcess;
}

class Fleet {
  private gen = 0;
  readonly members: FleetMember[] = [];
  readonly killedNames = new Set<string>();

  constructor(
    private readonly urls: string[],
    private readonly replicas: number,
    private readonly client: MeshClient,
    private readonly lease = LEASE,
  ) {}

  /** `untilUp`: wait for its presence (the initial fleet, before any fault). */
  async startOne(untilUp = false): Promise<FleetMember> {
    const name = `chaos${this.gen++}`;
    const proc = await spawnMeshd([
      "--nats",
      this.urls.join(","),
      "--pools",
      "chaos",
      "--slots",
      String(SLOTS),
      "--lease",
      this.lease,
      "--name",
      name,
      "--replicas",
      String(this.replicas),
      "--runners",
      "command",
      "--no-http",
      "--log-level",
      "warn",
    ]);
    const m = { name, proc };
    this.members.push(m);
    // Up once it is in the presence registry: a daemon still starting when the fault schedule
    // cuts NATS would fail its first connect and exit, and the run would test nothing.
    if (!untilUp) return m;
    await waitFor(
      () =>
        this.client.api.listWorkers().then(
          (ws) => ws.some((w) => w.workerId.startsWith(`${name}-`)),
          () => false,
        ),
      { name: `daemon ${name} up`, timeoutMs: 60_000, intervalMs: 100 },
    );
    return m;
  }

  async killRandom(): Promise<void> {
    const i = Math.floor(Math.random() * this.members.length);
    const [victim] = this.members.splice(i, 1);
    if (!victim) return;
    this.killedNames.add(victim.name);
    victim.proc.kill("SIGKILL");
    await victim.proc.exited;
    await this.startOne();
  }

  /** Worker ids are `<name>-<hex>`. */
  wasKilled(workerId: string): boolean {
    return this.killedNames.has(workerId.slice(0, workerId.lastIndexOf("-")));
  }

  async stopAll(): Promise<void> {
    for (const m of this.members) m.proc.kill("SIGTERM");
    await Promise.all(this.members.map((m) => m.proc.exited));
  }

  killAll(): void {
    for (const m of this.members) m.proc.kill("SIGKILL");
  }
}

let cleanup: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  cleanup = [];
});

async function chaosRun(opts: {
  urls: string[];
  replicas: number;
  tasks: number;
  /** Daemons killed with SIGKILL (and replaced) during the run. */
  kills?: number;
  /** Called once mid-run: restart NATS / kill the leader. */
  disruptNats: () => Promise<void>;
  lease?: string;
  /** See checkChaos: a killed cluster node may cut a live worker off longer than its lease. */
  allowFenceLoss?: boolean;
}) {
  const kills = opts.kills ?? KILLS;
  const dir = await makeTempDir("chaos-");
  const script = await writeChaosScript(dir);
  const logFile = join(dir, "side-effects.log");
  const client = await openClient(opts.urls, { replicas: opts.replicas });
  cleanup.push(() => client.close());
  const fleet = new Fleet(opts.urls, opts.replicas, client, opts.lease);
  cleanup.push(() => fleet.killAll());
  for (let i = 0; i < DAEMONS; i++) await fleet.startOne(true);

  const specs = Array.from({ length: opts.tasks }, () =>
    nodeTask("", {
      pool: "chaos",
      maxAttempts: 25,
      command: [process.execPath, script],
      env: { TASK_CHAOS_LOG: logFile, TASK_CHAOS_MS: String(200 + Math.floor(Math.random() * 600)) },
    }),
  );
  const ids = specs.map((s) => s.id);
  for (let i = 0; i < specs.length; i += 50) {
    const batch = specs.slice(i, i + 50);
    // Submitting is idempotent: retry through a NATS blip.
    await waitFor(
      () =>
        client.api.submit(batch).then(
          () => true,
          () => false,
        ),
      {
        name: "submit batch",
        timeoutMs: 30_000,
      },
    );
  }

  // The chaos schedule: a kill every ~1.5 s, NATS disrupted after the third.
  for (let k = 0; k < Math.max(kills, 1); k++) {
    await pause(1000 + Math.random() * 1000); // pacing of the fault schedule, not a wait on a condition
    if (k < kills) await fleet.killRandom();
    if (k === Math.min(2, Math.max(kills - 1, 0))) await opts.disruptNats();
  }

  let open: string[] = [];
  let last: Awaited<ReturnType<typeof readRecords>> | undefined;
  await waitFor(
    async () => {
      const recs = await readRecords(opts.urls, ids).catch(() => undefined);
      if (!recs) return false;
      last = recs;
      open = ids.filter(
        (id) => !["succeeded", "failed", "dead", "cancelled"].includes(recs.get(id)?.state ?? ""),
      );
      return open.length === 0 ? recs : false;
    },
    { name: "every task terminal", timeoutMs: 240_000, intervalMs: 1000 },
  ).catch((err: unknown) => {
    // Say which tasks are stuck, and how, before failing.
    const stuck = open.slice(0, 5).map((id) => ({ id, record: last?.get(id) }));
    throw new Error(`${String(err)}; ${open.length} open, e.g. ${JSON.stringify(stuck)}`);
  });
  await fleet.stopAll();
  const records = await readRecords(opts.urls, ids);
  const report = await checkChaos(logFile, ids, records, (w) => fleet.wasKilled(w), opts.allowFenceLoss);
  console.log(`chaos report: ${JSON.stringify({ ...report, problems: report.problems.slice(0, 20) })}`);
  expect(report.problems).toEqual([]);
  expect(report.tasks).toBe(opts.tasks);
  expect(fleet.killedNames.size).toBe(kills);
  // No finished run was thrown away and repeated on a worker that lived through the run (where
  // allowed, only after that worker's fence was really gone).
  if (!opts.allowFenceLoss) expect(report.fencedCompleted).toBe(0);
  return report;
}

describe("chaos", () => {
  it("single node: SIGKILLed daemons and a NATS restart lose nothing and run nothing twice at once", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const report = await chaosRun({
      urls: [nats.url],
      replicas: 1,
      tasks: 300,
      disruptNats: () => nats.restart(),
    });
    expect(report.runs).toBeGreaterThanOrEqual(300);
  }, 400_000);

  it("a NATS outage of a few seconds repeats no finished run", async () => {
    const nats = await NatsServer.start();
    cleanup.push(() => nats.cleanup());
    const report = await chaosRun({
      urls: [nats.url],
      replicas: 1,
      tasks: 200,
      kills: 0,
      // An outage longer than a write's timeout (5 s) but well inside the lease (15 s, the
      // default): the owners still hold their fences when NATS is back.
      lease: "15s",
      disruptNats: async () => {
        await nats.kill();
        await pause(6000); // the outage: runs finish while NATS is away
        await nats.restart();
      },
    });
    // Every run that started finished, was recorded, and none ran twice.
    expect(report.completedUnrecorded).toBe(0);
    expect(report.repeatedTasks).toBe(0);
    expect(report.takeovers).toBe(0);
  }, 400_000);

  it("3-node cluster, R3: SIGKILLed daemons and a killed stream leader lose nothing", async () => {
    const cluster = await NatsCluster.start({ size: 3 });
    cleanup.push(() => cluster.cleanup());
    await cluster.waitForJetStream();
    const report = await chaosRun({
      urls: cluster.urls,
      replicas: 3,
      tasks: 200,
      // Workers connected to the killed node are cut off while it is down and they reconnect to
      // another (2-5 s here, under load more): longer than a 3 s lease, so such a worker may lose
      // its fence, and its finished run is then repeated. That is the fence working; the outage
      // test above proves that an outage shorter than the lease repeats nothing.
      allowFenceLoss: true,
      disruptNats: async () => {
        const nc = await connect({ servers: cluster.urls });
        const jsm = await jetstreamManager(nc);
        const leader = (await jsm.streams.info(TASKS_STREAM)).cluster?.leader;
        await nc.close();
        const victim = cluster.servers.find((s) => s.serverName === leader) ?? cluster.servers[0]!;
        await victim.kill();
        await pause(2000); // keep it down long enough for a new leader to take over
        await victim.restart();
      },
    });
    expect(report.runs).toBeGreaterThanOrEqual(200);
  }, 400_000);
});
