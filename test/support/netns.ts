/**
 * A second "host" for tests: a network namespace joined to this one by a veth pair, with
 * addresses from 198.18.0.0/15 (reserved for network tests). Traffic to it never leaves the
 * machine. Needs root and iproute2; `makeNetns()` resolves undefined where it cannot be made.
 */
import { execFileSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";

export interface Netns {
  name: string;
  /** This side of the veth pair. */
  hostIp: string;
  /** The namespace's address: a non-loopback address a server inside can listen on. */
  nsIp: string;
  remove(): void;
}

const ip = (args: string[]) => execFileSync("/usr/sbin/ip", args, { stdio: ["ignore", "ignore", "pipe"] });

export function makeNetns(): Netns | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = randomBytes(3).toString("hex");
  const name = `mesh-rt-${id}`;
  const [a, b] = [`mrta${id}`, `mrtb${id}`];
  const x = randomInt(0, 256);
  const y = randomInt(0, 64) * 4;
  const hostIp = `198.18.${x}.${y + 1}`;
  const nsIp = `198.18.${x}.${y + 2}`;
  const remove = () => {
    for (const args of [
      ["link", "del", a],
      ["netns", "del", name],
    ]) {
      try {
        ip(args);
      } catch {
        // already gone
      }
    }
  };
  try {
    ip(["netns", "add", name]);
    ip(["link", "add", a, "type", "veth", "peer", "name", b]);
    ip(["link", "set", b, "netns", name]);
    ip(["addr", "add", `${hostIp}/30`, "dev", a]);
    ip(["link", "set", a, "up"]);
    ip(["netns", "exec", name, "ip", "addr", "add", `${nsIp}/30`, "dev", b]);
    ip(["netns", "exec", name, "ip", "link", "set", b, "up"]);
    ip(["netns", "exec", name, "ip", "link", "set", "lo", "up"]);
    return { name, hostIp, nsIp, remove };
  } catch {
    remove();
    return undefined;
  }
}
