/**
 * `mesh hub init|start|list|revoke`, `mesh invite <name>` (on the hub machine) and
 * `mesh join <string>` (on a machine that joins). The implementations load on use: they pull
 * in NATS and openssl helpers every other command does without.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Command, InvalidArgumentError, Option } from "commander";
import { parseWholeNumber } from "../../daemon/lite.js";
import type { Ctx } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { run } from "../run.js";

const port = (v: string): number => {
  const n = parseWholeNumber(v);
  if (n < 1 || n > 65535) throw new InvalidArgumentError(`"${v}" is not a port (1-65535)`);
  return n;
};
const collect = (v: string, prev: string[]): string[] => [...prev, ...v.split(",").filter(Boolean)];

const dirOption = () =>
  new Option("--dir <dir>", "the hub directory (default ~/.agent-mesh-hub)").env("MESH_HUB_DIR");

interface InitFlags {
  dir?: string;
  cluster: number;
  host: string[];
  domain: string;
  port: number;
  leafPort: number;
  routePort: number;
  force?: boolean;
}

async function init(ctx: Ctx, f: InitFlags): Promise<void> {
  const { hubInit, writeReadme, hubDirOf, clientUrls, leafUrls, colonHex } = await import("../hub/index.js");
  const dir = hubDirOf(f.dir);
  const s = await hubInit({
    dir,
    cluster: f.cluster,
    hosts: f.host,
    domain: f.domain,
    port: f.port,
    leafPort: f.leafPort,
    routePort: f.routePort,
    force: Boolean(f.force),
  });
  await writeReadme(dir, s);
  if (ctx.json) {
    return ctx.printJson({
      dir,
      nodes: s.nodes,
      urls: clientUrls(s),
      leafUrls: leafUrls(s),
      domain: s.domain,
      caSha256: s.caSha256,
    });
  }
  ctx.print(
    `hub made in ${dir} (${s.nodes === 1 ? "one node" : `${s.nodes}-node cluster`}, JetStream domain ${s.domain})`,
  );
  ctx.print(`  clients  ${clientUrls(s).join(", ")}`);
  ctx.print(`  leafs    ${leafUrls(s).join(", ")}`);
  ctx.print(`  CA       sha256 ${colonHex(s.caSha256)}`);
  ctx.print("next:");
  for (let n = 1; n <= s.nodes; n++)
    ctx.print(`  mesh hub start --dir ${dir}${s.nodes > 1 ? ` --node ${n}` : ""}`);
  ctx.print(`  mesh invite <machine name> --dir ${dir}    (prints the line to give \`mesh join\` there)`);
}

async function start(_ctx: Ctx, f: { dir?: string; node: number }): Promise<void> {
  const { hubStart, hubDirOf } = await import("../hub/index.js");
  process.exitCode = await hubStart(hubDirOf(f.dir), f.node);
}

function reloadNote(ctx: Ctx, r: { reloaded: number[]; nodes: number }): void {
  const msg =
    r.reloaded.length === r.nodes
      ? "the hub reloaded its users"
      : r.reloaded.length > 0
        ? `reloaded node(s) ${r.reloaded.join(",")} here; copy users.conf to the other nodes and reload them (nats-server --signal reload)`
        : "no node of the hub runs on this machine: it reads the users when it starts (or copy users.conf to the nodes and reload them)";
  process.stderr.write(`${msg}\n`);
  void ctx;
}

async function invite(ctx: Ctx, name: string, f: { dir?: string }): Promise<void> {
  const { hubInvite, hubDirOf } = await import("../hub/index.js");
  const r = await hubInvite(hubDirOf(f.dir), name);
  if (ctx.json) return ctx.printJson({ name, join: r.joinString, reloaded: r.reloaded });
  ctx.print(r.joinString);
  reloadNote(ctx, r);
  process.stderr.write(
    `on ${name}: mesh join <that line>  (a secret: it lets its holder join the mesh as ${name}; \`mesh hub revoke ${name}\` takes it back)\n`,
  );
}

async function revoke(ctx: Ctx, name: string, f: { dir?: string }): Promise<void> {
  const { hubRevoke, hubDirOf } = await import("../hub/index.js");
  const r = await hubRevoke(hubDirOf(f.dir), name);
  if (ctx.json) return ctx.printJson({ name, revoked: true, reloaded: r.reloaded });
  ctx.print(`${name} revoked: its connections are closed and its key refused`);
  reloadNote(ctx, r);
}

async function list(ctx: Ctx, f: { dir?: string }): Promise<void> {
  const { hubDirOf, readHubState } = await import("../hub/index.js");
  const s = readHubState(hubDirOf(f.dir));
  const machines = s.machines.map((m) => ({ name: m.name, nkey: m.nkey, invitedAt: m.invitedAt }));
  if (ctx.json) return ctx.printJson({ machines, revoked: s.revoked });
  if (machines.length === 0) ctx.print("no machines invited yet (`mesh invite <name>`)");
  for (const m of machines) ctx.print(`${m.name}  ${m.nkey}  invited ${m.invitedAt}`);
  for (const r of s.revoked) ctx.print(`${r.name}  revoked ${r.at}`);
}

async function join(ctx: Ctx, text: string, f: { stateDir?: string; force?: boolean }): Promise<void> {
  const { joinHub } = await import("../hub/index.js");
  const { defaultStateDir } = await import("../../daemon/index.js");
  let value = text;
  if (text === "-") {
    try {
      value = readFileSync(0, "utf8");
    } catch (err) {
      throw new CliError(
        EXIT.USAGE,
        `join string: cannot read stdin (${(err as Error).message})`,
        "INVALID_ARGUMENT",
        {
          field: "join",
        },
      );
    }
  }
  const stateDir = resolve(f.stateDir ?? defaultStateDir());
  const r = await joinHub({ text: value, stateDir, force: Boolean(f.force) });
  if (ctx.json) {
    return ctx.printJson({ name: r.hub.name, urls: r.hub.urls, domain: r.hub.domain, stateDir, dir: r.dir });
  }
  ctx.print(
    `joined the hub at ${r.answeredBy} as ${r.hub.name} (CA pinned; credentials in ${r.dir}, mode 0600)`,
  );
  ctx.print(
    "now: `mesh up` (this machine as a TLS client of the hub), `mesh up --leaf` (through a local leaf",
  );
  ctx.print("nats-server), or `meshd` with no --nats (it uses the joined hub)");
}

export function hubCommand(): Command {
  const hub = new Command("hub").description(
    "run a NATS hub for machines that join by dialing out (TLS, a key per machine)",
  );
  hub
    .command("init")
    .description(
      "make a hub: its own CA, server certificate, admin key, nats-server configs (one node or a cluster)",
    )
    .addOption(dirOption())
    .addOption(
      new Option("--cluster <n>", "nodes: 1, or 3 (or 5) for a cluster")
        .argParser(parseWholeNumber)
        .default(1),
    )
    .option(
      "--host <name/ip>",
      "a name or address machines dial (repeatable; for a cluster one per node, in order; default: this machine's addresses and name)",
      collect,
      [],
    )
    .option("--domain <name>", "the hub's JetStream domain (leaf nodes use it)", "hub")
    .addOption(new Option("--port <port>", "client port (TLS)").argParser(port).default(4222))
    .addOption(new Option("--leaf-port <port>", "leaf-node port (TLS)").argParser(port).default(7422))
    .addOption(
      new Option("--route-port <port>", "cluster route port (mutual TLS)").argParser(port).default(6222),
    )
    .option("--force", "replace a hub in --dir (every machine must join again)")
    .action(run<[InitFlags]>((ctx, f) => init(ctx, f)));
  hub
    .command("start")
    .description("run the hub's nats-server (one node) in the foreground")
    .addOption(dirOption())
    .addOption(new Option("--node <n>", "which node of a cluster").argParser(parseWholeNumber).default(1))
    .action(run<[{ dir?: string; node: number }]>((ctx, f) => start(ctx, f)));
  hub
    .command("revoke <name>")
    .description("take a machine's credentials back: the hub closes its connections and refuses its key")
    .addOption(dirOption())
    .action(run<[string, { dir?: string }]>((ctx, name, f) => revoke(ctx, name, f)));
  hub
    .command("list")
    .description("the machines invited (and revoked)")
    .addOption(dirOption())
    .action(run<[{ dir?: string }]>((ctx, f) => list(ctx, f)));
  return hub;
}

export function inviteCommand(): Command {
  return new Command("invite")
    .argument("<name>", "the machine's name (1-64 of A-Z a-z 0-9 _ -)")
    .description("on the hub machine: add a machine's user and print its one-line join string")
    .addOption(dirOption())
    .addHelpText(
      "after",
      `
Prints one line: meshjoin1:<base64url JSON> with the hub's URLs, its JetStream domain, the
sha256 of its CA, and the machine's nkey seed and leaf password. Give it to \`mesh join\` on
that machine (it is a secret). A running hub on this machine reloads its users at once.
--json: {"name","join","reloaded"}`,
    )
    .action(run<[string, { dir?: string }]>((ctx, name, f) => invite(ctx, name, f)));
}

export function joinCommand(): Command {
  return new Command("join")
    .argument("<string>", "the line `mesh invite` printed on the hub (or - to read it from stdin)")
    .description(
      "join a hub: pin its CA in a TLS handshake, check the key, store URL, CA and key for mesh up / meshd",
    )
    .addOption(
      new Option("--state-dir <dir>", "the daemon's state dir to store them in").env("MESH_STATE_DIR"),
    )
    .option("--force", "replace a hub this state dir joined before")
    .addHelpText(
      "after",
      `
Stores <state dir>/join/{hub.json,ca.pem,machine.nk,leaf.pass} (0600 in a 0700 dir) only after
the hub presented a certificate of the pinned CA and accepted the key. A bad string exits 2,
an unreachable hub 3, a certificate that does not match the pin 5; nothing is stored then.
\`mesh join -\` reads the string from stdin (keeps it out of \`ps\`).
--json: {"name","urls","domain","stateDir","dir"}`,
    )
    .action(run<[string, { stateDir?: string; force?: boolean }]>((ctx, text, f) => join(ctx, text, f)));
}
