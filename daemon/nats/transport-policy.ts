/**
 * Where meshd may talk to NATS in the clear. Whoever can read the connection reads prompts and
 * results; whoever can speak on it with the daemon's rights can run tasks. So a NATS that is
 * not on this machine needs both TLS and credentials, unless the operator says `insecure`.
 */
import { MeshError } from "../errors.js";
import type { NatsSettings as NatsConfig } from "./settings.js";

/** Host of `nats://h:p`, `tls://[::1]:p`, or a bare `h:p`. */
export function urlHost(url: string): string {
  const rest = url.includes("://") ? url.slice(url.indexOf("://") + 3) : url;
  const hostPort = rest.replace(/^[^@/]*@/, "").split("/")[0] ?? "";
  if (hostPort.startsWith("[")) return hostPort.slice(1, hostPort.indexOf("]"));
  return hostPort.replace(/:\d*$/, "");
}

export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** True when the connection is TLS for every server (nats.js applies `tls` to all of them). */
export function usesTls(cfg: NatsConfig): boolean {
  return (
    cfg.servers.some((s) => /^(tls|wss):\/\//i.test(s)) ||
    cfg.tlsCaFile !== undefined ||
    cfg.tlsCertFile !== undefined
  );
}

export function hasCredentials(cfg: NatsConfig): boolean {
  return (
    (cfg.user !== undefined && cfg.password !== undefined) ||
    cfg.token !== undefined ||
    cfg.nkeySeedFile !== undefined ||
    cfg.credsFile !== undefined ||
    cfg.tlsCertFile !== undefined
  );
}

/** Throws before any connection is made when the policy above is not met. */
export function checkTransportPolicy(cfg: NatsConfig): void {
  if (cfg.insecure) return;
  const remote = cfg.servers.filter((s) => !isLoopbackHost(urlHost(s)));
  if (remote.length === 0) return;
  const tls = usesTls(cfg);
  const creds = hasCredentials(cfg);
  if (tls && creds) return;
  const missing = [tls ? undefined : "TLS", creds ? undefined : "credentials"].filter(Boolean).join(" and ");
  throw new MeshError(
    "INVALID_ARGUMENT",
    `nats.servers: refusing to connect to ${remote.join(", ")} without ${missing}: ` +
      "NATS is the mesh's trust boundary, and on a network anyone on the path could read prompts and " +
      "results, or take the daemon's credentials and run tasks. " +
      (tls ? "" : "Use a tls:// URL (with --nats-tls-ca if its certificate is not publicly trusted). ") +
      (creds
        ? ""
        : "Give credentials: --nats-creds <file>, --nats-nkey <seed file>, or --nats-user with --nats-password-file. ") +
      "On a network you trust, --insecure (nats.insecure: true) allows it anyway.",
    { field: tls ? "nats.credsFile" : "nats.servers" },
  );
}
