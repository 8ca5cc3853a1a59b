/**
 * The fixture most tests start from: a temp folder holding a share (its files given, or the
 * standard tree), hosted in process or by the real CLI, and the environment of a client with
 * its own TELEPORT_HOME. Everything is stopped and removed when the test ends.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { TestContext } from "node:test";
import { Host, type HostOptions } from "../../src/host/host.js";
import type { HostFaults } from "../../src/serve/faults.js";
import { type CliEnv, type HostProcess, type StartHostOptions, startHost } from "./cli.js";
import { onCleanup, tempDir } from "./context.js";

export interface ShareFolder {
  /** The test's temp folder: the share, homes and destinations live in it. */
  base: string;
  /** `base/share`. */
  share: string;
  /** A client's environment: TELEPORT_HOME is `base/client-home`. */
  env: CliEnv;
}

/** Contents by '/'-separated path relative to the share; folders are made as needed. */
export type ShareFiles = Record<string, string | Buffer>;

/** A fresh `base` folder with `base/share` holding `files`. */
export async function makeShare(t: TestContext, label: string, files: ShareFiles = {}): Promise<ShareFolder> {
  const base = await tempDir(t, label);
  const share = join(base, "share");
  await mkdir(share);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(share, path)), { recursive: true });
    await writeFile(join(share, path), content);
  }
  return { base, share, env: { TELEPORT_HOME: join(base, "client-home") } };
}

/** Where a share and its host's identity live: `share`, and `base/host-home`. */
export type HostedFolder = Pick<ShareFolder, "base" | "share">;

/** Host options as tests give them: the public ones, and fault hooks (never set by the CLI). */
export type TestHostOptions = Partial<HostOptions> & { faults?: HostFaults };

/** An in-process host of `share` on a loopback port, with any other host `options`. */
export async function hostInProcess(
  t: TestContext,
  { base, share, faults, ...options }: HostedFolder & TestHostOptions,
): Promise<Host> {
  const host = await Host.start(
    { root: share, home: join(base, "host-home"), bind: "127.0.0.1", ...options },
    { faults },
  );
  onCleanup(t, () => host.close());
  return host;
}

/** `teleport host` of `share` as a child process, with any other `startHost` options. */
export async function hostWithCli(
  t: TestContext,
  { base, share, ...options }: HostedFolder & Omit<StartHostOptions, "home">,
): Promise<HostProcess> {
  const host = await startHost(share, { home: join(base, "host-home"), ...options });
  onCleanup(t, () => host.stop());
  return host;
}
