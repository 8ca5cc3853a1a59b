/**
 * Mirroring against a hostile host and a hostile local user: a host that lists what the pull's
 * filters exclude is refused, filters are never sent to a host that cannot apply them, and
 * `--delete` removes nothing outside DEST even when a folder of DEST is swapped for a symlink to
 * outside while the pull runs.
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { ErrorCode } from "../../src/errors.js";
import { Feature, FilterKind, type FilterRule } from "../../src/wire/messages.js";
import { runCli } from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { dirEntry, fileFrames, hostile, type ScriptStep, startHostileHost } from "../helpers/hostile-host.js";
import { hostInProcess, makeShare } from "../helpers/share.js";

const DATA = Buffer.from("the one file the host may send\n");

async function hostileHost(t: TestContext, base: string, script: ScriptStep[], features: number) {
  const host = await startHostileHost(join(base, "hostile-home"), script, () => DATA, { features });
  onCleanup(t, () => host.close());
  return host;
}

describe("hostile mirror", () => {
  it("a host listing a file or a folder the filters exclude is refused", async (t) => {
    const base = await tempDir(t, "hostile-mirror");
    const env = { TELEPORT_HOME: join(base, "home") };
    for (const [excluded, flags] of [
      [[...fileFrames("x.o", DATA)], ["--exclude", "*.o"]],
      [[hostile.entries([dirEntry("build")])], ["--exclude", "/build"]],
      [[hostile.entries([dirEntry("a"), dirEntry("a/b")])], ["--include", "a/", "--exclude", "a/*"]],
    ] as const) {
      const script = [hostile.entries([dirEntry("")]), ...fileFrames("kept.txt", DATA), ...excluded];
      const host = await hostileHost(t, base, script, Feature.FILTERS);
      const dest = join(base, `dest-${flags.join("")}`);
      const pulled = await runCli(["pull", host.link, dest, ...flags], env);
      assert.notEqual(pulled.code, 0, `${flags.join(" ")}: ${pulled.stdout}`);
      assert.match(pulled.stderr, new RegExp(`${ErrorCode.PROTOCOL}: .*leave out`));
      assert.ok(!existsSync(join(dest, "x.o")) && !existsSync(join(dest, "build")));
    }
  });

  it("a client's rules the host does not take are refused with USAGE, and the host serves on", async (t) => {
    const folder = await makeShare(t, "hostile-mirror", { "a.o": "a", "b.c": "b" });
    const host = await hostInProcess(t, folder);
    const client = await TeleportClient.connect(host.url);
    onCleanup(t, () => client.close());
    const walk = async (filters: FilterRule[]) => {
      const paths: string[] = [];
      for await (const event of client.manifest("", undefined, filters))
        if (event.kind === "file-begin") paths.push(event.entry.path);
      return paths;
    };
    for (const pattern of ["a/***", "../x", ""])
      await assert.rejects(walk([{ kind: FilterKind.EXCLUDE, pattern }]), { code: ErrorCode.USAGE }, pattern);
    assert.deepEqual(await walk([{ kind: FilterKind.EXCLUDE, pattern: "*.o" }]), ["b.c"]);
  });

  it("filters are not sent to a host without them: a clear error, nothing pulled", async (t) => {
    const base = await tempDir(t, "hostile-mirror");
    const script = [hostile.entries([dirEntry("")]), ...fileFrames("x.o", DATA)];
    const host = await hostileHost(t, base, script, 0);
    const dest = join(base, "dest");
    const pulled = await runCli(["pull", host.link, dest, "--exclude", "*.o"], {
      TELEPORT_HOME: join(base, "home"),
    });
    assert.notEqual(pulled.code, 0);
    assert.match(pulled.stderr, new RegExp(ErrorCode.FILTERS_UNSUPPORTED));
    assert.ok(!existsSync(join(dest, "x.o")));
  });

  it("--delete removes nothing outside DEST when a folder of DEST becomes a symlink mid-pull", async (t) => {
    const base = await tempDir(t, "hostile-mirror");
    const dest = join(base, "dest");
    const outside = join(base, "outside");
    mkdirSync(join(dest, "sub"), { recursive: true });
    mkdirSync(outside);
    for (const name of ["old.txt", "other.txt"]) {
      writeFileSync(join(dest, "sub", name), "extra in DEST\n");
      writeFileSync(join(outside, name), "VICTIM\n");
    }
    writeFileSync(join(dest, "stale.txt"), "stale\n");
    const swap = () => {
      renameSync(join(dest, "sub"), join(base, "sub-moved"));
      symlinkSync(outside, join(dest, "sub"));
    };
    const script: ScriptStep[] = [
      hostile.entries([dirEntry(""), dirEntry("sub")]),
      ...fileFrames("sub/a.txt", DATA),
      hostile.entries([dirEntry("zz")]),
      { pause: async () => swap() },
      hostile.entries([dirEntry("zz/deeper")]),
    ];
    const host = await hostileHost(t, base, script, 0);
    const pulled = await runCli(["pull", host.link, dest, "--delete", "--json"], {
      TELEPORT_HOME: join(base, "home"),
    });
    assert.deepEqual(readdirSync(outside).sort(), ["old.txt", "other.txt"], pulled.stderr);
    for (const name of ["old.txt", "other.txt"])
      assert.equal(readFileSync(join(outside, name), "utf8"), "VICTIM\n");
    // Writing sub/a.txt through the symlink is refused, and a failed pull deletes nothing.
    const summary = JSON.parse(pulled.stdout) as { error?: { code: string }; deleted?: string[] };
    assert.equal(summary.error?.code, ErrorCode.UNSAFE_NAME, pulled.stdout);
    assert.equal(readFileSync(join(dest, "stale.txt"), "utf8"), "stale\n", "a failed pull deleted nothing");
    for (const name of ["old.txt", "other.txt"]) assert.ok(existsSync(join(base, "sub-moved", name)), name);
  });

  it("--delete's removals refuse a DEST folder swapped for a symlink after it was compared", async (t) => {
    const base = await tempDir(t, "hostile-mirror");
    const dest = join(base, "dest");
    const outside = join(base, "outside");
    mkdirSync(join(dest, "sub"), { recursive: true });
    mkdirSync(outside);
    for (const name of ["old.txt", "other.txt"]) {
      writeFileSync(join(dest, "sub", name), "extra in DEST\n");
      writeFileSync(join(outside, name), "VICTIM\n");
    }
    writeFileSync(join(dest, "stale.txt"), "stale\n");
    // DEST/zz is made once the walk has left sub: sub's extras are noted by then.
    const swapOnceCompared = async () => {
      await waitFor(() => existsSync(join(dest, "zz")), { what: "the pull to leave sub" });
      renameSync(join(dest, "sub"), join(base, "sub-moved"));
      symlinkSync(outside, join(dest, "sub"));
    };
    const script: ScriptStep[] = [
      hostile.entries([dirEntry(""), dirEntry("sub")]),
      hostile.entries([dirEntry("zz")]),
      { pause: swapOnceCompared },
      ...fileFrames("zz/a.txt", DATA),
    ];
    const host = await hostileHost(t, base, script, 0);
    const pulled = await runCli(["pull", host.link, dest, "--delete", "--json"], {
      TELEPORT_HOME: join(base, "home"),
    });
    assert.deepEqual(readdirSync(outside).sort(), ["old.txt", "other.txt"], pulled.stderr);
    for (const name of ["old.txt", "other.txt"])
      assert.equal(readFileSync(join(outside, name), "utf8"), "VICTIM\n");
    const summary = JSON.parse(pulled.stdout) as {
      error?: { code: string };
      deleted: string[];
      deleteFailures: { path: string; message: string }[];
    };
    assert.equal(summary.error?.code, ErrorCode.PARTIAL, pulled.stdout);
    assert.deepEqual(summary.deleted, ["stale.txt"]);
    assert.deepEqual(summary.deleteFailures.map(({ path }) => path).sort(), ["sub/old.txt", "sub/other.txt"]);
    assert.match(pulled.stderr, /not deleted: "sub\/old.txt"/);
    for (const name of ["old.txt", "other.txt"]) assert.ok(existsSync(join(base, "sub-moved", name)), name);
  });
});
