/**
 * Partition across real hosts: two worker hosts joined to a hub (TLS clients). The link of
 * the host running a task is cut (ip link down) for longer than the lease; its run ends
 * during the cut, so it holds a late result. The task re-runs on the other worker; after the
 * heal the cut worker's result is refused (fenced) and never becomes the task's. The chaos
 * tests' independent checker reads the side-effect log and the raw records: nothing lost or
 * doubled.
 */
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, removeTempDirs, waitFor } from "./harness/index.js";
import { checkChaos } from "./support/chaos.js";
import { type Hosts, hostsUnavailable, makeHosts } from "./support/hosts.js";
import {
  type Hub,
  inviteAndJoin,
  type Machine,
  mesh,
  meshUp,
  rawRecords,
  startHub,
} from "./support/hub-hosts.js";

const unavailable = hostsUnavailable();
if (unavailable) console.warn(`hosts-partition: skipped: ${unavailable}`);

/** The chaos log format (start, a tick every 20 ms, end); it ends once the file TASK_GO exists. */
const SCRIPT = `
const fs = require("fs");
const log = process.env.TASK_CHAOS_LOG, go = process.env.TASK_GO;
const id = process.env.MESH_TASK_ID, a = process.env.MESH_ATTEMPT, w = process.env.MESH_WORKER_ID;
const line = (k) => fs.appendFileSync(log, k + " " + id + " " + a + " " + w + " " + Date.now() + "\\n");
line("start");
const t = setInterval(() => {
  line("tick");
  if (fs.existsSync(go)) { clearInterval(t); line("end"); process.exit(0); }
}, 20);
`;

describe.skipIf(unavailable !== undefined)("a worker host cut off longer than the lease", () => {
  let net: Hosts;
  let hub: Hub;
  let a: Machine;
  let b: Machine;
  const LEASE = "3s";

  beforeAll(async () => {
    net = await makeHosts(["hub", "a", "b"]);
    hub = await startHub(net.hosts.hub!);
    for (const m of [net.hosts.a!, net.hosts.b!]) await inviteAndJoin(hub, m);
    [a, b] = await Promise.all([
      meshUp(net.hosts.a!, { lease: LEASE }),
      meshUp(net.hosts.b!, { lease: LEASE }),
    ]);
  }, 120_000);

  afterAll(async () => {
    for (const h of Object.values(net?.hosts ?? {})) {
      try {
        h.heal();
      } catch {
        // the namespace is gone
      }
    }
    await Promise.allSettled([a, b].filter(Boolean).map((m) => m.up.stop()));
    await hub?.server.stop();
    net?.remove();
    await removeTempDirs();
  });

  it("re-runs the task on the other worker and refuses the cut worker's late result", async () => {
    const dir = await makeTempDir("partition-");
    const log = join(dir, "side-effects.log");
    const go = join(dir, "go");
    const script = join(dir, "task.cjs");
    await writeFile(script, SCRIPT);
    const id = `partition-${Date.now().toString(36)}`;
    const spec = join(dir, "t.yaml");
    await writeFile(
      spec,
      [
        `id: ${id}`,
        "runner: command",
        "prompt: p",
        "maxAttempts: 3",
        `command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(script)}]`,
        `env: { TASK_CHAOS_LOG: ${JSON.stringify(log)}, TASK_GO: ${JSON.stringify(go)} }`,
        "",
      ].join("\n"),
    );
    expect((await mesh(b.host, ["submit", spec, "--json"])).code).toBe(0);
    const owner = await waitFor(
      () => {
        const m = /^start \S+ 1 (\S+) /m.exec(existsSync(log) ? readFileSync(log, "utf8") : "");
        return m?.[1];
      },
      { name: "the first run started", timeoutMs: 30_000 },
    );
    const [cut, other] = owner === a.workerId ? [a, b] : [b, a];
    expect(owner).toBe(cut.workerId);

    cut.host.cut();
    // The run ends while its host is cut off: its success cannot be recorded.
    await writeFile(go, "");
    await waitFor(() => readFileSync(log, "utf8").includes(`end ${id} 1 ${cut.workerId} `), {
      name: "the cut worker's run ended (a late result)",
    });
    // After the lease the other worker takes the task over and runs it to the end.
    const done = await waitFor(
      async () => {
        const r = await mesh(other.host, ["task", id, "--json"]);
        const t =
          r.code === 0
            ? (JSON.parse(r.stdout) as { task: { state: string; revision: number } }).task
            : undefined;
        return t?.state === "succeeded" ? t : undefined;
      },
      { name: "the task succeeded on the other worker", timeoutMs: 60_000, intervalMs: 250 },
    );

    cut.host.heal();
    // Back on the network, the cut worker learns it lost the task and writes nothing.
    const meshdLog = join(cut.host.stateDir, "meshd.log");
    await waitFor(
      () =>
        readFileSync(meshdLog, "utf8")
          .split("\n")
          .some((l) => l.includes(`"taskId":"${id}"`) && /fenced out/.test(l)),
      { name: "the cut worker was fenced out", timeoutMs: 60_000, intervalMs: 200 },
    );
    const records = await rawRecords(other.host, [id]);
    const rec = records.get(id)!;
    expect(rec.state).toBe("succeeded");
    expect(rec.attempts.map((x) => [x.attempt, x.workerId, x.outcome])).toEqual([
      [1, cut.workerId, "lost"],
      [2, other.workerId, "succeeded"],
    ]);
    // The refused write left the record as the other worker wrote it.
    const again = JSON.parse((await mesh(other.host, ["task", id, "--json"])).stdout) as {
      task: { revision: number };
    };
    expect(again.task.revision).toBe(done.revision);

    const report = await checkChaos(log, [id], records, () => false, true);
    expect(report.problems).toEqual([]);
    // The cut worker's finished run was not recorded and the task ran once more: the one
    // repeat a partition longer than the lease allows. Nothing lost, one success.
    expect(report).toMatchObject({
      tasks: 1,
      runs: 2,
      completedUnrecorded: 1,
      repeatedTasks: 1,
      takeovers: 1,
    });
  });
});
