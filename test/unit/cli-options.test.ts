/**
 * The command line's option parsing, run in-process: bad values are usage errors (exit 2, one
 * line naming the option and what it expects), good ones reach the command as typed values,
 * and --version and --help answer without running anything.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { type CliOutput, EXIT_FAILURE, EXIT_USAGE, runCli } from "../../src/cli/main.js";
import { MAX_LEVEL, MIN_LEVEL } from "../../src/compression/zstd.js";
import { ErrorCode } from "../../src/errors.js";
import { parsedOptions, STACK_TRACE_LINE } from "../helpers/cli.js";

// A command that parses a value it should have refused runs for real: its state stays in here.
const home = mkdtempSync(join(tmpdir(), "teleport-cli-options-"));
process.env.TELEPORT_HOME = home;
after(() => rmSync(home, { recursive: true, force: true }));

/** A folder that does not exist: `host` reaching its action fails there (exit 1, not 2). */
const MISSING_DIR = join(home, "no-such-folder");
const NOT_A_LINK = "not-a-link";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(args: string[]): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const output: CliOutput = {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  };
  const code = await runCli(args, output);
  return { code, stdout, stderr };
}

async function assertUsageError(args: string[], expected: RegExp): Promise<void> {
  const { code, stdout, stderr } = await run(args);
  assert.equal(code, EXIT_USAGE, `teleport ${args.join(" ")}: exit ${code}, stderr ${stderr}`);
  assert.match(stderr, /^teleport: /, "one line, prefixed with the program's name");
  assert.match(stderr, expected);
  assert.equal(stderr.trim().split("\n").length, 1, `one line: ${stderr}`);
  assert.doesNotMatch(stderr, STACK_TRACE_LINE);
  assert.equal(stdout, "");
}

const hostWithPort = (value: string) => ["host", MISSING_DIR, "--port", value];
const pullWith = (option: string, value: string) => ["pull", NOT_A_LINK, join(home, "dest"), option, value];

describe("--port", () => {
  it("refuses values outside 0-65535, signs, fractions and words", async () => {
    await assertUsageError(
      hostWithPort("65536"),
      /'--port <n>' argument '65536' is invalid\. expected a port from 0 to 65535/,
    );
    for (const value of ["-1", "8.5", "http", "", "1e3", "0x50"]) {
      await assertUsageError(
        hostWithPort(value),
        new RegExp(`'--port <n>' argument '${value}' is invalid\\. expected a whole number`),
      );
    }
  });

  it("accepts 0 and 65535 as numbers", async () => {
    assert.equal((await parsedOptions(hostWithPort("0"))).port, 0);
    assert.equal((await parsedOptions(hostWithPort("65535"))).port, 65535);
    // Accepted, so the command runs, and fails on its folder, not on the option.
    const { code, stderr } = await run(hostWithPort("65535"));
    assert.equal(code, EXIT_FAILURE);
    assert.match(stderr, new RegExp(ErrorCode.NOT_FOUND));
  });
});

describe("--timeout", () => {
  it("refuses zero, negatives, words, exponents and more than a day", async () => {
    for (const value of ["0", "0.0", "-3", "abc", "1e3", "86400.5", "86401", ".5"]) {
      await assertUsageError(
        pullWith("--timeout", value),
        new RegExp(
          `'--timeout <seconds>' argument '${value}' is invalid\\. expected a number of seconds above 0, at most a day`,
        ),
      );
    }
  });

  it("accepts fractions of a second up to a day", async () => {
    assert.equal((await parsedOptions(pullWith("--timeout", "0.5"))).timeout, 0.5);
    assert.equal((await parsedOptions(pullWith("--timeout", "86400"))).timeout, 86_400);
    const { code, stderr } = await run(pullWith("--timeout", "2"));
    assert.equal(code, EXIT_FAILURE);
    assert.match(stderr, new RegExp(ErrorCode.BAD_LINK), "the pull ran and refused the link");
  });
});

describe("--transport", () => {
  it("refuses anything but auto, tcp and quic", async () => {
    for (const value of ["udp", "TCP", "", "tcp,quic"]) {
      await assertUsageError(
        pullWith("--transport", value),
        new RegExp(`'--transport <kind>' argument '${value}' is invalid\\. expected one of auto, tcp, quic`),
      );
    }
  });

  it("passes each choice through, auto by default", async () => {
    for (const value of ["auto", "tcp", "quic"]) {
      assert.equal((await parsedOptions(pullWith("--transport", value))).transport, value);
    }
    assert.equal((await parsedOptions(["pull", NOT_A_LINK, "dest"])).transport, "auto");
  });
});

describe("--compress-level", () => {
  it(`refuses levels outside ${MIN_LEVEL}-${MAX_LEVEL}`, async () => {
    await assertUsageError(
      pullWith("--compress-level", String(MAX_LEVEL + 1)),
      new RegExp(
        `argument '${MAX_LEVEL + 1}' is invalid\\. expected a level from ${MIN_LEVEL} to ${MAX_LEVEL}`,
      ),
    );
    await assertUsageError(
      pullWith("--compress-level", "0"),
      /argument '0' is invalid\. expected a whole number above 0/,
    );
    await assertUsageError(
      pullWith("--compress-level", "fast"),
      /argument 'fast' is invalid\. expected a whole number/,
    );
  });

  it("accepts the bounds", async () => {
    assert.equal(
      (await parsedOptions(pullWith("--compress-level", String(MIN_LEVEL)))).compressLevel,
      MIN_LEVEL,
    );
    assert.equal(
      (await parsedOptions(pullWith("--compress-level", String(MAX_LEVEL)))).compressLevel,
      MAX_LEVEL,
    );
  });
});

describe("--exclude and --include", () => {
  it("reach pull as one list, in the order typed", async () => {
    const options = await parsedOptions([
      "pull",
      NOT_A_LINK,
      "dest",
      "--include",
      "*.c",
      "--exclude",
      "/build",
      "--include",
      "*/",
      "--exclude",
      "*",
      "--delete",
      "--dry-run",
    ]);
    const rules = [
      { kind: "include", pattern: "*.c" },
      { kind: "exclude", pattern: "/build" },
      { kind: "include", pattern: "*/" },
      { kind: "exclude", pattern: "*" },
    ];
    assert.deepEqual(options.exclude, rules);
    assert.deepEqual(options.include, rules);
    assert.equal(options.delete, true);
    assert.equal(options.dryRun, true);
  });

  it("a pattern teleport does not take is a usage error before any connection", async () => {
    await assertUsageError(
      ["pull", NOT_A_LINK, "dest", "--exclude", "a/***"],
      /TELEPORT_ERR_USAGE: the pattern "a\/\*\*\*"/,
    );
  });
});

describe("push and host --allow-upload", () => {
  it("push takes SRC, a link, --path, --json and --transport", async () => {
    const options = await parsedOptions([
      "push",
      "./src",
      NOT_A_LINK,
      "--path",
      "a/b",
      "--json",
      "--transport",
      "tcp",
    ]);
    assert.deepEqual(options, { path: "a/b", json: true, transport: "tcp" });
  });

  it("host takes --allow-upload and --max-upload-bytes as a size", async () => {
    const options = await parsedOptions(["host", MISSING_DIR, "--allow-upload", "--max-upload-bytes", "10M"]);
    assert.equal(options.allowUpload, true);
    assert.equal(options.maxUploadBytes, 10 * 1024 * 1024);
    await assertUsageError(["host", MISSING_DIR, "--max-upload-bytes", "lots"], /--max-upload-bytes/);
  });

  it("mount takes --cache-size as a size and --cache-dir", async () => {
    const options = await parsedOptions([
      "mount",
      NOT_A_LINK,
      home,
      "--cache-size",
      "512M",
      "--cache-dir",
      home,
    ]);
    assert.equal(options.cacheSize, 512 * 1024 * 1024);
    assert.equal(options.cacheDir, home);
    for (const value of ["lots", "0", "10M/s"])
      await assertUsageError(
        ["mount", NOT_A_LINK, home, "--cache-size", value],
        /--cache-size.*expected a size/,
      );
  });

  it("push with a link that is not a write link is refused before dialing, exit 1", async () => {
    const { code, stderr } = await run([
      "push",
      home,
      `teleport://127.0.0.1:1/?fp=${"A".repeat(43)}&key=${"B".repeat(22)}`,
    ]);
    assert.equal(code, EXIT_FAILURE);
    assert.match(stderr, new RegExp(ErrorCode.READ_ONLY));
  });
});

describe("usage errors", () => {
  it("an unknown command, an unknown option or a missing argument exits 2 with one line", async () => {
    await assertUsageError(["teleprot"], /unknown command 'teleprot'/);
    await assertUsageError(["pull", NOT_A_LINK, "dest", "--bogus", "2"], /unknown option '--bogus'/);
    await assertUsageError(["pull", NOT_A_LINK], /missing required argument 'dest'/);
  });

  it("a usage error found by a command also exits 2; other errors exit 1 with their code and hint", async () => {
    await assertUsageError(
      ["host", "/dev/null"],
      new RegExp(`${ErrorCode.USAGE}: /dev/null is not a folder or a regular file`),
    );

    const { code, stderr } = await run(["pull", NOT_A_LINK, join(home, "dest")]);
    assert.equal(code, EXIT_FAILURE);
    assert.match(stderr, new RegExp(`^teleport: ${ErrorCode.BAD_LINK}: .*\n  hint: .+\n$`));
    assert.doesNotMatch(stderr, STACK_TRACE_LINE);
  });
});

describe("--version and --help", () => {
  it("--version prints the package's version on stdout and exits 0", async () => {
    const { version } = JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8"));
    for (const flag of ["--version", "-V"]) {
      assert.deepEqual(await run([flag]), { code: 0, stdout: `${version}\n`, stderr: "" });
    }
  });

  it("--help lists every command on stdout and exits 0", async () => {
    const { code, stdout, stderr } = await run(["--help"]);
    assert.equal(code, 0);
    assert.equal(stderr, "");
    assert.match(stdout, /^Usage: teleport /);
    for (const command of [
      "host",
      "pull",
      "push",
      "ls",
      "cat",
      "manifest",
      "index",
      "store",
      "bench",
      "demo",
    ]) {
      assert.match(stdout, new RegExp(`^  ${command} `, "m"), `--help lists ${command}`);
    }
    const store = await run(["store", "--help"]);
    assert.equal(store.code, 0);
    for (const command of ["stats", "gc"]) assert.match(store.stdout, new RegExp(`^  ${command} `, "m"));
  });

  it("a command's --help lists its options", async () => {
    const { code, stdout } = await run(["pull", "--help"]);
    assert.equal(code, 0);
    for (const option of [
      "--timeout <seconds>",
      "--transport <kind>",
      "--compress-level <n>",
      "--no-encryption",
    ]) {
      assert.ok(stdout.includes(option), `pull --help lists ${option}`);
    }
  });
});
