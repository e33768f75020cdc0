/**
 * lib/child: the one child-process helper, with real processes: TERM then KILL after the grace
 * for a child that ignores TERM, its process group (grandchildren) killed, parent death (the
 * guardian and the setpriv fallback), output as bounded lines, abort, and spawn failures.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  guardianAvailable,
  type ParentDeath,
  parentDeathSignalAvailable,
  spawnChild,
} from "../lib/child/index.js";
import { isAlive, waitFor } from "./harness/index.js";

const LIB_CHILD = fileURLToPath(new URL("../dist/lib/child/index.js", import.meta.url));

/** A node child running `code`: argv, never a shell. */
const node = (code: string): string[] => [process.execPath, "-e", code];

/** Node code that prints `ready`, ignores SIGTERM and stays. */
const IGNORES_TERM = `process.on("SIGTERM",()=>console.log("got TERM"));console.log("ready");setInterval(()=>{},1000)`;

/** Node code that starts a grandchild in its group, prints its pid, and stays (or exits). */
const withGrandchild = (stay: boolean) =>
  `const c=require("child_process").spawn(process.execPath,["-e","setInterval(()=>{},1000)"],{stdio:"ignore"});console.log(String(c.pid));${stay ? "setInterval(()=>{},1000)" : "setTimeout(()=>process.exit(0),50)"}`;

async function firstLine(it: AsyncIterator<{ line: string }>): Promise<string> {
  const r = await it.next();
  if (r.done) throw new Error("no output");
  return r.value.line;
}

const modes: ParentDeath[] = [
  ...(guardianAvailable() ? (["guard"] as const) : []),
  ...(parentDeathSignalAvailable() ? (["signal"] as const) : []),
];

describe.each(modes)("spawnChild (parentDeath %s)", (parentDeath) => {
  it("sends TERM, and KILLs the tree after the grace when the child ignores it", async () => {
    const child = spawnChild(node(IGNORES_TERM), { parentDeath, killGraceMs: 300 });
    const lines = child.lines();
    expect(await firstLine(lines)).toBe("ready");
    const exit = await child.stop();
    expect(exit).toMatchObject({ signal: "SIGKILL", exitCode: null, stoppedBy: "kill" });
    // It did get the TERM first (and said so) before it was killed.
    const rest: string[] = [];
    for await (const l of lines) rest.push(l.line);
    expect(rest).toContain("got TERM");
  });

  it("a child that honours TERM exits with it, and stop() is one stop", async () => {
    const child = spawnChild(node(`console.log("ready");setInterval(()=>{},1000)`), { parentDeath });
    expect(await firstLine(child.lines())).toBe("ready");
    const a = child.stop();
    expect(child.stop()).toBe(a);
    expect(await a).toMatchObject({ signal: "SIGTERM", stoppedBy: "term" });
  });

  it("kill() takes the grandchildren in its process group with it", async () => {
    const child = spawnChild(node(withGrandchild(true)), { parentDeath });
    const grandchild = Number(await firstLine(child.lines()));
    expect(isAlive(grandchild)).toBe(true);
    child.kill();
    await child.exited;
    await waitFor(() => !isAlive(grandchild), { name: "grandchild killed" });
  });

  it("reaps what the child left running in its group when it exits", async () => {
    const child = spawnChild(node(withGrandchild(false)), { parentDeath });
    const grandchild = Number(await firstLine(child.lines()));
    expect((await child.exited).exitCode).toBe(0);
    await waitFor(() => !isAlive(grandchild), { name: "grandchild reaped" });
  });

  it("the child dies with its parent, even one killed by SIGKILL", async () => {
    expect(existsSync(LIB_CHILD)).toBe(true); // npm run build
    // A parent that spawns through the helper, prints its child's pid, and waits.
    const parent = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { spawnChild } from ${JSON.stringify(LIB_CHILD)};
         const c = spawnChild([process.execPath, "-e", "console.log(process.pid);setInterval(()=>{},1000)"], { parentDeath: ${JSON.stringify(parentDeath)} });
         for await (const l of c.lines()) { console.log(l.line); break; }
         setInterval(() => {}, 1000);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const pid = await new Promise<number>((resolve, reject) => {
      parent.stdout.once("data", (b: Buffer) => resolve(Number(b.toString().trim())));
      parent.once("exit", () => reject(new Error("parent exited early")));
    });
    expect(isAlive(pid)).toBe(true);
    parent.kill("SIGKILL");
    await waitFor(() => !isAlive(pid), { name: "child gone with its parent" });
  });

  it("an abort stops the child; a reason in killNowOn kills it at once", async () => {
    const ac = new AbortController();
    const child = spawnChild(node(`console.log("ready");setInterval(()=>{},1000)`), {
      parentDeath,
      signal: ac.signal,
    });
    expect(await firstLine(child.lines())).toBe("ready");
    ac.abort("cancelled");
    expect(await child.exited).toMatchObject({ signal: "SIGTERM", stoppedBy: "term" });

    const fenced = new AbortController();
    const stubborn = spawnChild(node(IGNORES_TERM), {
      parentDeath,
      signal: fenced.signal,
      killGraceMs: 600_000,
      killNowOn: (reason) => reason === "fenced",
    });
    expect(await firstLine(stubborn.lines())).toBe("ready");
    fenced.abort("fenced");
    // No TERM, no grace: killed at once (the grace is ten minutes).
    expect(await stubborn.exited).toMatchObject({ signal: "SIGKILL", stoppedBy: "kill" });
  });
});

describe("spawnChild output and failures", () => {
  it("yields stdout and stderr lines, cuts an overlong line, keeps a last line without newline", async () => {
    const code = `process.stdout.write("one\\r\\n");process.stderr.write("err\\n");process.stdout.write("x".repeat(5000)+"\\ntwo\\nlast")`;
    const child = spawnChild(node(code), { maxLineChars: 100, parentDeath: "none" });
    const got: Array<[string, string]> = [];
    for await (const { stream, line } of child.lines()) got.push([stream, line]);
    expect(got.filter(([s]) => s === "stdout").map(([, l]) => l)).toEqual([
      "one",
      "x".repeat(100),
      "two",
      "last",
    ]);
    expect(got.filter(([s]) => s === "stderr").map(([, l]) => l)).toEqual(["err"]);
    expect(() => child.lines()).toThrow(/once/);
    expect((await child.exited).exitCode).toBe(0);
  });

  it("passes exactly the env and cwd given, never through a shell", async () => {
    const child = spawnChild(
      node(
        `console.log(JSON.stringify([process.cwd(),process.env.ONLY,process.env.HOME??null,process.argv[1]]))`,
      ).concat("$(echo hi)"),
      {
        cwd: "/tmp",
        env: { ONLY: "yes" },
      },
    );
    const line = await firstLine(child.lines());
    expect(JSON.parse(line)).toEqual(["/tmp", "yes", null, "$(echo hi)"]);
    await child.exited;
  });

  it("reports a program that does not exist as a spawn error with its errno code", async () => {
    const child = spawnChild(["/nonexistent/program"], { parentDeath: "none" });
    expect(await child.exited).toMatchObject({ exitCode: null, signal: null, spawnErrorCode: "ENOENT" });
    expect(child.running).toBe(false);
  });

  it("disposes with await using: the child is stopped at the end of the block", async () => {
    let pid: number | undefined;
    {
      await using child = spawnChild(node(`console.log("ready");setInterval(()=>{},1000)`));
      pid = child.pid;
      expect(await firstLine(child.lines())).toBe("ready");
    }
    expect(isAlive(pid!)).toBe(false);
  });
});
