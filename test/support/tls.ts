/** Test certificates made with openssl (installed by .ci/run) for the TLS paths. */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1";
/** A new P-256 key, unencrypted. */
const NEW_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

/** A self-signed certificate for localhost/127.0.0.1 (clients trust `cert` itself as the CA). */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  openssl(dir, [
    "req",
    "-x509",
    ...NEW_EC_KEY,
    "-keyout",
    key,
    "-out",
    cert,
    "-days",
    "2",
    "-subj",
    "/CN=localhost",
    "-addext",
    SAN,
  ]);
  return { cert, key };
}

/** A CA and a server certificate it signed, for localhost/127.0.0.1. */
export function caSignedCert(dir: string): { ca: string; cert: string; key: string } {
  openssl(dir, [
    "req",
    "-x509",
    ...NEW_EC_KEY,
    "-days",
    "2",
    "-subj",
    "/CN=mesh-test-ca",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
  ]);
  openssl(dir, [
    "req",
    ...NEW_EC_KEY,
    "-subj",
    "/CN=localhost",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
  ]);
  writeFileSync(join(dir, "san.ext"), `${SAN}\n`);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    "san.ext",
    "-out",
    "server.pem",
  ]);
  return { ca: join(dir, "ca.pem"), cert: join(dir, "server.pem"), key: join(dir, "server.key") };
}
