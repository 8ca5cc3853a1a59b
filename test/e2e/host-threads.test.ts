/**
 * The host serves TCP connections on threads of its own: the TLS and the reads of a pull's
 * streams run there, not in the main thread, so that a host uses every core. Measured on the
 * real process, from the CPU time the kernel counts for each of its threads.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { platformIo } from "../../src/platform/io.js";
import { runCli } from "../helpers/cli.js";
import { hostWithCli, makeShare } from "../helpers/share.js";

const MiB = 1024 * 1024;

/** CPU ticks (user + system) of each thread of process `pid`, by thread id. */
function threadTicks(pid: number): Map<number, number> {
  const ticks = new Map<number, number>();
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8");
    // Fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks.set(Number(task), Number(fields[11]) + Number(fields[12]));
  }
  return ticks;
}

test("a pull over TCP is served by the host's threads, not its main thread", {
  skip: platformIo.kind === "native" ? false : "the host serves from its main thread without the addon",
}, async (t) => {
  const folder = await makeShare(t, "host-threads", { "big.bin": randomBytes(96 * MiB) });
  const host = await hostWithCli(t, { ...folder, args: ["--no-quic"] });
  const pid = host.process.pid;
  assert.ok(pid !== undefined);
  const before = threadTicks(pid);

  const pulled = await runCli(
    ["pull", host.link, join(folder.base, "dest"), "--transport", "tcp"],
    folder.env,
    {
      timeoutMs: 120_000,
    },
  );
  assert.equal(pulled.code, 0, pulled.stderr);

  const spent = [...threadTicks(pid)].map(([tid, ticks]) => ({ tid, ticks: ticks - (before.get(tid) ?? 0) }));
  const total = spent.reduce((sum, thread) => sum + thread.ticks, 0);
  const main = spent.find((thread) => thread.tid === pid)?.ticks ?? 0;
  assert.ok(total > 0, "the host spent CPU on the pull");
  assert.ok(main < total / 2, `the main thread spent ${main} of the host's ${total} ticks`);
});
