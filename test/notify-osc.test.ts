// Terminal notifications (OSC 9 / OSC 777, tmux passthrough): the exact bytes, when they are
// sent and when not; then end to end: the built `mesh submit --wait` and `mesh watch` on a real
// terminal (a pty from script(1)) against a real meshd on a real nats-server.
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  oscFormat,
  oscSequence,
  TerminalNotifier,
  taskNotification,
  terminalNotifier,
} from "../cli/notify-osc.js";
import { type TaskEvent, TaskState } from "../proto/index.js";
import { makeTempDir, NatsServer, removeTempDirs, waitFor } from "./harness/index.js";
import { MESH_BIN } from "./support/mesh.js";
import { type Meshd, startMeshdProcess, stopMeshdProcess } from "./support/meshd-proc.js";
import type { Overview } from "../daemon/lite.js";
import { TopNotices } from "../cli/views/top-notify.js";

const ESC = "\x1b";
const BEL = "\x07";

function stateEvent(state: TaskState, reason = ""): TaskEvent {
  return {
    taskId: "t-1",
    at: new Date().toISOString(),
    attempt: 2,
    workerId: "w",
    state: { state, reason },
    eventJson: "",
  };
}

describe("OSC sequences", () => {
  const n = { title: "mesh: t-1 succeeded", body: "attempt 1" };

  it("OSC 9 is ESC ] 9 ; text BEL", () => {
    expect(oscSequence(n, "osc9", false)).toBe(`${ESC}]9;mesh: t-1 succeeded: attempt 1${BEL}`);
  });

  it("OSC 777 is ESC ] 777 ; notify ; title ; body BEL, no `;` in the title", () => {
    expect(oscSequence({ title: "a;b", body: "c;d" }, "osc777", false)).toBe(
      `${ESC}]777;notify;a,b;c;d${BEL}`,
    );
  });

  it("inside tmux it is wrapped as DCS tmux; with every ESC doubled, ended by ST", () => {
    expect(oscSequence(n, "osc9", true)).toBe(
      `${ESC}Ptmux;${ESC}${ESC}]9;mesh: t-1 succeeded: attempt 1${BEL}${ESC}\\`,
    );
    expect(oscSequence(n, "osc777", true)).toBe(
      `${ESC}Ptmux;${ESC}${ESC}]777;notify;mesh: t-1 succeeded;attempt 1${BEL}${ESC}\\`,
    );
  });

  it("control characters from a task (a reason, a title) cannot end the sequence early", () => {
    const s = oscSequence({ title: "x\x07y", body: `z${ESC}]0;pwned${BEL}` }, "osc9", false);
    expect(s).toBe(`${ESC}]9;x y: z ]0;pwned ${BEL}`);
  });

  it("MESH_NOTIFY picks or disables the format; rxvt/foot/Konsole/VTE get OSC 777", () => {
    expect(oscFormat({})).toBe("osc9");
    expect(oscFormat({ TERM: "rxvt-unicode-256color" })).toBe("osc777");
    expect(oscFormat({ TERM: "foot" })).toBe("osc777");
    expect(oscFormat({ VTE_VERSION: "7600" })).toBe("osc777");
    expect(oscFormat({ TERM: "foot", MESH_NOTIFY: "osc9" })).toBe("osc9");
    expect(oscFormat({ MESH_NOTIFY: "osc777" })).toBe("osc777");
    for (const off of ["0", "off", "false", "no"]) expect(oscFormat({ MESH_NOTIFY: off })).toBeUndefined();
  });

  it("only on a terminal, only when enabled", () => {
    const tty = { isTTY: true, write: () => true };
    expect(terminalNotifier(true, tty, {})).toBeInstanceOf(TerminalNotifier);
    expect(terminalNotifier(true, { isTTY: false, write: () => true }, {})).toBeUndefined();
    expect(terminalNotifier(false, tty, {})).toBeUndefined();
    expect(terminalNotifier(true, tty, { MESH_NOTIFY: "0" })).toBeUndefined();
  });

  it("ends and needs-attention events notify, once each; other events do not", () => {
    const out: string[] = [];
    const notifier = new TerminalNotifier({ write: (s: string) => out.push(s) }, "osc9", false);
    notifier.taskEvent(stateEvent(TaskState.TASK_STATE_RUNNING));
    expect(out).toEqual([]);
    notifier.taskEvent(stateEvent(TaskState.TASK_STATE_FAILED, "exit 3"));
    notifier.taskEvent(stateEvent(TaskState.TASK_STATE_FAILED, "exit 3"));
    expect(out).toEqual([`${ESC}]9;mesh: t-1 failed (needs attention): attempt 2: exit 3${BEL}`]);
    const denied: TaskEvent = {
      ...stateEvent(TaskState.TASK_STATE_RUNNING),
      state: undefined,
      agent: { kind: "tool_denied", dataJson: JSON.stringify({ kind: "tool_denied", tool: "Bash" }) },
    };
    expect(taskNotification(denied)).toEqual({
      title: "mesh: t-1 needs attention",
      body: "permission denied for Bash",
    });
    expect(taskNotification({ ...denied, agent: { kind: "tool_use", dataJson: "{}" } })).toBeUndefined();
  });
});

describe("notifications from the built CLI", () => {
  let nats: NatsServer;
  let d: Meshd;
  let dir: string;

  beforeAll(async () => {
    if (!existsSync(MESH_BIN)) throw new Error(`${MESH_BIN} is missing: run \`npm run build\` first`);
    nats = await NatsServer.start();
    d = await startMeshdProcess({ natsUrl: nats.url, name: "osc", logLevel: "warn", prefix: "mesh-osc" });
    dir = await makeTempDir("mesh-osc-");
  }, 120_000);

  afterAll(async () => {
    if (d) await stopMeshdProcess(d);
    await nats?.cleanup();
    await removeTempDirs();
  }, 60_000);

  /** Starts `mesh <args>` with stdout on a pty (script(1)) or a pipe. */
  function start(args: string[], o: { tty: boolean; env?: Record<string, string> }) {
    const env = { NO_COLOR: "1", MESH_DAEMON: d.socket, TMUX: "", MESH_NOTIFY: "", TERM: "xterm", ...o.env };
    const argv = [process.execPath, MESH_BIN, ...args];
    const opts = { env, reject: false, stdin: "ignore", timeout: 60_000 } as const;
    return o.tty
      ? execa("script", ["-qec", argv.map(shellQuote).join(" "), "/dev/null"], opts)
      : execa(argv[0] as string, argv.slice(1), opts);
  }

  /** The raw bytes `mesh <args>` wrote to stdout. */
  async function mesh(args: string[], o: { tty: boolean; env?: Record<string, string> }): Promise<string> {
    return String((await start(args, o)).stdout);
  }

  const task = async (id: string, js: string) => {
    const file = join(dir, `${id}.yaml`);
    await writeFile(
      file,
      `{id: ${id}, prompt: p, runner: command, maxAttempts: 1, command: [node, -e, ${JSON.stringify(js)}]}\n`,
    );
    return file;
  };

  it("submit --wait on a terminal notifies the end (OSC 9), tmux-wrapped under $TMUX", async () => {
    const out = await mesh(["submit", await task("osc-ok", "0"), "--wait"], { tty: true });
    expect(out).toContain(`${ESC}]9;mesh: osc-ok succeeded: attempt 1${BEL}`);
    const failed = await mesh(["submit", await task("osc-bad", "process.exit(3)"), "--wait"], {
      tty: true,
      env: { TMUX: "/tmp/tmux-0/default,1,0" },
    });
    expect(failed).toMatch(
      new RegExp(
        `${ESC}Ptmux;${ESC}${ESC}\\]9;mesh: osc-bad died \\(needs attention\\): attempt 1[^\\x07]*${BEL}${ESC}\\\\`,
      ),
    );
  });

  it("no notification with --no-notify, MESH_NOTIFY=0, or stdout not a terminal", async () => {
    const runs = [
      await mesh(["submit", await task("osc-off-1", "0"), "--wait", "--no-notify"], { tty: true }),
      await mesh(["submit", await task("osc-off-2", "0"), "--wait"], {
        tty: true,
        env: { MESH_NOTIFY: "0" },
      }),
      await mesh(["submit", await task("osc-off-3", "0"), "--wait"], { tty: false }),
    ];
    for (const [i, out] of runs.entries()) {
      expect(out).toContain(`osc-off-${i + 1}`);
      expect(out).toContain("succeeded");
      expect(out).not.toContain(`${ESC}]`);
    }
  });

  it("watch notifies a task that ends while watched, OSC 777 when asked", async () => {
    const gate = join(dir, "osc-watch.go");
    const file = await task(
      "osc-watch",
      `const f = ${JSON.stringify(gate)}; const t = setInterval(() => require("fs").existsSync(f) && clearInterval(t), 50)`,
    );
    await mesh(["submit", file], { tty: false });
    const watching = start(["watch", "osc-watch"], { tty: true, env: { MESH_NOTIFY: "osc777" } });
    let seen = "";
    watching.stdout?.on("data", (c: Buffer) => {
      seen += c.toString();
    });
    // The task ends only once the watch is following it live.
    await waitFor(() => seen.includes("running"), {
      name: "the watch shows the task running",
      timeoutMs: 30_000,
    });
    await writeFile(gate, "");
    const out = String((await watching).stdout);
    expect(out).toContain(`${ESC}]777;notify;mesh: osc-watch succeeded;attempt 1${BEL}`);
    // Watching it again after the end replays history: nothing new happened, nothing to notify.
    const again = await mesh(["watch", "osc-watch"], { tty: true });
    expect(again).toContain("succeeded");
    expect(again).not.toContain(`${ESC}]`);
  });
});

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

describe("mesh top's notices", () => {
  const task = (id: string, state: string, attention: boolean, kind = state, detail = "") => ({
    id,
    state,
    attempt: 1,
    status: { kind, attention, detail },
  });
  const ov = (...tasks: ReturnType<typeof task>[]) => ({ tasks }) as unknown as Pick<Overview, "tasks">;

  it("the first snapshot is history; then an end and a new need for attention, each once", () => {
    const n = new TopNotices();
    expect(n.next(ov(task("a", "succeeded", false), task("b", "running", true, "attention")))).toEqual([]);
    const second = n.next(
      ov(
        task("a", "succeeded", false),
        task("b", "running", true, "attention"),
        task("c", "running", true, "attention", "permission denied for Write"),
        task("d", "failed", true, "failed", "exit code 3"),
      ),
    );
    expect(second.map((x) => x.n)).toEqual([
      { title: "mesh: c needs attention", body: "permission denied for Write" },
      { title: "mesh: d failed (needs attention)", body: "attempt 1: exit code 3" },
    ]);
    expect(n.next(ov(task("c", "running", true, "attention"), task("d", "failed", true)))).toEqual([]);
  });
});
