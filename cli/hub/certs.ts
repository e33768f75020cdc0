/**
 * The hub's own CA and server certificate, made with openssl (argv, never a shell). The server
 * certificate file holds the chain (server, then CA), so a joining machine sees the CA in the
 * TLS handshake and can pin it by fingerprint before it trusts anything.
 */
import { execFile } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { CliError, EXIT } from "../errors.js";

const run = promisify(execFile);
const NEW_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
const DAYS = "825";

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run("openssl", args, { cwd: dir });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    throw new CliError(
      EXIT.OTHER,
      e.code === "ENOENT"
        ? "openssl not found: install it (`sudo apt-get install openssl`) to make the hub's certificates"
        : `openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim().split("\n")[0]}`,
      e.code === "ENOENT" ? "MISSING_DEPENDENCY" : "INTERNAL",
      { cause: err },
    );
  }
}

/** subjectAltName entries for the names and addresses clients dial. */
export function subjectAltNames(hosts: string[]): string {
  const names = [...new Set(["localhost", "127.0.0.1", ...hosts])];
  return names.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(",");
}

export interface HubCerts {
  caFile: string;
  caKeyFile: string;
  certFile: string;
  keyFile: string;
}

/** Makes ca.pem/ca.key and server.pem (server + CA chain)/server.key in `dir`; keys 0600. */
export async function makeHubCerts(dir: string, hosts: string[]): Promise<HubCerts> {
  const f: HubCerts = {
    caFile: join(dir, "ca.pem"),
    caKeyFile: join(dir, "ca.key"),
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server.key"),
  };
  await openssl(dir, [
    "req",
    "-x509",
    ...NEW_EC_KEY,
    "-days",
    DAYS,
    "-subj",
    "/CN=agent-mesh hub CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
    "-keyout",
    f.caKeyFile,
    "-out",
    f.caFile,
  ]);
  const csr = join(dir, "server.csr");
  const ext = join(dir, "server.ext");
  const leaf = join(dir, "server-leaf.pem");
  await openssl(dir, [
    "req",
    ...NEW_EC_KEY,
    "-subj",
    "/CN=agent-mesh hub",
    "-keyout",
    f.keyFile,
    "-out",
    csr,
  ]);
  await writeFile(
    ext,
    [
      `subjectAltName=${subjectAltNames(hosts)}`,
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      // serverAuth for clients and leaf nodes, clientAuth for the routes' mutual TLS.
      "extendedKeyUsage=serverAuth,clientAuth",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    f.caFile,
    "-CAkey",
    f.caKeyFile,
    "-CAcreateserial",
    "-days",
    DAYS,
    "-extfile",
    ext,
    "-out",
    leaf,
  ]);
  const chain = `${(await readFile(leaf, "utf8")).trim()}\n${(await readFile(f.caFile, "utf8")).trim()}\n`;
  await writeFile(f.certFile, chain, { mode: 0o644 });
  await Promise.all([csr, ext, leaf, join(dir, "ca.srl")].map((p) => rm(p, { force: true })));
  return f;
}

/** sha256 of a certificate's DER bytes, lower-case hex. */
export function certSha256(der: Buffer): string {
  return createHash("sha256").update(der).digest("hex");
}

/** The fingerprint of the first certificate of a PEM file. */
export async function pemSha256(file: string): Promise<string> {
  return certSha256(new X509Certificate(await readFile(file)).raw);
}

/** `AB:CD:...` as openssl and browsers show it. */
export const colonHex = (hex: string): string => hex.toUpperCase().replace(/(..)(?!$)/g, "$1:");
