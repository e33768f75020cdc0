/**
 * Red team: NATS is the mesh's trust boundary. Each attack here succeeded before NATS was
 * locked: a client without credentials on `mesh up`'s server, a local user without the
 * credentials file, meshd talking to a NATS on another host in the clear, a `tls://` URL
 * that a plaintext server answered. Each is now refused, and the daemon keeps serving.
 */
import { execFile, spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as jwt from "@nats-io/jwt";
import { createUser } from "@nats-io/nkeys";
import { AuthorizationError, connect, nkeyAuthenticator } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileConfig, DAEMON_PERMISSIONS, isMeshError } from "../daemon/index.js";
import { connectionOptions } from "../daemon/nats/connect.js";
import { makeTempDir, NatsServer, waitFor } from "./harness/index.js";
import { type ConfServer, startConfServer } from "./support/conf-server.js";
import { MESH_BIN, REPO_ROOT, spawnMeshd } from "./support/mesh.js";
import { makeNetns, type Netns } from "./support/netns.js";

const run = promisify(execFile);
const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

type Outcome = { code: number; stdout: string; stderr: string };
const cli = (args: string[], env: NodeJS.ProcessEnv): Promise<Outcome> =>
  run(process.execPath, [MESH_BIN, ...args], { env: { ...process.env, NO_COLOR: "1", ...env } }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

/** Submits a command task through the daemon at `stateDir` and waits for it: the daemon still serves. */
async function stillServes(stateDir: string, id: string): Promise<void> {
  const dir = await makeTempDir("rt-spec-");
  const spec = join(dir, "t.yaml");
  await writeFile(spec, `id: ${id}\nrunner: command\nprompt: p\ncommand: [echo, ok]\n`);
  const res = await cli(["submit", spec, "--wait", "--json"], { MESH_STATE_DIR: stateDir });
  expect(res.stderr).toBe("");
  expect(res.code).toBe(0);
}

async function startMeshUp(): Promise<{ info: Record<string, string>; stateDir: string }> {
  const stateDir = await makeTempDir("rt-up-");
  const child = spawn(
    process.execPath,
    [MESH_BIN, "up", "--json", "--state-dir", stateDir, "--nats-port", "0", "--log-level", "warn"],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  cleanups.push(() => child.kill("SIGKILL"));
  let out = "";
  child.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const info = await waitFor(() => (out.includes("\n") ? JSON.parse(out.split("\n")[0]!) : undefined), {
    name: "mesh up ready line",
    timeoutMs: 30_000,
  });
  return { info, stateDir };
}

describe("red team: mesh up's nats-server", () => {
  let up: { info: Record<string, string>; stateDir: string };
  beforeAll(async () => {
    up = await startMeshUp();
  });

  it("refuses a client without credentials, and one with an nkey of its own", async () => {
    await expect(connect({ servers: up.info.nats, reconnect: false })).rejects.toBeInstanceOf(
      AuthorizationError,
    );
    const stranger = createUser();
    await expect(
      connect({
        servers: up.info.nats,
        reconnect: false,
        authenticator: nkeyAuthenticator(stranger.getSeed()),
      }),
    ).rejects.toBeInstanceOf(AuthorizationError);
    await stillServes(up.stateDir, "rt-after-stranger");
  });

  it("keeps its credentials in 0600 files in a 0700 dir, and none on nats-server's argv", async () => {
    expect((await stat(up.stateDir)).mode & 0o777).toBe(0o700);
    const seedFile = up.info.natsNkey!;
    expect(seedFile).toBe(join(up.stateDir, "nats-daemon.nk"));
    for (const f of [seedFile, join(up.stateDir, "nats-server.conf"), join(up.stateDir, "meshd.log")]) {
      expect((await stat(f)).mode & 0o777).toBe(0o600);
    }
    const seed = (await readFile(seedFile, "utf8")).trim();
    const pid = (await run("pgrep", ["-f", `${up.stateDir}/nats-server.conf`])).stdout.trim().split("\n")[0]!;
    const argv = await readFile(`/proc/${pid}/cmdline`, "utf8");
    expect(argv).toContain("nats-server.conf");
    expect(argv).not.toContain(seed);
    expect(argv).not.toContain(seed.slice(0, 20));
  });

  it.runIf(process.getuid?.() === 0)(
    "a local user without the file can neither read it, nor the data, nor connect",
    async () => {
      // A world-readable script dir: `nobody` must be able to run the probe, not read our files.
      const dir = await mkdtemp(join(tmpdir(), "rt-nobody-"));
      await chmod(dir, 0o755);
      const probe = join(dir, "probe.mjs");
      // The NATS protocol by hand (node:net only): the repository, and so nats.js, may lie in a
      // folder `nobody` cannot read (a clone under /root or mktemp -d).
      await writeFile(
        probe,
        `import { readdirSync, readFileSync } from "node:fs";
import { connect as tcp } from "node:net";
const out = { uid: process.getuid() };
try { readFileSync(process.argv[2]); out.read = "ok"; } catch (e) { out.read = e.code; }
try { readdirSync(process.argv[4]); out.store = "ok"; } catch (e) { out.store = e.code; }
const url = new URL(process.argv[3]);
out.connect = await new Promise((resolve) => {
  const sock = tcp(Number(url.port), url.hostname);
  let buf = "";
  let sent = false;
  sock.on("data", (d) => {
    buf += d.toString();
    if (!sent && buf.includes("\\r\\n")) {
      sent = true;
      sock.write('CONNECT {"verbose":false,"pedantic":false,"protocol":1}\\r\\nPING\\r\\n');
    }
    if (/-ERR '?Authorization Violation/i.test(buf)) { sock.destroy(); resolve("AuthorizationError"); }
    else if (buf.includes("PONG")) { sock.destroy(); resolve("ok"); }
  });
  sock.on("error", (e) => resolve(e.code));
  sock.on("close", () => resolve("closed: " + buf.trim()));
});
process.stdout.write(JSON.stringify(out));
`,
      );
      await chmod(probe, 0o644);
      const { stdout } = await run("/usr/bin/setpriv", [
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        process.execPath,
        probe,
        up.info.natsNkey!,
        up.info.nats!,
        join(up.stateDir, "nats"),
      ]);
      const out = JSON.parse(stdout) as { uid: number; read: string; store: string; connect: string };
      expect(out.uid).not.toBe(0);
      expect(out.read).toBe("EACCES");
      // JetStream's files (task prompts and results) are out of reach too.
      expect(out.store).toBe("EACCES");
      expect(out.connect).toBe("AuthorizationError");
      await stillServes(up.stateDir, "rt-after-nobody");
    },
  );

  it("a second meshd on loopback finds the local credentials by itself", async () => {
    const d = await spawnMeshd(["--nats", up.info.nats!, "--log-level", "warn", "--http-port", "0"], {
      MESH_STATE_DIR: up.stateDir,
    });
    cleanups.push(() => d.kill("SIGKILL"));
    const res = await waitFor(
      async () => {
        const r = await cli(["workers", "--json"], { MESH_STATE_DIR: d.stateDir });
        return r.code === 0 ? (JSON.parse(r.stdout) as { workers: unknown[] }) : undefined;
      },
      { name: "second meshd serves", timeoutMs: 20_000 },
    );
    expect(res.workers.length).toBe(2);
    d.kill("SIGTERM");
    expect((await d.exited).code).toBe(0);
  });
});

describe("red team: meshd and a NATS on another host", () => {
  const base = { nats: { servers: ["nats://198.18.0.9:4222"] } };
  const policyError = (input: unknown) => {
    try {
      connectionOptions(compileConfig(input).nats, "t");
      return undefined;
    } catch (err) {
      return err;
    }
  };

  it("refuses plaintext or credential-less remote servers before connecting, naming the field", () => {
    const plain = policyError(base);
    expect(isMeshError(plain, "INVALID_ARGUMENT")).toBe(true);
    expect((plain as { field: string }).field).toBe("nats.servers");
    const tlsNoCreds = policyError({ nats: { servers: ["tls://nats.example:4222"] } });
    expect((tlsNoCreds as { field: string }).field).toBe("nats.credsFile");
    // A password in the clear is exactly what must not cross a network.
    const credsNoTls = policyError({ nats: { ...base.nats, user: "u", password: "p" } });
    expect((credsNoTls as { field: string }).field).toBe("nats.servers");
    // A host name is not loopback, however it resolves (DNS can point anywhere).
    expect(policyError({ nats: { servers: ["nats://vm:4222"] } })).toBeDefined();
    expect(policyError({ nats: { ...base.nats, insecure: true } })).toBeUndefined();
    expect(policyError({ nats: { servers: ["nats://127.0.0.2:4222", "localhost:4222"] } })).toBeUndefined();
  });

  it("a tls:// URL always asks for TLS, also with no TLS files", () => {
    const opts = connectionOptions(compileConfig({ nats: { servers: ["tls://127.0.0.1:4222"] } }).nats, "t");
    expect(opts.tls).toEqual({});
    const plain = connectionOptions(
      compileConfig({ nats: { servers: ["nats://127.0.0.1:4222"] } }).nats,
      "t",
    );
    expect(plain.tls).toBeUndefined();
    // In the clear, gossiped cluster addresses are not followed.
    expect(plain.ignoreClusterUpdates).toBe(true);
  });

  it("a tls:// URL against a plaintext server fails without sending the password", async () => {
    const server = await NatsServer.start({
      // trace: the server logs every CONNECT it receives.
      extraConfig: 'trace: true\nauthorization { users: [ { user: "meshd", password: "hunter2-secret" } ] }',
    });
    const connects = () => server.logs.filter((l) => l.includes("<<- [CONNECT")).length;
    cleanups.push(() => server.cleanup());
    const dir = await makeTempDir("rt-pass-");
    await writeFile(join(dir, "pass"), "hunter2-secret\n", { mode: 0o600 });
    const url = server.url.replace("nats://", "tls://");
    const d = await spawnMeshd([
      "--nats",
      url,
      "--nats-user",
      "meshd",
      "--nats-password-file",
      join(dir, "pass"),
    ]);
    cleanups.push(() => d.kill("SIGKILL"));
    expect((await d.exited).code).toBe(3);
    expect(connects()).toBe(0);
    // A plaintext client's CONNECT (with the password) would have shown up in the trace.
    const probe = await connect({ servers: server.url, user: "meshd", pass: "hunter2-secret" });
    await probe.close();
    await waitFor(() => connects() === 1, { name: "the probe's CONNECT traced" });
    // The same credentials over nats:// do work: the refusal was TLS, not the password.
    const ok = await spawnMeshd([
      "--nats",
      server.url,
      "--nats-user",
      "meshd",
      "--nats-password-file",
      join(dir, "pass"),
      "--runners",
      "command",
    ]);
    cleanups.push(() => ok.kill("SIGKILL"));
    await waitFor(
      async () => (await cli(["workers", "--json"], { MESH_STATE_DIR: ok.stateDir })).code === 0,
      { name: "meshd with password serves", timeoutMs: 20_000 },
    );
    await stillServes(ok.stateDir, "rt-after-tls-plain");
  });

  it("--nats-creds connects with a .creds file from an operator-mode server (JWT + nkey seed)", async () => {
    const dir = await makeTempDir("rt-creds-");
    const op = await operatorMode(dir);
    const server = await startConfServer(op.config);
    cleanups.push(() => server.stop());
    const bad = join(dir, "bad.creds");
    await writeFile(bad, "not a creds file\n");
    const refused = await spawnMeshd(["--nats", server.url, "--nats-creds", bad]);
    expect((await refused.exited).code).toBe(2);
    // A user of an account the operator never signed is not let in.
    const stranger = await spawnMeshd(["--nats", server.url, "--nats-creds", op.strangerCreds]);
    expect((await stranger.exited).code).toBe(3);
    const d = await spawnMeshd(["--nats", server.url, "--runners", "command"], { NATS_CREDS: op.creds });
    cleanups.push(() => d.kill("SIGKILL"));
    await waitFor(async () => (await cli(["workers", "--json"], { MESH_STATE_DIR: d.stateDir })).code === 0, {
      name: "meshd with NATS_CREDS serves",
      timeoutMs: 20_000,
    });
    await stillServes(d.stateDir, "rt-creds");
  });

  it("takes NATS_URL from the environment, a --nats flag over it, and the environment over the config file", async () => {
    const remote = "nats://198.18.0.9:4222";
    // Refused by the transport policy, so NATS_URL was read (the default would be loopback).
    const fromEnv = await spawnMeshd([], { NATS_URL: remote });
    expect((await fromEnv.exited).code).toBe(2);
    const server = await NatsServer.start();
    cleanups.push(() => server.cleanup());
    const flagWins = await spawnMeshd(["--nats", server.url, "--runners", "command"], { NATS_URL: remote });
    cleanups.push(() => flagWins.kill("SIGKILL"));
    const dir = await makeTempDir("rt-env-");
    await writeFile(join(dir, "meshd.yaml"), `nats: { servers: ["${remote}"] }\n`);
    const envWins = await spawnMeshd(["-c", join(dir, "meshd.yaml"), "--runners", "command"], {
      NATS_URL: server.url,
    });
    cleanups.push(() => envWins.kill("SIGKILL"));
    for (const d of [flagWins, envWins]) {
      await waitFor(
        async () => (await cli(["workers", "--json"], { MESH_STATE_DIR: d.stateDir })).code === 0,
        {
          name: "meshd serves",
          timeoutMs: 20_000,
        },
      );
    }
  });

  const netns: Netns | undefined = makeNetns();
  if (netns) cleanups.push(() => netns.remove());

  describe.runIf(netns)("against a server in another network namespace", () => {
    let plain: ConfServer;
    let locked: ConfServer;
    let files: { ca: string; seed: string };
    beforeAll(async () => {
      const dir = await makeTempDir("rt-ns-");
      const ip = netns!.nsIp;
      const plainConf = join(dir, "plain.conf");
      await writeFile(
        plainConf,
        `listen: "${ip}:-1"\ndebug: true\njetstream { store_dir: ${JSON.stringify(join(dir, "p"))} }\n`,
      );
      plain = await startConfServer(plainConf, { netns: netns!.name });
      cleanups.push(() => plain.stop());
      // The deploy script makes the certificate, with the namespace's address as an extra name.
      await run("sh", [join(REPO_ROOT, "deploy/nats/make-certs.sh"), join(dir, "certs"), ip]);
      const cert = {
        ca: join(dir, "certs/ca.pem"),
        cert: join(dir, "certs/server.pem"),
        key: join(dir, "certs/server.key"),
      };
      const user = createUser();
      const seed = join(dir, "daemon.nk");
      await writeFile(seed, new TextDecoder().decode(user.getSeed()), { mode: 0o600 });
      const lockedConf = join(dir, "locked.conf");
      await writeFile(
        lockedConf,
        `listen: "${ip}:-1"\njetstream { store_dir: ${JSON.stringify(join(dir, "l"))} }\n` +
          `tls { cert_file: ${JSON.stringify(cert.cert)}, key_file: ${JSON.stringify(cert.key)} }\n` +
          `authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }\n`,
      );
      locked = await startConfServer(lockedConf, { netns: netns!.name, scheme: "tls" });
      cleanups.push(() => locked.stop());
      files = { ca: cert.ca, seed };
    });

    it("meshd refuses a plaintext server there (exit 2, no connection) and accepts it with --insecure", async () => {
      const refused = await spawnMeshd(["--nats", plain.url]);
      expect((await refused.exited).code).toBe(2);
      expect(plain.logs.some((l) => /Client connection created/.test(l))).toBe(false);
      const d = await spawnMeshd(["--nats", plain.url, "--insecure", "--runners", "command"]);
      cleanups.push(() => d.kill("SIGKILL"));
      await waitFor(
        async () => (await cli(["workers", "--json"], { MESH_STATE_DIR: d.stateDir })).code === 0,
        {
          name: "insecure meshd serves",
          timeoutMs: 20_000,
        },
      );
      await stillServes(d.stateDir, "rt-insecure");
      // The log line the refusal was checked against does appear once a client connects.
      expect(plain.logs.some((l) => /Client connection created/.test(l))).toBe(true);
    });

    it("meshd connects over TLS with an nkey there, and not without the nkey", async () => {
      const without = await spawnMeshd(["--nats", locked.url, "--nats-tls-ca", files.ca]);
      expect((await without.exited).code).toBe(2);
      const d = await spawnMeshd([
        "--nats",
        locked.url,
        "--nats-tls-ca",
        files.ca,
        "--nats-nkey",
        files.seed,
        "--runners",
        "command",
      ]);
      cleanups.push(() => d.kill("SIGKILL"));
      await waitFor(
        async () => (await cli(["workers", "--json"], { MESH_STATE_DIR: d.stateDir })).code === 0,
        {
          name: "TLS meshd serves",
          timeoutMs: 20_000,
        },
      );
      await stillServes(d.stateDir, "rt-tls-remote");
    });
  });
});

/** An operator-mode nats-server config (memory resolver) and .creds files, as `nsc` would make them. */
async function operatorMode(dir: string): Promise<{ config: string; creds: string; strangerCreds: string }> {
  const operator = jwt.createOperator();
  const sys = jwt.createAccount();
  const mesh = jwt.createAccount();
  const unlimited = { subs: -1, conn: -1, leaf: -1, data: -1, payload: -1, imports: -1, exports: -1 };
  const jsLimits = { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
  const sysJwt = await jwt.encodeAccount("SYS", sys, { limits: { ...unlimited } }, { signer: operator });
  const meshJwt = await jwt.encodeAccount(
    "MESH",
    mesh,
    { limits: { ...unlimited, wildcards: true, ...jsLimits } },
    { signer: operator },
  );
  const opJwt = await jwt.encodeOperator("mesh-test", operator, { system_account: sys.getPublicKey() });
  const userCreds = async (account: ReturnType<typeof jwt.createAccount>, file: string) => {
    const user = jwt.createUser();
    const token = await jwt.encodeUser("meshd", user, account, {
      pub: { allow: DAEMON_PERMISSIONS.publish.allow },
      sub: { allow: DAEMON_PERMISSIONS.subscribe.allow },
      subs: -1,
      data: -1,
      payload: -1,
    });
    await writeFile(file, jwt.fmtCreds(token, user), { mode: 0o600 });
    return file;
  };
  const config = join(dir, "operator.conf");
  await writeFile(
    config,
    `listen: "127.0.0.1:-1"\noperator: ${opJwt}\nsystem_account: ${sys.getPublicKey()}\nresolver: MEMORY\n` +
      `resolver_preload: {\n  ${sys.getPublicKey()}: ${sysJwt}\n  ${mesh.getPublicKey()}: ${meshJwt}\n}\n` +
      `jetstream { store_dir: ${JSON.stringify(join(dir, "store"))} }\n`,
  );
  return {
    config,
    creds: await userCreds(mesh, join(dir, "meshd.creds")),
    strangerCreds: await userCreds(jwt.createAccount(), join(dir, "stranger.creds")),
  };
}
