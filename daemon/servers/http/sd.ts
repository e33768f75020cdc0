/**
 * Prometheus HTTP service discovery (`http_sd_configs`): a JSON list of target groups, one per
 * live daemon with an HTTP side. Labels are `__meta_agentmesh_*`: Prometheus keeps them for
 * relabelling and drops them afterwards, so they never collide with the `worker` label the
 * metrics carry themselves (deploy/prometheus/prometheus.yml turns host and pools into labels).
 * The target is the daemon's first advertised URL; `__meta_agentmesh_reach` says whether that is
 * a loopback address (only a Prometheus on that machine can scrape it) or a network one.
 */
import { type NetworkInterfaceInfo, networkInterfaces } from "node:os";
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
      // Whether the target is reachable from other machines: a daemon bound to loopback only
      // advertises its loopback URL, which only a Prometheus on that same machine can scrape.
      [`${META}reach`]: w.reach ?? (isLoopback(url.hostname) ? "loopback" : "network"),
      [`${META}addresses`]: `,${(w.httpUrls ?? [w.httpUrl]).map((u) => hostOf(u)).join(",")},`,
    };
    if (url.protocol === "https:") labels.__scheme__ = "https";
    const prefix = url.pathname.replace(/\/+$/, "");
    if (prefix) labels.__metrics_path__ = `${prefix}/metrics`;
    out.push({ targets: [address], labels });
  }
  return out;
}

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]", ""]);

/** Where other machines reach a daemon's HTTP side: only itself (loopback) or the network. */
export type Reach = "loopback" | "network";

export interface Advertised {
  /** Base URLs, the best first. */
  urls: string[];
  reach: Reach;
}

const isLoopback = (h: string): boolean =>
  h === "localhost" || h === "::1" || h === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);

/**
 * The machine's addresses another machine can dial, for a listener bound to a wildcard: every
 * non-internal interface address (IPv4 first; IPv6 too for `::`; never link-local fe80::).
 */
export function interfaceAddresses(
  bindHost: string,
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): string[] {
  const all = Object.values(interfaces).flatMap((l) => l ?? []);
  const v4 = all.filter((a) => a.family === "IPv4" && !a.internal).map((a) => a.address);
  const v6 =
    bindHost === "0.0.0.0"
      ? []
      : all
          .filter((a) => a.family === "IPv6" && !a.internal && !/^fe80:/i.test(a.address))
          .map((a) => a.address);
  return [...new Set([...v4, ...v6])];
}

/**
 * The base URLs other daemons and Prometheus reach this daemon at. `advertise` when set (each
 * `host:port`, `host` for the bound port, or a full URL for a proxy); else the bound address;
 * a wildcard bind is replaced by the machine's interface addresses. A daemon bound to loopback
 * (the default) says so: its URL is a loopback one and its reach `loopback`.
 */
export function advertisedUrls(
  opts: { bindHost: string; port: number; advertise?: string | string[] | undefined; tls?: boolean },
  interfaces?: NodeJS.Dict<NetworkInterfaceInfo[]>,
): Advertised {
  const scheme = opts.tls ? "https" : "http";
  const given = (typeof opts.advertise === "string" ? [opts.advertise] : (opts.advertise ?? []))
    .map((a) => a.trim())
    .filter(Boolean);
  const urls: string[] = [];
  if (given.length > 0) {
    for (const a of given) {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) urls.push(a.replace(/\/+$/, ""));
      else if (/^(\[[^\]]+\]|[^:]+):\d+$/.test(a)) urls.push(`${scheme}://${a}`);
      else urls.push(`${scheme}://${bracket(a)}:${opts.port}`);
    }
  } else {
    const hosts = WILDCARD_HOSTS.has(opts.bindHost)
      ? interfaceAddresses(opts.bindHost, interfaces)
      : [opts.bindHost];
    for (const h of hosts.length > 0 ? hosts : ["127.0.0.1"])
      urls.push(`${scheme}://${bracket(h)}:${opts.port}`);
  }
  const reach: Reach = urls.every((u) => isLoopback(hostOf(u))) ? "loopback" : "network";
  return { urls, reach };
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return "";
  }
}

/** IPv6 literals need brackets in a URL. */
const bracket = (host: string): string => (host.includes(":") && !host.startsWith("[") ? `[${host}]` : host);
