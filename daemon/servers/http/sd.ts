/**
 * Prometheus HTTP service discovery (`http_sd_configs`): a JSON list of target groups, one per
 * live daemon with an HTTP side. Labels are `__meta_agentmesh_*`: Prometheus keeps them for
 * relabelling and drops them afterwards, so they never collide with the `worker` label the
 * metrics carry themselves (deploy/prometheus/prometheus.yml turns host and pools into labels).
 */
import type { WorkerInfo } from "../../registry/index.js";

export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

const META = "__meta_agentmesh_";

export function targetGroups(workers: readonly WorkerInfo[]): TargetGroup[] {
  const out: TargetGroup[] = [];
  const seen = new Set<string>();
  for (const w of workers) {
    if (!w.httpUrl) continue;
    let url: URL;
    try {
      url = new URL(w.httpUrl);
    } catch {
      continue; // a malformed URL is not a target
    }
    const port = url.port || (url.protocol === "https:" ? "443" : "80");
    const address = `${url.hostname}:${port}`;
    if (seen.has(address)) continue;
    seen.add(address);
    const labels: Record<string, string> = {
      [`${META}worker`]: w.name,
      [`${META}worker_id`]: w.workerId,
      [`${META}host`]: w.host,
      // Prometheus' convention for list-valued meta labels: comma-joined with outer commas.
      [`${META}pools`]: `,${w.pools.join(",")},`,
      [`${META}version`]: w.version,
      [`${META}draining`]: w.draining ? "true" : "false",
    };
    if (url.protocol === "https:") labels.__scheme__ = "https";
    const prefix = url.pathname.replace(/\/+$/, "");
    if (prefix) labels.__metrics_path__ = `${prefix}/metrics`;
    out.push({ targets: [address], labels });
  }
  return out;
}

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]", ""]);

/**
 * The base URL other daemons and Prometheus reach this daemon at: `advertise` when set
 * (`host:port`, `host` for the bound port, or a full URL for a proxy), else the bound address,
 * with a wildcard bind replaced by the machine's host name.
 */
export function advertisedUrl(
  opts: { bindHost: string; port: number; advertise?: string | undefined; tls?: boolean },
  machineHost: string,
): string {
  const scheme = opts.tls ? "https" : "http";
  const a = opts.advertise?.trim();
  if (a) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) return a.replace(/\/+$/, "");
    if (/^(\[[^\]]+\]|[^:]+):\d+$/.test(a)) return `${scheme}://${a}`;
    return `${scheme}://${bracket(a)}:${opts.port}`;
  }
  const host = WILDCARD_HOSTS.has(opts.bindHost) ? machineHost : opts.bindHost;
  return `${scheme}://${bracket(host)}:${opts.port}`;
}

/** IPv6 literals need brackets in a URL. */
const bracket = (host: string): string => (host.includes(":") && !host.startsWith("[") ? `[${host}]` : host);
