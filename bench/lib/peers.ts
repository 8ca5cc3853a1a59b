/**
 * The peers teleport is measured against: rsync as a daemon (plaintext), and scp / rsync over a
 * private sshd. Each runs on a free port (of loopback, or of a WAN host for the rsync daemon)
 * with its config, keys and logs in a temp dir, and is stopped with its process group on
 * `stop()` or at exit.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { LOOPBACK, type ServerProcess, type ServerSite, startInTempDir } from "./processes.js";

/** Debian packages the peers and the measurements need. */
export const PEER_PACKAGES = ["rsync", "openssh-server", "openssh-client", "time"] as const;

/** Package name -> why it cannot be used; a package not listed is installed. */
export type UnavailablePackages = ReadonlyMap<string, string>;

let aptListsUpdated = false;

/**
 * Installs whichever of `packages` are missing. Never throws: a package that cannot be
 * installed is reported, so the benchmark skips the peers that need it and measures the rest.
 */
export function ensureDebianPackages(packages: readonly string[]): UnavailablePackages {
  const unavailable = new Map<string, string>();
  const missing = packages.filter((name) => !isPackageInstalled(name));
  if (missing.length === 0) return unavailable;

  if (process.getuid?.() !== 0) {
    for (const name of missing) unavailable.set(name, "not installed, and not root to apt-get install it");
    return unavailable;
  }
  console.error(`bench: installing ${missing.join(" ")} with apt-get`);
  updateAptListsOnce();
  // One transaction first; if it fails, retry one by one so a single broken package (say an
  // openssh-server postinst that cannot start a service) does not cost us rsync as well.
  const batch = aptGet(["install", "-y", "--no-install-recommends", ...missing]);
  for (const name of missing) {
    if (isPackageInstalled(name)) continue;
    const single = batch.ok ? batch : aptGet(["install", "-y", "--no-install-recommends", name]);
    if (!isPackageInstalled(name)) unavailable.set(name, `apt-get install failed: ${single.outputTail}`);
  }
  return unavailable;
}

/** Why a peer needing `required` cannot run, or null when it can. */
export function whyUnavailable(unavailable: UnavailablePackages, required: readonly string[]): string | null {
  const reasons = required.flatMap((name) => {
    const reason = unavailable.get(name);
    return reason === undefined ? [] : [`${name}: ${reason}`];
  });
  return reasons.length === 0 ? null : reasons.join("; ");
}

function isPackageInstalled(name: string): boolean {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: ${Status} is dpkg-query's format syntax.
  const query = spawnSync("dpkg-query", ["-W", "-f=${Status}", name], { encoding: "utf8" });
  return query.status === 0 && query.stdout.trim() === "install ok installed";
}

function updateAptListsOnce(): void {
  if (aptListsUpdated) return;
  aptListsUpdated = true;
  const update = aptGet(["update"]);
  // Stale lists may still be enough to install from, so go on and let install decide.
  if (!update.ok) console.error(`bench: apt-get update failed, trying install anyway: ${update.outputTail}`);
}

function aptGet(args: readonly string[]): { ok: boolean; outputTail: string } {
  const result = runTool("apt-get", args, { DEBIAN_FRONTEND: "noninteractive" }, 15 * 60_000);
  return { ok: result.ok, outputTail: result.output.trimEnd().split("\n").slice(-3).join(" | ") };
}

function runTool(
  command: string,
  args: readonly string[],
  extraEnv: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
): { ok: boolean; output: string } {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    env: { ...process.env, ...extraEnv },
    timeout: timeoutMs,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}${result.error ? String(result.error) : ""}`;
  return { ok: result.status === 0, output };
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0] ?? "";
}

export interface RsyncDaemon {
  /** `rsync://ADDRESS:PORT/bench`, the read-only module serving the directory. */
  readonly moduleUrl: string;
  readonly server: ServerProcess;
  readonly version: string;
  stop(): Promise<void>;
}

/**
 * Writes `dir/rsyncd.conf`, serving `moduleDir` read-only as module `bench` and logging into
 * `dir`; returns its path. uid/gid root: as root the daemon would otherwise drop to nobody, and
 * then fail on any benchmark directory that nobody cannot read.
 */
function writeRsyncdConfig(dir: string, moduleDir: string, writable: boolean): string {
  const configPath = join(dir, "rsyncd.conf");
  // Without a chroot a daemon rewrites the targets of symlinks it receives ("munge symlinks"):
  // a pushed tree with symlinks (a real one) would not arrive as it was.
  const lines = [
    "use chroot = no",
    "munge symlinks = no",
    "uid = root",
    "gid = root",
    `log file = ${join(dir, "rsyncd.log")}`,
  ];
  writeFileSync(
    configPath,
    [...lines, "[bench]", `  path = ${moduleDir}`, `  read only = ${writable ? "no" : "yes"}`, ""].join("\n"),
  );
  return configPath;
}

/** The port an rsync daemon listens on where it has a host to itself. */
const RSYNC_PORT = 873;

/**
 * An rsync daemon serving `moduleDir` read-only as module `bench`, on `site` (loopback by
 * default); `writable`: taking uploads into it (the push benchmarks).
 */
export function startRsyncDaemon(
  moduleDir: string,
  site: ServerSite = LOOPBACK,
  writable = false,
): Promise<RsyncDaemon> {
  return startInTempDir("rsyncd", async (temp) => {
    const configPath = writeRsyncdConfig(temp.path, moduleDir, writable);
    const port = await site.port(RSYNC_PORT);
    const server = await site.startServer(
      "rsync daemon",
      "rsync",
      ["--daemon", "--no-detach", `--config=${configPath}`, `--port=${port}`, `--address=${site.address}`],
      { logPath: join(temp.path, "rsyncd.stdout.log") },
    );
    await site.waitForListener(port, server);
    return {
      moduleUrl: `rsync://${site.address}:${port}/bench`,
      server,
      version: firstLine(runTool("rsync", ["--version"]).output),
      stop: async () => {
        await server.stop();
        temp.remove();
      },
    };
  });
}

export interface SshServer {
  readonly server: ServerProcess;
  /** Where clients reach it: the site's address and the port it listens on. */
  readonly address: string;
  readonly port: number;
  /** The private key authorised for root, and the ssh options that use it (no host key check). */
  readonly identityFile: string;
  readonly sshOptions: readonly string[];
  /** Options for `scp`, to go before the source and destination. */
  readonly scpArgs: readonly string[];
  /** The value for `rsync -e`: ssh with the port, key and options of this server. */
  readonly rsyncRemoteShell: string;
  /** The cipher ssh negotiated with this server, as `ssh -v` reports it. */
  readonly negotiatedCipher: string | null;
  readonly version: string;
  /** `host:path` naming `path` on this server, for scp and rsync. */
  remotePath(path: string): string;
  stop(): Promise<void>;
}

const SSHD = "/usr/sbin/sshd";
/** The port sshd listens on where it has a host to itself. */
const SSH_PORT = 22;

/**
 * A private sshd on a free loopback port (or on `site`): its own host key, one client key
 * authorised for root, the default cipher. Login is checked before returning (from where
 * `clientPrefix` runs ssh, e.g. a netns of the WAN), so a broken setup surfaces here and not as a
 * failed transfer.
 */
export function startSshServer(
  site: ServerSite = LOOPBACK,
  clientPrefix: readonly string[] = [],
): Promise<SshServer> {
  return startInTempDir("sshd", async (temp) => {
    const hostKey = generateKey(join(temp.path, "host_ed25519"));
    const clientKey = generateKey(join(temp.path, "client_ed25519"));
    writeFileSync(join(temp.path, "authorized_keys"), clientKey.publicKey);
    const port = await site.port(SSH_PORT);
    const configPath = join(temp.path, "sshd_config");
    writeFileSync(configPath, sshdConfig(port, site.address, hostKey.path, temp.path));
    // sshd refuses to start without its privilege separation directory, which only the
    // package's service unit creates.
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });

    const server = await site.startServer("sshd", SSHD, ["-D", "-e", "-f", configPath], {
      logPath: join(temp.path, "sshd.log"),
    });
    await site.waitForListener(port, server);

    const identity = [
      "-F",
      "/dev/null",
      "-i",
      clientKey.path,
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "BatchMode=yes",
    ];
    const trustAnyHost = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"];
    const negotiatedCipher = probeLogin(
      site.address,
      port,
      [...identity, ...trustAnyHost],
      server,
      clientPrefix,
    );
    // Quiet, so the "Permanently added" warning does not land in every run's output.
    const clientOptions = [...identity, ...trustAnyHost, "-o", "LogLevel=ERROR"];
    return {
      server,
      address: site.address,
      port,
      identityFile: clientKey.path,
      sshOptions: clientOptions,
      scpArgs: ["-P", String(port), ...clientOptions],
      rsyncRemoteShell: ["ssh", "-p", String(port), ...clientOptions].join(" "),
      negotiatedCipher,
      version: firstLine(runTool("ssh", ["-V"]).output),
      remotePath: (path) => `${site.address}:${path}`,
      stop: async () => {
        await server.stop();
        temp.remove();
      },
    };
  });
}

function generateKey(path: string): { path: string; publicKey: string } {
  const keygen = runTool("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "teleport-bench", "-f", path]);
  if (!keygen.ok) throw new Error(`ssh-keygen failed: ${keygen.output}`);
  return { path, publicKey: readFileSync(`${path}.pub`, "utf8") };
}

function sshdConfig(port: number, address: string, hostKeyPath: string, dir: string): string {
  // Debian's sshd uses the external sftp-server, which modern scp speaks; internal-sftp is
  // the fallback when openssh-sftp-server is not installed.
  const sftpServer = existsSync("/usr/lib/openssh/sftp-server")
    ? "/usr/lib/openssh/sftp-server"
    : "internal-sftp";
  return [
    `Port ${port}`,
    `ListenAddress ${address}`,
    `HostKey ${hostKeyPath}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "PermitRootLogin prohibit-password",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    // The keys live under /tmp, which is world-writable; strict modes would reject them.
    "StrictModes no",
    `Subsystem sftp ${sftpServer}`,
    "",
  ].join("\n");
}

/** Logs in once with `ssh -v true`; returns the negotiated cipher, throws if login fails. */
function probeLogin(
  address: string,
  port: number,
  options: readonly string[],
  server: ServerProcess,
  clientPrefix: readonly string[],
): string | null {
  const ssh = [...clientPrefix, "ssh", "-v", "-p", String(port), ...options, address, "true"];
  const probe = runTool(ssh[0] ?? "ssh", ssh.slice(1), {}, 30_000);
  if (!probe.ok) {
    const clientLog = probe.output.trimEnd().split("\n").slice(-5).join("\n");
    throw new Error(`ssh login to the private sshd failed:\n${clientLog}\nsshd log:\n${server.logTail()}`);
  }
  const match = /kex: server->client cipher: (\S+)/.exec(probe.output);
  return match?.[1] ?? null;
}
