/**
 * `mesh top` and `mesh tmux` under real tmux (send-keys, capture-pane) against real `meshd`
 * children: top's content and keys (select, log, cancel with confirm, retry, quit); tmux's panes
 * following the mesh: one per running task, a pane for a task on a third daemon that joins, the
 * pane of a SIGKILLed daemon's task closed, re-tiling only when the set of panes changed.
 * Needs `npm run build` first, and tmux.
 */
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { splitKeys } from "../cli/views/keys.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { MESH_BIN } from "./support/mesh.js";
import { type Box, mesh, startBox, statusIn, submit, Tmux, untilFileTask } from "./support/views.js";

let nats: NatsServer;
let work: string;
let tmux: Tmux;
const boxes: Box[] = [];

async function box(name: string): Promise<Box> {
  const b = await startBox(nats, work, name);
  boxes.push(b);
  return b;
}

beforeAll(async () => {
  if (!existsSync(MESH_BIN)) throw new Error("run `npm run build` first");
  nats = await NatsServer.start();
  work = await makeTempDir("views-tmux-");
  tmux = await Tmux.start();
}, 60_000);

afterAll(async () => {
  await tmux?.kill();
  await Promise.allSettled(boxes.map((b) => b.proc.stop(2000)));
  await nats?.cleanup();
  await removeTempDirs();
});

describe("mesh top's keys", () => {
  it("one raw read is split into keys: characters, CSI and SS3 sequences, a lone ESC", () => {
    expect(splitKeys("jjk")).toEqual(["j", "j", "k"]);
    expect(splitKeys("\x1b[A\x1b[B")).toEqual(["\x1b[A", "\x1b[B"]);
    expect(splitKeys("\x1bOAq")).toEqual(["\x1bOA", "q"]);
    expect(splitKeys("\x1b")).toEqual(["\x1b"]);
    expect(splitKeys("\x1b[1;5Ac")).toEqual(["\x1b[1;5A", "c"]);
    expect(splitKeys("cy\r")).toEqual(["c", "y", "\r"]);
    expect(splitKeys("é😀")).toEqual(["é", "😀"]);
  });
});

describe("mesh top under tmux", () => {
  it("shows workers and tasks, attention first; keys open the log, cancel with confirm, retry, quit", async () => {
    const a = await box("top-a");
    const gate = join(work, "top-gate");
    const flag = join(work, "top-flaky");
    await submit(a.socket, work, [
      untilFileTask("top-hang", "top-a", gate),
      untilFileTask("top-nobody", "nowhere", gate), // no worker serves box=nowhere: attention
      {
        id: "top-flaky",
        runner: "command",
        prompt: "fails once",
        labels: { box: "top-a" },
        maxAttempts: 1,
        command: [
          process.execPath,
          "-e",
          `const fs=require("fs");if(fs.existsSync(${JSON.stringify(flag)}))process.exit(0);fs.writeFileSync(${JSON.stringify(flag)},"1");process.exit(2)`,
        ],
      },
    ]);
    const topArgv = [process.execPath, MESH_BIN, "top"];
    await tmux.run([
      "new-session",
      "-d",
      "-s",
      "top",
      "-x",
      "160",
      "-y",
      "40",
      "-e",
      `MESH_DAEMON=${a.socket}`,
      ...topArgv,
    ]);
    const screen = () => tmux.capture("top");
    await waitFor(async () => statusIn(await screen(), "top-hang") === "working", {
      name: "top shows top-hang working",
      timeoutMs: 20_000,
    });
    await waitFor(async () => statusIn(await screen(), "top-flaky") === "failed", {
      name: "top shows the failure",
    });
    let s = await screen();
    expect(s).toContain("WORKERS");
    expect(s).toMatch(/top-a\s+\S+\s+\d\/4/);
    expect(statusIn(s, "top-nobody")).toBe("attention");
    // Attention first: the unschedulable task is listed above the working one.
    const lines = s.split("\n");
    const row = (id: string) => lines.findIndex((l) => statusIn(l, id) !== undefined);
    expect(row("top-nobody")).toBeGreaterThan(0);
    expect(row("top-nobody")).toBeLessThan(row("top-hang"));
    // NO_COLOR: no bold or colour attributes on the pane (-e keeps them in the capture).
    const painted = await tmux.run(["capture-pane", "-p", "-e", "-t", "top"]);
    expect(painted).toContain("WORKERS");
    expect(new RegExp(`${String.fromCharCode(27)}\\[(1|3[0-7]|9[0-7])m`).test(painted)).toBe(false);

    // Select top-hang (j/k move the marker), open its live log, come back.
    // Moves the marker to `id` with j/k, one key at a time, each waited for on the screen.
    const select = async (id: string) => {
      for (let i = 0; i < 10; i++) {
        const rows = (await screen()).split("\n");
        const at = rows.findIndex((l) => l.startsWith(">"));
        const want = rows.findIndex((l) => statusIn(l, id) !== undefined);
        if (at === want) return;
        await tmux.keys("top", want > at ? "j" : "k");
        await waitFor(async () => (await screen()).split("\n").findIndex((l) => l.startsWith(">")) !== at, {
          name: `marker moved towards ${id}`,
        });
      }
      throw new Error(`could not select ${id}`);
    };
    await select("top-hang");
    await tmux.keys("top", "Enter");
    await waitFor(async () => (await screen()).includes("log top-hang"), { name: "log view opened" });
    await waitFor(async () => /running \(attempt 1/.test(await screen()), { name: "log shows its events" });
    await tmux.keys("top", "q");
    await waitFor(async () => (await screen()).includes("WORKERS"), { name: "back to the list" });

    // c asks first; n keeps it running; c, y cancels.
    await tmux.keys("top", "c");
    await waitFor(async () => (await screen()).includes("cancel top-hang? y/n"), { name: "confirm asked" });
    await tmux.keys("top", "n");
    await waitFor(async () => (await screen()).includes("not confirmed"), { name: "not confirmed" });
    expect(statusIn(await screen(), "top-hang")).toBe("working");
    await tmux.keys("top", "c");
    await waitFor(async () => (await screen()).includes("cancel top-hang? y/n"), {
      name: "confirm asked again",
    });
    await tmux.keys("top", "y");
    await waitFor(async () => statusIn(await screen(), "top-hang") === "cancelled", { name: "cancelled" });
    const task = await mesh(a.socket, ["task", "top-hang", "--json"]);
    expect(JSON.parse(task.stdout).task.state).toBe("cancelled");

    // Several keys in one read (typing fast, a held key, a paste) are each a key: ten k's
    // written at once take the marker to the first task, the attention one.
    await tmux.run(["send-keys", "-t", "top", "-l", "kkkkkkkkkk"]);
    await waitFor(
      async () =>
        (await screen())
          .split("\n")
          .find((l) => l.startsWith(">"))
          ?.includes("top-nobody"),
      {
        name: "one read of ten k's moved the marker to the top",
      },
    );

    // r retries the failed task (it succeeds on its second run).
    await select("top-flaky");
    await tmux.keys("top", "r");
    await waitFor(async () => statusIn(await screen(), "top-flaky") === "succeeded", {
      name: "retried",
    }).catch(async (e) => {
      throw new Error(`${e.message}; screen:\n${await screen()}`);
    });

    s = await screen();
    await tmux.keys("top", "q");
    await waitFor(
      async () =>
        (await tmux.run(["list-sessions", "-F", "#{session_name}"]).catch(() => "")).includes("top") ===
        false,
      { name: "top quit and its session ended" },
    );
    await mesh(a.socket, ["cancel", "top-nobody"]);
    await writeFile(gate, "go");
  }, 90_000);
});

describe("mesh tmux", () => {
  it("keeps one pane per running task as tasks start and end and daemons join and leave, re-tiling only on change", async () => {
    const a = await box("tx-a");
    const b = await box("tx-b");
    const gates = { a: join(work, "gate-a"), b: join(work, "gate-b"), c: join(work, "gate-c") };
    await submit(a.socket, work, [
      untilFileTask("tx-a1", "tx-a", gates.a),
      untilFileTask("tx-b1", "tx-b", gates.b),
    ]);
    const made = await mesh(a.socket, ["tmux", "--detach", "--session", "tx", "--json"], tmux.env);
    expect(made.code, made.stderr).toBe(0);
    expect(JSON.parse(made.stdout)).toEqual({ session: "tx", created: true });
    const panes = () => tmux.taskPanes("=tx:0");
    await waitFor(async () => (await panes()).join() === "tx-a1,tx-b1", {
      name: "a pane per running task",
      timeoutMs: 20_000,
    }).catch(async (e) => {
      throw new Error(
        `${e.message}; panes ${(await panes()).join()}; status pane:\n${await tmux.capture("=tx:0.0")}`,
      );
    });
    // Each task pane shows its live `mesh watch`.
    const paneOf = async (task: string) => {
      const out = await tmux.run(["list-panes", "-t", "=tx:0", "-F", "#{pane_id} #{@mesh-task}"]);
      return (
        out
          .split("\n")
          .find((l) => l.endsWith(` ${task}`))
          ?.split(" ")[0] ?? ""
      );
    };
    await waitFor(async () => /running \(attempt 1 on tx-b/.test(await tmux.capture(await paneOf("tx-b1"))), {
      name: "tx-b1's pane shows its watch",
    });
    // The status pane lists both (its first line: the header).
    const status = () => tmux.capture("=tx:0.0");
    await waitFor(async () => statusIn(await status(), "tx-b1") === "working", { name: "status pane" });

    // A third daemon joins and runs a task: its pane appears.
    const c = await box("tx-c");
    await submit(a.socket, work, [untilFileTask("tx-c1", "tx-c", gates.c)]);
    await waitFor(async () => (await panes()).join() === "tx-a1,tx-b1,tx-c1", {
      name: "tx-c1's pane",
      timeoutMs: 20_000,
    });
    const layout = () => tmux.run(["display-message", "-p", "-t", "=tx:0", "#{window_layout}"]);
    // The status pane says which panes it last tiled the window for.
    const tiledFor = async () =>
      (await tmux.run(["display-message", "-p", "-t", "=tx:0", "#{@mesh-tiled}"]))
        .trim()
        .split(",")
        .filter(Boolean);
    await waitFor(async () => (await tiledFor()).length === 3, { name: "tiled for three task panes" });
    const tiled = await layout();

    // Nothing changes: a layout the person changed is left alone (no re-tiling without a change).
    await tmux.run(["resize-pane", "-t", await paneOf("tx-c1"), "-y", "5"]);
    const resized = await layout();
    expect(resized).not.toBe(tiled);
    await new Promise((r) => setTimeout(r, 2000)); // four refreshes of the status pane
    expect(await layout()).toBe(resized);

    // A daemon dies: its task's pane closes (the task is lost), and the window is re-tiled.
    b.proc.kill("SIGKILL");
    await waitFor(async () => (await panes()).join() === "tx-a1,tx-c1", {
      name: "tx-b1's pane closed",
      timeoutMs: 20_000,
    });
    await waitFor(async () => (await layout()) !== resized, { name: "re-tiled after the change" });
    await waitFor(async () => ["lost", "attention"].includes(statusIn(await status(), "tx-b1") ?? ""), {
      name: "status pane: tx-b1 lost or needing attention",
    }).catch(async (e) => {
      throw new Error(`${e.message}; status pane:\n${await status()}`);
    });

    // A task ends: its pane closes.
    await writeFile(gates.a, "go");
    await waitFor(async () => (await panes()).join() === "tx-c1", {
      name: "tx-a1's pane closed",
      timeoutMs: 20_000,
    });
    await writeFile(gates.c, "go");
    await waitFor(async () => (await panes()).length === 0, {
      name: "no task panes left",
      timeoutMs: 20_000,
    });
    // Asking again finds the session there.
    const again = await mesh(c.socket, ["tmux", "--detach", "--session", "tx", "--json"], tmux.env);
    expect(JSON.parse(again.stdout)).toEqual({ session: "tx", created: false });
  }, 120_000);
});
