// Prints the raw records of the given task ids from the `mesh-tasks` bucket as one JSON object
// (id -> record), read with plain nats.js, no daemon code: the independent checker's input when
// the hub is only reachable from inside a test host (TLS, the host's joined CA and nkey).
//   node dump-kv.mjs <tls url> <ca file> <nkey seed file> <id...>
// With the single id `--replicas` it prints every stream's replica count instead.
import { readFileSync } from "node:fs";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, nkeyAuthenticator } from "@nats-io/transport-node";

const [url, caFile, seedFile, ...ids] = process.argv.slice(2);
const seed = new TextEncoder().encode(readFileSync(seedFile, "utf8").trim());
const nc = await connect({ servers: url, tls: { caFile }, authenticator: nkeyAuthenticator(seed) });
const out = {};
if (ids[0] === "--replicas") {
  for await (const si of (await jetstreamManager(nc)).streams.list())
    out[si.config.name] = si.config.num_replicas;
  ids.length = 0;
}
const kv = await new Kvm(nc).open("mesh-tasks");
for (const id of ids) {
  const e = await kv.get(id);
  if (e && e.operation === "PUT") out[id] = JSON.parse(new TextDecoder().decode(e.value));
}
process.stdout.write(JSON.stringify(out));
await nc.close();
