/**
 * The teleport command line as a function of its arguments (bin.ts runs it for the process).
 * Errors print as one line with their stable code (and a hint when there is one) and exit
 * non-zero; stack traces are for TELEPORT_DEBUG=1 only.
 */
import { Command, CommanderError, Option } from "commander";
import { COMPRESS_MODES } from "../client/pool/compression-policy.js";
import { REUSE_SCOPES } from "../client/pull/summary.js";
import { DEFAULT_RETRIES } from "../client/retry-policy.js";
import { MAX_LEVEL, MIN_LEVEL } from "../compression/levels.js";
import { DEFAULT_CONGESTION } from "../host/congestion.js";
import { TRANSPORT_CHOICES } from "../transport/transport.js";
import type { PullFilterFlag } from "./commands.js";
import { COMPLETION_SHELLS, type CompletionShell, completionScript } from "./completion.js";
import { applyConfig, configPath, configShowCommand } from "./config.js";
import { type CliOutput, EXIT_USAGE, reportFailure, usageErrorJson } from "./error-report.js";
import { addJoinCodeCommands } from "./join-code-commands.js";
import { readLinkArgument } from "./link-input.js";
import {
  byteRate,
  byteSize,
  compressLevel,
  congestionName,
  duration,
  nonNegativeInteger,
  oneOf,
  port,
  positiveInteger,
  relayAddress,
  seconds,
  streamCount,
  streamCounts,
} from "./option-values.js";

export { type CliOutput, EXIT_FAILURE, EXIT_USAGE } from "./error-report.js";

const processOutput: CliOutput = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** What a link argument's help says: `-` keeps the link out of `ps` and the shell's history. */
const LINK_HELP = "share link printed by `teleport host`, or - to read it from stdin";

/** Set once a command's module is loaded: it may have left QUIC state to shut down (bin.ts). */
let commandsLoaded = false;

/**
 * A command's module, loaded when the command runs: the transports, SQLite, zstd and BLAKE3 are
 * then loaded only by the commands that use them, and `--version`, `--help` and `completion`
 * start about as fast as Node does (docs/decisions.md, "Commands load their modules when they run").
 */
function commandModule<T>(load: () => Promise<T>): Promise<T> {
  commandsLoaded = true;
  return load();
}

/**
 * Closes what the command left of QUIC (see shutdownQuic) before the process exits; a command
 * that never loaded the transports (`--version`, `--help`) loads nothing here either.
 */
export async function shutdownCommands(): Promise<void> {
  if (!commandsLoaded) return;
  const { shutdownQuic } = await import("../transport/quic.js");
  await shutdownQuic();
}

/** The commander program; parsing throws a CommanderError where commander would exit. */
export function createProgram(output: CliOutput = processOutput): Command {
  const program = new Command("teleport")
    .description("Fast, encrypted, verified file transfer: host a folder, pull it anywhere.")
    .version("0.1.0")
    .exitOverride()
    .configureOutput({
      writeOut: (text) => output.stdout(text),
      writeErr: (text) => output.stderr(text),
      outputError: (text, write) => write(`teleport: ${text.replace(/^error: /, "")}`),
    });
  addHostCommand(program);
  addRelayCommand(program);
  addPullCommand(program);
  addPushCommand(program);
  addJoinCodeCommands(program, commandModule);
  addBrowseCommands(program);
  addMountCommands(program);
  addLocalCommands(program);
  addToolCommands(program);
  addConfigCommand(program);
  addCompletionCommand(program, output);
  program.hook("preAction", (_program, command) => applyConfig(program, command));
  return program;
}

/** `host`: share a folder, or one file. */
function addHostCommand(program: Command): void {
  program
    .command("host")
    .description(
      "share a folder or one file; prints the share link as the first line of stdout (with --allow-upload, the write link as the second)",
    )
    .argument("<dir>", "folder (or one file) to share (read-only unless --allow-upload)")
    .option("--port <n>", "TCP port to listen on (0 picks a free one)", port, 0)
    .option("--bind <addr>", "address to listen on", "0.0.0.0")
    .option(
      "--advertise <addr>",
      "address to put in the link (default: the bind address or this machine's IPv4)",
    )
    .option("--link-file <path>", "also write the link to this file (mode 0600) once listening")
    .option("--rotate", "give the folder a new secret first: links printed before stop working")
    .option(
      "--expire <duration>",
      "stop after this long (45s, 10m, 1h30m, 7d) and retire the link: it stops working",
      duration,
    )
    .option(
      "--once",
      "stop after the first pull that completes (every connection of the clients closed without error) " +
        "and retire the link",
    )
    .option("--no-compress", "never send chunks compressed, even to clients that ask")
    .option("--no-quic", "listen for TLS over TCP only (by default also QUIC, on the same UDP port)")
    .option(
      "--congestion <name>",
      `TCP congestion control to send with: ${DEFAULT_CONGESTION} (default, where the kernel offers it), ` +
        "another the kernel has (reno, cubic...), or system for the kernel's default",
      congestionName,
    )
    .option(
      "--allow-no-encryption",
      "let clients that ask (pull --no-encryption) take chunk data unencrypted, for trusted networks",
    )
    .option(
      "--allow-upload",
      "also take uploads (teleport push) from a second, write link, printed on the second line",
    )
    .option(
      "--max-upload-bytes <n>",
      "refuse uploads holding more than this many bytes (10G, 500M)",
      byteRate,
    )
    .option("--qr", "draw the link as a QR code on stderr (by default only when stderr is a terminal)")
    .option("--no-qr", "never draw the link as a QR code")
    .option(
      "--relay <host:port>",
      "also be reachable through this relay (teleport relay), named in the link; repeatable",
      (value: string, previous: string[]) => [...previous, relayAddress(value)],
      [] as string[],
    )
    .option(
      "--map-port",
      "ask the router to forward the port (NAT-PMP, then UPnP) and name its address in the link",
    )
    .action(async (dir: string, flags) => {
      const { ensureShareArgument } = await commandModule(() => import("./commands.js"));
      const { hostCommand } = await commandModule(() => import("./host-command.js"));
      await ensureShareArgument(dir);
      await hostCommand(dir, flags);
    });
}

/** `relay`: meet hosts behind NAT and their clients, splicing their encrypted connections. */
function addRelayCommand(program: Command): void {
  program
    .command("relay")
    .description(
      "run a relay for hosts behind NAT; prints its address (HOST:PORT) as the first line of stdout",
    )
    .option("--port <n>", "TCP and UDP port to listen on (0 picks a free one)", port, 0)
    .option("--bind <addr>", "address to listen on", "0.0.0.0")
    .option("--link-file <path>", "also write the address to this file once listening")
    .option("--max-hosts <n>", "hosts registered at once", positiveInteger)
    .option("--max-connections <n>", "connections held at once, spliced ones counted twice", positiveInteger)
    .option(
      "--host-rate <rate>",
      "spliced bytes per second per host (500k, 10M; default unbounded)",
      byteRate,
    )
    .option(
      "--connection-rate <rate>",
      "spliced bytes per second per connection (default unbounded)",
      byteRate,
    )
    .action(async (flags) => {
      const { relayCommand } = await commandModule(() => import("./relay-command.js"));
      await relayCommand(flags);
    });
}

/**
 * `--exclude` and `--include` for pull and push: one list, in the order typed (the first rule
 * matching a path decides), which both options hold.
 */
function filterOptions(): { exclude: Option; include: Option } {
  const rules: PullFilterFlag[] = [];
  const add = (kind: PullFilterFlag["kind"]) => (pattern: string) => {
    rules.push({ kind, pattern });
    return rules;
  };
  return {
    exclude: new Option(
      "--exclude <pattern>",
      "leave out what matches (rsync patterns: /anchored, dir/, *, **); repeatable, first match wins",
    ).argParser(add("exclude")),
    include: new Option(
      "--include <pattern>",
      "keep what matches, though a later --exclude matches it; repeatable",
    ).argParser(add("include")),
  };
}

/** `pull`: a share, or part of it, into a local folder. */
function addPullCommand(program: Command): void {
  const filters = filterOptions();
  program
    .command("pull")
    .description("pull the whole share, or one file or folder of it, into <dest>")
    .argument("<link>", LINK_HELP)
    .argument("<dest>", "local folder to pull into (created if missing)")
    .option("--path <remote>", "file or folder inside the share to pull")
    .option("--json", "print a one-line JSON summary instead of text")
    .option(
      "--no-progress",
      "no progress bar (nor, where stderr is not a terminal, a line of stats every 5 s)",
    )
    .option(
      "-v, --verbose",
      "a line per file as it completes: its path, size, and whether it was moved or reused",
    )
    .option("-q, --quiet", "print nothing but errors")
    .option(
      "--streams <n>",
      "data connections (default: tuned to the path from its RTT and measured throughput)",
      streamCount,
    )
    .option(
      "--bwlimit <rate>",
      "receive at most this many bytes per second, all streams together (10M, 500k)",
      byteRate,
    )
    .option(
      "--retries <n>",
      `reconnect and resume this many times after the connection is lost mid-pull`,
      nonNegativeInteger,
      DEFAULT_RETRIES,
    )
    .option("--timeout <seconds>", "give up on a host that sends nothing for this long (default 30)", seconds)
    .option(
      "--transport <kind>",
      "auto (TLS over TCP, QUIC where TCP does not get through), tcp or quic",
      oneOf(TRANSPORT_CHOICES),
      "auto",
    )
    .option(
      "--reuse <scope>",
      "chunks this machine has that may be copied instead of fetched (what is not fetched, the host " +
        "can tell you hold): all (any file the index knows), dest (only the destination's), none",
      oneOf(REUSE_SCOPES),
      "all",
    )
    .option("--xattrs", "also pull files' user.* extended attributes (needs the native addon on both sides)")
    .option(
      "--no-encryption",
      "trusted networks only: chunk data crosses unencrypted (still authenticated and BLAKE3-verified), " +
        "sent from the host's page cache; the host must allow it (--allow-no-encryption)",
    )
    .option(
      "--compress <mode>",
      "zstd per chunk: auto (where the link is slower than the CPU: paths over 5 ms), on, off",
      oneOf(COMPRESS_MODES),
      "auto",
    )
    .option(
      "--compress-level <n>",
      `pin the zstd level (${MIN_LEVEL}-${MAX_LEVEL}); by default the host adapts it to its CPU and the link`,
      compressLevel,
    )
    .addOption(filters.exclude)
    .addOption(filters.include)
    .option(
      "--delete",
      "remove what DEST holds inside the pulled folder that the share does not (not --exclude'd names)",
    )
    .option("--dry-run", "pull nothing, write nothing: say what would be copied, reused and deleted")
    .option("--watch", "after the pull, keep <dest> a mirror as the host's folder changes, until Ctrl-C")
    .action(async (link: string, dest: string, flags) => {
      if (flags.watch === true) {
        const { watchCommand } = await commandModule(() => import("./watch-command.js"));
        await watchCommand(await readLinkArgument(link), dest, flags);
        return;
      }
      const { pullCommand } = await commandModule(() => import("./commands.js"));
      await pullCommand(await readLinkArgument(link), dest, flags);
    });
}

/** `push`: a file or folder into a host started with --allow-upload. */
function addPushCommand(program: Command): void {
  const filters = filterOptions();
  program
    .command("push")
    .description("upload a file or folder into a host's share (the host runs with --allow-upload)")
    .argument("<src>", "local file or folder to upload")
    .argument("<link>", "write link: the second line `teleport host --allow-upload` prints, or - for stdin")
    .option(
      "--path <remote>",
      "folder inside the share to upload into (default: a folder's own name; a file goes to the share's root)",
    )
    .option("--json", "print a one-line JSON summary instead of text")
    .option("-q, --quiet", "print nothing but errors")
    .option("--timeout <seconds>", "give up on a host that sends nothing for this long (default 30)", seconds)
    .option(
      "--transport <kind>",
      "auto (TLS over TCP, QUIC where TCP does not get through), tcp or quic",
      oneOf(TRANSPORT_CHOICES),
      "auto",
    )
    .addOption(filters.exclude)
    .addOption(filters.include)
    .option(
      "--delete",
      "remove what the host's folder (--path) holds that <src> does not (not --exclude'd names); nothing else",
    )
    .option("--dry-run", "write nothing on the host: say what would be copied, reused and deleted")
    .action(async (src: string, link: string, flags) => {
      const { pushCommand } = await commandModule(() => import("./push-command.js"));
      await pushCommand(src, await readLinkArgument(link), flags);
    });
}

/** `ls` and `cat`: look into a share without pulling it. */
function addBrowseCommands(program: Command): void {
  program
    .command("ls")
    .description("list a folder of the share")
    .argument("<link>", LINK_HELP)
    .argument("[path]", "folder or file inside the share", "")
    .option("-r, --recursive", "list everything beneath")
    .option("--json", "one JSON object per line")
    .action(async (link: string, path: string, flags) => {
      const { lsCommand } = await commandModule(() => import("./browse-commands.js"));
      await lsCommand(await readLinkArgument(link), path, flags);
    });

  program
    .command("cat")
    .description("write a file's bytes (or a range of them) to stdout, verified")
    .argument("<link>", LINK_HELP)
    .argument("<path>", "file inside the share")
    .option("--offset <n>", "first byte", nonNegativeInteger)
    .option("--length <n>", "number of bytes", nonNegativeInteger)
    .action(async (link: string, path: string, flags) => {
      const { catCommand } = await commandModule(() => import("./browse-commands.js"));
      await catCommand(await readLinkArgument(link), path, flags);
    });
}

/** `mount` and `umount`: the share as a read-only folder (FUSE). */
function addMountCommands(program: Command): void {
  program
    .command("mount")
    .description("mount the share as a read-only folder (FUSE); Ctrl-C unmounts")
    .argument("<link>", LINK_HELP)
    .argument("<mountpoint>", "empty local folder to mount on")
    .option("--path <remote>", "folder of the share to mount (default: all of it)")
    .option(
      "--cache-size <size>",
      "bound of the verified chunk cache on disk (default: 10G, or half the free space if less)",
      byteSize,
    )
    .option("--cache-dir <folder>", "where the chunk cache lives (default: TELEPORT_HOME/mount-cache)")
    .option(
      "--timeout <seconds>",
      "a read waits this long for the host, then fails with EIO (default 30)",
      seconds,
    )
    .option(
      "--ttl <seconds>",
      "how long listings are trusted when the host sends no changes (default 5)",
      seconds,
    )
    .option("--no-watch", "do not follow the host's changes: listings are refreshed by --ttl only")
    .option(
      "--listed-at-mount <entries>",
      "entries listed when mounting (default 100000); folders beyond are listed as they are visited",
      positiveInteger,
    )
    .action(async (link: string, mountpoint: string, flags) => {
      const { mountCommand } = await commandModule(() => import("./mount-command.js"));
      await mountCommand(await readLinkArgument(link), mountpoint, flags);
    });

  program
    .command("umount")
    .description("unmount a `teleport mount` (lazily: open files stay readable until closed)")
    .argument("<mountpoint>", "where the share is mounted")
    .option("--force", "abort the mount's connection first: what waits on a hung mount fails at once")
    .action(async (mountpoint: string, flags) => {
      const { umountCommand } = await commandModule(() => import("./mount-command.js"));
      await umountCommand(mountpoint, flags);
    });
}

/** `manifest`, `index` and `store`: local files and the chunk index. */
function addLocalCommands(program: Command): void {
  program
    .command("manifest")
    .description("print a local file's chunk list with BLAKE3 hashes (check with b3sum)")
    .argument("<file>", "local file")
    .option("--json", "JSON output")
    .action(async (file: string, flags) => {
      const { manifestCommand } = await commandModule(() => import("./commands.js"));
      await manifestCommand(file, flags);
    });

  program
    .command("index")
    .description(
      "add a folder's files to the chunk index: pulls copy their chunks locally instead of fetching them",
    )
    .argument("<dir>", "folder (or file) to index; symlinks are not followed")
    .option("--json", "one JSON line")
    .action(async (dir: string, flags) => {
      const { indexCommand } = await commandModule(() => import("./store.js"));
      await indexCommand(dir, flags);
    });

  const store = program.command("store").description("the chunk index in TELEPORT_HOME");
  store
    .command("stats")
    .description("files, chunks and bytes the index knows")
    .option("--json", "one JSON line")
    .action(async (flags) => {
      const { storeStatsCommand } = await commandModule(() => import("./store.js"));
      await storeStatsCommand(flags);
    });
  store
    .command("gc")
    .description("forget files changed, moved or deleted since they were indexed, and compact the index")
    .option("--json", "one JSON line")
    .action(async (flags) => {
      const { storeGcCommand } = await commandModule(() => import("./store.js"));
      await storeGcCommand(flags);
    });
}

/** `bench` and `demo`: measure a link, show what teleport does. */
function addToolCommands(program: Command): void {
  program
    .command("bench")
    .description("measure a link: connect, ping, first byte, random 4 KiB reads, pull speed per stream count")
    .argument("<link>", LINK_HELP)
    .option("--path <remote>", "file to measure with (default: the largest file listed)")
    .option("--streams <list>", "stream counts to pull with, comma-separated", streamCounts, [1, 2, 4, 8])
    .option("--reads <n>", "random 4 KiB reads to time", nonNegativeInteger, 200)
    .option("--json", "one JSON line")
    .action(async (link: string, flags) => {
      const { benchCommand } = await commandModule(() => import("./bench.js"));
      await benchCommand(await readLinkArgument(link), flags);
    });

  program
    .command("demo")
    .description("host a generated folder on loopback, pull it, and report what moved and how fast")
    .option("--size-mb <n>", "size of the large file in MiB", nonNegativeInteger, 256)
    .option("--keep", "keep the generated folders")
    .action(async (flags) => {
      const { demoCommand } = await commandModule(() => import("./demo.js"));
      await demoCommand(flags);
    });
}

/** `completion`: the shell's completion script, made from this program (see completion.ts). */
function addCompletionCommand(program: Command, output: CliOutput): void {
  program
    .command("completion")
    .description('print a completion script for bash, zsh or fish (eval "$(teleport completion bash)")')
    .argument("<shell>", "bash, zsh or fish", oneOf(COMPLETION_SHELLS))
    .action((shell: CompletionShell) => output.stdout(completionScript(shell, program)));
}

/** `config`: the defaults TELEPORT_HOME/config.json sets, and where the file is. */
function addConfigCommand(program: Command): void {
  const config = program
    .command("config")
    .description(`defaults for pull and host flags, from TELEPORT_HOME/config.json`);
  config
    .command("show", { isDefault: true })
    .description("print each configurable flag's default and whether it comes from the file")
    .option("--json", "one JSON line")
    .action((flags) => configShowCommand(program, flags));
  config
    .command("path")
    .description("print where the config file is (or would be)")
    .action(() => {
      process.stdout.write(`${configPath()}\n`);
    });
}

/**
 * Runs the command line `args` (the words after `teleport`) and returns the exit code: 0,
 * EXIT_USAGE for bad arguments, 130 or 143 for Ctrl-C or SIGTERM, EXIT_FAILURE for any other
 * error, printed as one line (see error-report.ts).
 */
export async function runCli(args: readonly string[], output: CliOutput = processOutput): Promise<number> {
  const program = createProgram(output);
  let json = false;
  program.hook("preAction", (_program, command) => {
    json = command.opts().json === true;
  });
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0;
      // Commander has printed the usage error; a --json caller gets it on stdout too.
      if (args.includes("--json")) output.stdout(usageErrorJson(err));
      return EXIT_USAGE;
    }
    return reportFailure(err, output, json);
  }
}
