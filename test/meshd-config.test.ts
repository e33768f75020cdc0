/**
 * meshd as a user starts it: a config file, flags overriding it, validation errors that name
 * the field (exit 2), and every NATS auth option against a real nats-server that requires it.
 */
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { createUser } from "@nats-io/nkeys";
import { afterAll, describe, expect, it } from "vitest";
import { MESHD_EXIT } from "../daemon/exit-codes.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { MESHD_BIN, type MeshdProcess, openClient, spawnMeshd } from "./support/mesh.js";
import { caSignedCert } from "./support/tls.js";

const run = promisify(execFile);
const servers: NatsServer[] = [];
const procs: MeshdProcess[] = [];
afterAll(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await Promise.allSettled(servers.map((s) => s.cleanup()));
});

async function meshdFails(args: string[], env: NodeJS.ProcessEnv = {}) {
  const stateDir = await makeTempDir("meshd-bad-");
  return run(process.execPath, [MESHD_BIN, "--state-dir", stateDir, ...args], {
    env: { ...process.env, ...env },
    timeout: 30_000,
  }).then(
    (r) => ({ code: 0, stderr: r.stderr }),
    (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
  );
}

async function config(text: string): Promise<string> {
  const file = join(await makeTempDir("cfg-"), "meshd.yaml");
  await writeFile(file, text);
  return file;
}

describe("meshd configuration", () => {
  it("refuses bad input with the field named and exit 2, before connecting anywhere", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--slots", "many"], /--slots.*not a whole number/],
      [["--labels", "gpu"], /"gpu" is not k=v/],
      [["--pools", "bad pool"], /pools\.0: pool names are/],
      [["--lease", "200ms"], /lease: must be at least 1s/],
      [["--lease", "soon"], /lease: "soon" is not a duration/],
      [["--task-retention", "a while"], /taskRetention: "a while" is not a duration or "forever"/],
      [["-c", await config("slots: 2\nslotz: 3\n")], /unknown option "slotz"/],
      [
        ["-c", await config("nats: { servers: [nats://x:1], passwrd: y }\n")],
        /nats\.passwrd|unknown option "passwrd"/,
      ],
      [["-c", await config("slots: [\n")], /not valid YAML/],
      [["-c", "/nonexistent/meshd.yaml"], /cannot read/],
      [["--grpc-tcp", "127.0.0.1:7443"], /grpc\.tcp\.tlsCertFile/],
      [["--nats-password-file", "/nonexistent/pw"], /cannot read \/nonexistent\/pw/],
      // Durations a timer cannot hold (setTimeout's limit is 2^31-1 ms, about 24.8 days).
      [["--lease", "30d"], /lease: "30d" is longer than the limit of 24d/],
      [["-c", await config("taskTimeout: 25d\n")], /taskTimeout: "25d" is longer than the limit/],
      [
        ["-c", await config("claude: { hangTimeout: 9999999999 }\n")],
        /claude\.hangTimeout: .* longer than the limit/,
      ],
      // Ceilings: the operator's default mode above its own ceiling, and env names no task may set.
      [
        [
          "-c",
          await config("claude: { permissionMode: bypassPermissions, maxPermissionMode: acceptEdits }\n"),
        ],
        /claude\.maxPermissionMode: "acceptEdits" is below claude\.permissionMode "bypassPermissions"/,
      ],
      [
        ["-c", await config("taskEnv: { allow: [TASK_*, LD_PRELOAD] }\n")],
        /taskEnv\.allow\.1: "LD_PRELOAD" can never come from a task/,
      ],
      [
        ["-c", await config('taskEnv: { allow: ["A B"] }\n')],
        /taskEnv\.allow\.0: "A B" is not a NAME, a PREFIX\* or \*/,
      ],
      [["-c", await config("claude: { maxPermissionMode: yolo }\n")], /claude\.maxPermissionMode/],
      // A bad name as a record key says what names may be, not zod's "Invalid key in record".
      [
        ["-c", await config('quota: { resources: { "lab api": { capacity: 2 } } }\n')],
        /quota\.resources\.lab api: the name "lab api" is not allowed: resource names are 1-64 of/,
      ],
    ];
    for (const [args, re] of cases) {
      const res = await meshdFails(["--nats", "nats://127.0.0.1:1", ...args]);
      expect(res.code, `${args.join(" ")}: ${res.stderr}`).toBe(2);
      expect(res.stderr).toMatch(re);
      expect(res.stderr.trim().split("\n"), res.stderr).toHaveLength(1);
    }
  });

  it("exits 3 with a hint when NATS cannot be reached", async () => {
    const res = await meshdFails(["--nats", "nats://127.0.0.1:1"]);
    expect(res.code).toBe(3);
    expect(res.stderr).toMatch(/cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/);
  });

  it("lists its exit codes in --help, from the one table its exits use", async () => {
    const { stdout } = await run(process.execPath, [MESHD_BIN, "--help"], { timeout: 30_000 });
    for (const code of Object.values(MESHD_EXIT)) expect(stdout).toMatch(new RegExp(`^  ${code} +\\S`, "m"));
    expect(MESHD_EXIT).toMatchObject({ OK: 0, USAGE: 2, UNAVAILABLE: 3 });
  });

  it("takes a config file and lets flags override it", async () => {
    const nats = await NatsServer.start();
    servers.push(nats);
    const file = await config(
      `nats: { servers: ["${nats.url}"] }\nname: from-config\npools: [cfg]\nlabels: { zone: a }\nslots: 3\npresenceInterval: 500ms\n`,
    );
    const p = await spawnMeshd(["-c", file, "--slots", "5", "--no-http"]);
    procs.push(p);
    const client = await openClient(nats.url);
    try {
      const w = await waitFor(
        async () => (await client.api.listWorkers()).find((x) => x.name === "from-config"),
        {
          name: "configured worker listed",
          timeoutMs: 20_000,
        },
      );
      expect(w).toMatchObject({ pools: ["cfg"], labels: { zone: "a" }, slotsTotal: 5 });
      // A daemon killed with SIGKILL leaves discovery within about three presence periods.
      p.kill("SIGKILL");
      await waitFor(async () => !(await client.api.listWorkers()).some((x) => x.workerId === w.workerId), {
        name: "killed worker gone from discovery",
        timeoutMs: 10_000,
      });
    } finally {
      await client.close();
    }
  });
});

describe("meshd NATS authentication", () => {
  async function authServer(auth: string): Promise<NatsServer> {
    const s = await NatsServer.start({ extraConfig: auth });
    servers.push(s);
    return s;
  }

  async function startsAndJoins(args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
    const p = await spawnMeshd([...args, "--no-http", "--log-level", "info"], env);
    procs.push(p);
    await waitFor(() => p.stderr().includes("meshd started"), {
      name: `meshd started (${p.stderr().slice(-300)})`,
      timeoutMs: 20_000,
    });
    p.kill("SIGTERM");
    expect((await p.exited).code).toBe(0);
  }

  it("user/password from a file or the environment; a wrong password is refused clearly", async () => {
    const s = await authServer(`authorization { user: mesh, password: "s3cret-pw" }`);
    const pw = join(await makeTempDir(), "pw");
    await writeFile(pw, "s3cret-pw\n");
    await startsAndJoins(["--nats", s.url, "--nats-user", "mesh", "--nats-password-file", pw]);
    await startsAndJoins(["--nats", s.url, "--nats-user", "mesh"], { MESH_NATS_PASSWORD: "s3cret-pw" });
    const bad = await meshdFails(["--nats", s.url, "--nats-user", "mesh"], { MESH_NATS_PASSWORD: "wrong" });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/cannot connect to NATS.*(auth|Authorization)/i);
    expect(bad.stderr).not.toContain("wrong");
  });

  it("token", async () => {
    const s = await authServer(`authorization { token: "tok-123456" }`);
    const tok = join(await makeTempDir(), "tok");
    await writeFile(tok, "tok-123456");
    await startsAndJoins(["--nats", s.url, "--nats-token-file", tok]);
  });

  it("nkey seed file", async () => {
    const user = createUser();
    const s = await authServer(`authorization { users: [ { nkey: ${user.getPublicKey()} } ] }`);
    const seed = join(await makeTempDir(), "user.nk");
    await writeFile(seed, new TextDecoder().decode(user.getSeed()));
    await startsAndJoins(["--nats", s.url, "--nats-nkey", seed]);
  });

  it("TLS with a CA file", async () => {
    const dir = await makeTempDir("tls-");
    const { ca, cert, key } = caSignedCert(dir);
    const s = await authServer(`tls { cert_file: "${cert}", key_file: "${key}" }`);
    await startsAndJoins(["--nats", `tls://127.0.0.1:${s.port}`, "--nats-tls-ca", ca]);
    const untrusted = await meshdFails(["--nats", `tls://127.0.0.1:${s.port}`]);
    expect(untrusted.code).toBe(3);
  });
});
