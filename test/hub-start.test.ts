/**
 * `mesh hub start` runs its node's nats-server through lib/child: a SIGTERM stops both (exit
 * 0), and a `kill -9` of `mesh hub start` takes its nats-server with it (the parent-death
 * signal), instead of leaving a hub server running that nobody started.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, removeTempDirs, waitFor } from "./harness/index.js";
import { type Host, localHost } from "./support/hosts.js";
import { startHub } from "./support/hub-hosts.js";

const run = promisify(execFile);
/** True when no process has `text` in its command line (the node's nats-server runs with its config path). */
const noProcessMentions = (text: string) =>
  run("pgrep", ["-f", text]).then(
    () => false,
    () => true,
  );

const hosts: Array<Host & { remove(): void }> = [];
const hubDirs: string[] = [];
afterAll(async () => {
  for (const h of hosts) h.remove();
  // A server left behind by a failure of this test: only this test's hub dirs' servers.
  for (const dir of hubDirs) {
    const pids = await run("pgrep", ["-f", `nats-server -c ${dir}/`]).then(
      (r) => r.stdout.split("\n"),
      () => [],
    );
    for (const pid of pids.filter(Boolean)) process.kill(Number(pid), "SIGKILL");
  }
  await removeTempDirs();
});

describe("mesh hub start", () => {
  it("stops with its nats-server on SIGTERM (exit 0)", async () => {
    const host = await localHost("hub-term");
    hosts.push(host);
    const hub = await startHub(host, { port: await freePort(), leafPort: await freePort() });
    hubDirs.push(hub.dir);
    expect(await noProcessMentions(`nats-server -c ${hub.dir}/`)).toBe(false);
    hub.server.child.kill("SIGTERM");
    expect((await hub.server.exited).code).toBe(0);
    await waitFor(() => noProcessMentions(hub.dir), { name: "hub nats-server stopped" });
  });

  it("kill -9 of mesh hub start takes its nats-server with it", async () => {
    const host = await localHost("hub-kill");
    hosts.push(host);
    const hub = await startHub(host, { port: await freePort(), leafPort: await freePort() });
    hubDirs.push(hub.dir);
    expect(await noProcessMentions(`nats-server -c ${hub.dir}/`)).toBe(false);
    hub.server.child.kill("SIGKILL");
    await hub.server.exited;
    await waitFor(() => noProcessMentions(hub.dir), { name: "hub nats-server died with mesh hub start" });
  });
});
