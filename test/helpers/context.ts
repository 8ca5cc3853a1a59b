/**
 * Per-test resources: temporary folders and cleanups that run when the test ends, newest first
 * (a host is stopped before the folder it shares is removed), and polling with a deadline in
 * place of sleeps.
 */
import { readlinkSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";

type Cleanup = () => unknown;

const cleanups = new WeakMap<TestContext, Cleanup[]>();

/** Runs `cleanup` when the test ends; cleanups run last-registered first, and all of them run. */
export function onCleanup(t: TestContext, cleanup: Cleanup): void {
  let stack = cleanups.get(t);
  if (stack === undefined) {
    const created: Cleanup[] = [];
    stack = created;
    cleanups.set(t, created);
    t.after(async () => {
      const failures: unknown[] = [];
      for (const run of created.splice(0).reverse()) {
        try {
          await run();
        } catch (err) {
          failures.push(err);
        }
      }
      if (failures.length > 0) throw new AggregateError(failures, "cleanup failed");
    });
  }
  stack.push(cleanup);
}

/** A fresh folder under the system temp dir, removed when the test ends. */
export async function tempDir(t: TestContext, label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `teleport-${label}-`));
  onCleanup(t, () => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface WaitOptions {
  /** What is awaited, for the timeout message. */
  what: string;
  timeoutMs?: number;
  intervalMs?: number;
}

/**
 * Polls `probe` until it returns something other than undefined/false, and returns that.
 * Throws after the deadline, so a condition that never comes fails the test instead of hanging it.
 */
export async function waitFor<T>(
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  options: WaitOptions,
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  const interval = options.intervalMs ?? 10;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${options.timeoutMs ?? 10_000} ms waiting for ${options.what}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/**
 * The timeout of a test whose point is that something does not hang. npm test's --test-timeout
 * bounds each whole file on Node 20, so such a test names its own, shorter bound.
 */
export const NO_HANG_TIMEOUT_MS = 60_000;

/** What this process holds open (its descriptors' targets) at or beneath any of `paths`. */
export async function heldOpenBeneath(...paths: string[]): Promise<string[]> {
  const targets = (await readdir("/proc/self/fd")).flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/self/fd/${fd}`)];
    } catch {
      return []; // closed as it was listed
    }
  });
  return targets.filter((target) => paths.some((path) => target === path || target.startsWith(`${path}/`)));
}
