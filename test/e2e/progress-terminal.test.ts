/**
 * The progress bar as a terminal shows it: a real pull in a tmux pane of fixed size, its screen
 * captured as the pull runs, through a host killed and started again mid-pull. Skipped, saying
 * why, where tmux is not installed.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { CLI_PATH, startHost } from "../helpers/cli.js";
import { NO_HANG_TIMEOUT_MS, onCleanup, waitFor } from "../helpers/context.js";
import { holdPort, linkToPort } from "../helpers/ports.js";
import { makeShare } from "../helpers/share.js";
import { findPartFiles, MiB, writeRandomFile } from "../helpers/tree.js";

const TMUX_MISSING = spawnSync("tmux", ["-V"]).status !== 0;
const SKIP = TMUX_MISSING
  ? "tmux is not installed (apt-get install tmux): the terminal test needs it"
  : false;

const COLUMNS = 120;
const ROWS = 30;

/** A tmux server of its own (its own socket), running one command in a pane of COLUMNS x ROWS. */
class TmuxPane {
  readonly #socket: string;

  constructor(t: TestContext, socket: string, command: string, env: Record<string, string>) {
    this.#socket = socket;
    const vars = Object.entries(env).flatMap(([name, value]) => ["-e", `${name}=${value}`]);
    this.#tmux([
      "-f",
      "/dev/null",
      "new-session",
      "-d",
      "-x",
      `${COLUMNS}`,
      "-y",
      `${ROWS}`,
      ...vars,
      command,
    ]);
    onCleanup(t, () => {
      spawnSync("tmux", ["-S", this.#socket, "kill-server"]);
    });
  }

  /** The pane's visible lines, trailing blanks dropped. */
  capture(): string[] {
    const lines = this.#tmux(["capture-pane", "-p", "-J"]).split("\n");
    while (lines.length > 0 && lines.at(-1)?.trim() === "") lines.pop();
    return lines;
  }

  #tmux(args: string[]): string {
    return execFileSync("tmux", ["-S", this.#socket, ...args], { encoding: "utf8" });
  }
}

const BAR_LINE = /[█░]{20} \d+% \| /;
const FORMATTED_TOTALS = /\d+(\.\d)? (B|KiB|MiB|GiB) \/ \d+\.\d (KiB|MiB|GiB)\+? \|/;

test("the bar under tmux: formatted totals, a retry printed above it, the summary's totals across attempts", {
  skip: SKIP,
  timeout: NO_HANG_TIMEOUT_MS,
}, async (t) => {
  const { base, share } = await makeShare(t, "terminal");
  const size = 256 * MiB;
  await writeRandomFile(join(share, "large.bin"), size);
  const hostHome = join(base, "host-home");
  const first = await startHost(share, { home: hostHome });
  onCleanup(t, () => first.stop());
  const front = await holdPort(t);
  front.forwardTo(Number(new URL(first.link).port));
  const link = linkToPort(first.link, front.port);
  const dest = join(base, "dest");

  const pane = new TmuxPane(
    t,
    join(base, "tmux.sock"),
    `"${process.execPath}" "${CLI_PATH}" pull "$TELEPORT_LINK" "${dest}"; echo "EXIT=$?"; sleep 600`,
    { TELEPORT_HOME: join(base, "client-home"), TELEPORT_LINK: link },
  );
  const screens: string[][] = [];
  const capture = () => {
    const screen = pane.capture();
    screens.push(screen);
    return screen;
  };

  const barShown = await waitFor(
    () => capture().find((line) => BAR_LINE.test(line) && /MiB\+? \|/.test(line)),
    {
      what: "the bar, with a total in MiB",
      timeoutMs: 20_000,
      intervalMs: 20,
    },
  );
  const barShownAt = performance.now();
  assert.match(barShown, FORMATTED_TOTALS);
  await waitFor(
    async () => {
      const screen = capture();
      if (screen.some((line) => line.startsWith("EXIT=")))
        throw new Error(`the pull ended:\n${screen.join("\n")}`);
      return (await partFileBytes(dest)) > 16 * MiB;
    },
    { what: "the pull to be well into large.bin", timeoutMs: 30_000, intervalMs: 20 },
  );
  front.forwardTo(undefined);
  first.process.kill("SIGKILL");
  await first.exited;
  const killedAt = performance.now();
  const second = await startHost(share, { home: hostHome, linkFile: join(base, "second-link.txt") });
  onCleanup(t, () => second.stop());
  front.forwardTo(Number(new URL(second.link).port));

  // A screen of the second attempt: the retry notice, and the bar drawn again below it.
  const retried = await waitFor(
    () => {
      const screen = capture();
      const notice = screen.findIndex((line) => /resuming in \d+\.\d s \(retry 1 of \d+\)/.test(line));
      const bar = screen.findLastIndex((line) => BAR_LINE.test(line));
      return notice >= 0 && bar > notice ? screen : undefined;
    },
    { what: "a retry notice above the bar", timeoutMs: 30_000, intervalMs: 20 },
  );
  assert.match(retried.find((line) => line.includes("resuming in")) ?? "", /^teleport: TELEPORT_ERR_/);

  const final = await waitFor(
    () => (capture().some((line) => line.startsWith("EXIT=")) ? screens.at(-1) : undefined),
    {
      what: "the pull to end",
      timeoutMs: 40_000,
      intervalMs: 50,
    },
  );
  assert.ok(final?.includes("EXIT=0"), final?.join("\n"));
  t.diagnostic(`retrying:\n${retried.join("\n")}\nat the end:\n${final?.join("\n")}`);

  for (const screen of screens) {
    const text = screen.join("\n");
    assert.doesNotMatch(text, /NULL|\bLL|NaN|Infinity|undefined/, text);
    assert.doesNotMatch(text, /\/ \d{4,}\b/, `a raw byte count: ${text}`);
    for (const line of screen.filter((line) => BAR_LINE.test(line))) {
      assert.match(line, FORMATTED_TOTALS);
      assert.ok(line.length <= COLUMNS, `the bar fits the pane: ${line}`);
    }
  }
  // The bar is gone; the notice stays above the summary.
  assert.ok(!final?.some((line) => BAR_LINE.test(line)), final?.join("\n"));
  const summary = final?.find((line) => line.startsWith("pulled ")) ?? "";
  const totals =
    /in ([\d.]+) s, ([\d.]+) MiB from the network at [\d.]+ \w+\/s, ([\d.]+ \w+) reused, (\d+) attempts$/.exec(
      summary,
    );
  assert.ok(totals, `a summary with totals across attempts: ${summary}`);
  const [, seconds, movedMiB, reused, attempts] = totals;
  assert.ok(Number(attempts) >= 2, summary);
  // The whole pull's time, not the last attempt's: it ran from before the bar showed to after the kill.
  assert.ok(Number(seconds) >= (killedAt - barShownAt) / 1000, summary);
  // Every byte crossed the network once (random data, nothing to reuse), some twice: the last
  // attempt alone moved less, and what it resumed is not "reused".
  assert.ok(Number(movedMiB) >= size / MiB, summary);
  assert.equal(reused, "0 B", summary);
});

async function partFileBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await findPartFiles(dir))
    total += (await stat(join(dir, name)).catch(() => ({ size: 0 }))).size;
  return total;
}
