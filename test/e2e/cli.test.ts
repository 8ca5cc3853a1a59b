/**
 * The command line end to end: a real `teleport host` process and real pulls for the host's
 * flags (--advertise, --no-compress, --no-quic) and the pull's --compress-level, `store gc`,
 * `demo`, Ctrl-C during a pull and IPv6; and each error code a user can meet, produced by the
 * situation that produces it (a peer speaking another protocol version, a folder where a file
 * is expected, a FIFO, a destination in the way, a missing QUIC binding).
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { mkdir, readFile, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { type TestContext, test } from "node:test";
import { TeleportClient } from "../../src/client/client.js";
import { Connection, encodeFrame } from "../../src/engine/connection.js";
import { ErrorCode } from "../../src/errors.js";
import { loadOrCreateIdentity } from "../../src/transport/identity.js";
import { formatLink, parseLink } from "../../src/transport/link.js";
import { quicAvailable } from "../../src/transport/quic.js";
import { tcpTransport } from "../../src/transport/tcp.js";
import { authProof } from "../../src/transport/transport.js";
import { decodeMessage } from "../../src/wire/codec.js";
import { FrameDecoder } from "../../src/wire/frame.js";
import {
  type ErrorMessage,
  errorCodec,
  helloCodec,
  MessageType,
  PROTOCOL_MAGIC,
  PROTOCOL_VERSION,
} from "../../src/wire/messages.js";
import {
  CLI_PATH,
  type CliEnv,
  type CliResult,
  type HostProcess,
  runCli,
  STACK_TRACE_LINE,
  type StartHostOptions,
  spawnCli,
  startHost,
} from "../helpers/cli.js";
import { onCleanup, tempDir, waitFor } from "../helpers/context.js";
import { compareTrees, findPartFiles, isAbsent, MiB, pseudoRandomBytes } from "../helpers/tree.js";

interface Shared {
  base: string;
  share: string;
  host: HostProcess;
  /** The client's environment, with a TELEPORT_HOME of its own. */
  env: CliEnv;
}

/** Hosts `share` (filled by `fill`) with a real `teleport host`, stopped when the test ends. */
async function hostShare(
  t: TestContext,
  label: string,
  fill: (share: string) => Promise<void>,
  options: Omit<StartHostOptions, "home"> = {},
): Promise<Shared> {
  const base = await tempDir(t, `cli-${label}`);
  const share = join(base, "share");
  await mkdir(share);
  await fill(share);
  const host = await startHost(share, { home: join(base, "host-home"), ...options });
  onCleanup(t, () => host.stop());
  return { base, share, host, env: { TELEPORT_HOME: join(base, "client-home") } };
}

function assertSucceeded(result: CliResult, what: string): void {
  assert.equal(result.code, 0, `${what} failed (${result.code ?? result.signal}): ${result.stderr}`);
}

/** The CLI failed as a user should see it: exit 1, `teleport: CODE: ...` and no stack trace. */
function assertFailedWith(result: CliResult, code: ErrorCode, detail: RegExp): void {
  assert.equal(
    result.code,
    1,
    `expected exit 1 with ${code}, got ${result.code ?? result.signal}: ${result.stderr}`,
  );
  assert.match(result.stderr, new RegExp(`^teleport: ${code}: `, "m"));
  assert.match(result.stderr, detail);
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
}

async function pullJson(link: string, dest: string, env: CliEnv, args: string[] = []) {
  const result = await runCli(["pull", link, dest, "--json", ...args], env);
  assertSucceeded(result, `pull ${args.join(" ")}`);
  return JSON.parse(result.stdout) as {
    bytes: number;
    bytesFromNetwork: number;
    bytesOnWire: number;
    transport: string;
    reused: { resumed: number };
  };
}

/** 4 MiB of random bytes written as hex: compresses to about half, with no chunk repeated. */
const compressible = (seed: string) => Buffer.from(pseudoRandomBytes(2 * MiB, seed).toString("hex"));

test("--advertise puts that address in the link, and pulls through the link reach the host", async (t) => {
  const { host, env, base } = await hostShare(
    t,
    "advertise",
    (share) => writeFile(join(share, "a.txt"), "advertised\n"),
    {
      args: ["--advertise", "localhost"],
    },
  );
  assert.equal(new URL(host.link).hostname, "localhost");
  // TCP: the QUIC binding dials IP addresses only ("invalid IP address syntax" for a name).
  const dest = join(base, "dest");
  assertSucceeded(
    await runCli(["pull", host.link, dest, "--transport", "tcp", "--no-progress"], env),
    "pull",
  );
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), "advertised\n");
});

test("--no-compress: the host sends chunks as they are even to a pull that asks for compression", async (t) => {
  const data = compressible("no-compress");
  const fill = (share: string) => writeFile(join(share, "text.hex"), data);
  const compressing = await hostShare(t, "compress", fill);
  const plain = await hostShare(t, "no-compress", fill, { args: ["--no-compress"] });

  const compressed = await pullJson(compressing.host.link, join(compressing.base, "dest"), compressing.env, [
    "--compress",
    "on",
  ]);
  assert.ok(
    compressed.bytesOnWire < 0.75 * compressed.bytesFromNetwork,
    `a host that compresses: ${compressed.bytesOnWire} bytes on the wire for ${compressed.bytesFromNetwork}`,
  );

  const dest = join(plain.base, "dest");
  const uncompressed = await pullJson(plain.host.link, dest, plain.env, ["--compress", "on"]);
  assert.equal(uncompressed.bytesFromNetwork, data.length);
  assert.ok(
    uncompressed.bytesOnWire >= uncompressed.bytesFromNetwork,
    `--no-compress: ${uncompressed.bytesOnWire} bytes on the wire for ${uncompressed.bytesFromNetwork}`,
  );
  assert.deepEqual(await readFile(join(dest, "text.hex")), data);
  await plain.host.stop();
  assert.doesNotMatch((await plain.host.exited).stderr, /compressed/, "the host reports nothing compressed");
});

test("--compress-level pins the level the host compresses with", async (t) => {
  const data = compressible("level");
  const { host, env, base } = await hostShare(t, "level", (share) =>
    writeFile(join(share, "text.hex"), data),
  );
  const dest = join(base, "dest");
  const summary = await pullJson(host.link, dest, env, ["--compress", "on", "--compress-level", "7"]);
  assert.ok(summary.bytesOnWire < summary.bytesFromNetwork, "chunks came compressed");
  assert.deepEqual(await readFile(join(dest, "text.hex")), data);
  await host.stop();
  const { stderr } = await host.exited;
  // "teleport: compressed 8.4 MB into 4.5 MB (1.87x) for clients; by level: 7 8.4 MB"
  const levels = /by level: (.*)$/m.exec(stderr)?.[1];
  assert.ok(levels !== undefined, `the host reports what it compressed: ${stderr}`);
  assert.deepEqual(
    levels.split(", ").map((level) => level.split(" ")[0]),
    ["7"],
    `every chunk at level 7: ${levels}`,
  );
});

test("--no-quic: the host listens on TCP only, and a QUIC pull finds nobody", async (t) => {
  const { host, env, base } = await hostShare(
    t,
    "no-quic",
    (share) => writeFile(join(share, "a.txt"), "tcp only\n"),
    {
      args: ["--no-quic"],
    },
  );
  await waitFor(() => host.stderr().includes("; Ctrl-C to stop"), { what: "the host's sharing line" });
  assert.match(host.stderr(), /on port \d+ \(tcp\); Ctrl-C/);
  const { port } = parseLink(host.link);
  assert.equal(await udpPortFree(port), true, `UDP port ${port} is free: no QUIC listener`);

  assertFailedWith(
    await runCli(["pull", host.link, join(base, "quic"), "--transport", "quic", "--timeout", "1"], env),
    ErrorCode.TIMEOUT,
    /QUIC handshake/,
  );
  const dest = join(base, "auto");
  assert.equal((await pullJson(host.link, dest, env)).transport, "tcp");
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), "tcp only\n");
});

test("without --no-quic the host also listens for QUIC on its port", {
  skip: !quicAvailable && "no QUIC binding on this machine",
}, async (t) => {
  const { host, env, base } = await hostShare(t, "quic", (share) =>
    writeFile(join(share, "a.txt"), "both\n"),
  );
  assert.equal(await udpPortFree(parseLink(host.link).port), false, "the QUIC listener holds the UDP port");
  assert.equal(
    (await pullJson(host.link, join(base, "dest"), env, ["--transport", "quic"])).transport,
    "quic",
  );
});

/** Whether a UDP socket can take 127.0.0.1:port (a QUIC listener on it would hold it). */
async function udpPortFree(port: number): Promise<boolean> {
  const socket = createSocket("udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(port, "127.0.0.1", resolve);
    });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") return false;
    throw err;
  } finally {
    socket.close();
  }
}

test("store gc forgets indexed files that were deleted, changed or moved, and keeps the rest", async (t) => {
  const base = await tempDir(t, "cli-gc");
  const env = { TELEPORT_HOME: join(base, "home") };
  const folder = join(base, "files");
  await mkdir(folder);
  for (const name of ["kept", "deleted", "changed", "moved"]) {
    await writeFile(join(folder, name), pseudoRandomBytes(256 * 1024, name));
  }
  assertSucceeded(await runCli(["index", folder, "--json"], env), "index");
  const before = JSON.parse((await runCli(["store", "stats", "--json"], env)).stdout);
  assert.equal(before.files, 4);

  await unlink(join(folder, "deleted"));
  await writeFile(join(folder, "changed"), pseudoRandomBytes(256 * 1024, "changed again"));
  await rename(join(folder, "moved"), join(folder, "moved-away"));
  const gc = await runCli(["store", "gc", "--json"], env);
  assertSucceeded(gc, "store gc");
  const report = JSON.parse(gc.stdout);
  assert.equal(report.removedFiles, 3, gc.stdout);
  assert.equal(report.files, 1);
  assert.ok(report.removedChunks > 0 && report.chunks < before.chunks, gc.stdout);

  const again = await runCli(["store", "gc"], env);
  assertSucceeded(again, "second store gc");
  assert.match(again.stdout, /^forgot 0 files \(0 chunks\) no longer as indexed; 1 file still indexed/);
});

/**
 * `teleport demo` in a process group of its own: the demo starts its own host, so a demo that
 * never finishes is killed with its host, as a group.
 */
async function runDemo(t: TestContext, args: string[], home: string, timeoutMs: number): Promise<CliResult> {
  const demo = spawn(process.execPath, [CLI_PATH, "demo", ...args], {
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, TELEPORT_HOME: home },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const group = demo.pid;
  assert.ok(group !== undefined, "the demo started");
  let running = true;
  const killGroup = () => {
    if (running) process.kill(-group, "SIGKILL");
  };
  onCleanup(t, killGroup);
  const timer = setTimeout(killGroup, timeoutMs);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  demo.stdout.on("data", (data: Buffer) => out.push(data));
  demo.stderr.on("data", (data: Buffer) => err.push(data));
  const [code, signal] = (await once(demo, "close")) as [number | null, NodeJS.Signals | null];
  running = false;
  clearTimeout(timer);
  const stdoutBytes = Buffer.concat(out);
  return { code, signal, stdout: stdoutBytes.toString(), stdoutBytes, stderr: Buffer.concat(err).toString() };
}

test("demo hosts a generated folder in a child process, pulls it, checks it and cleans up", async (t) => {
  const base = await tempDir(t, "cli-demo");
  const result = await runDemo(t, ["--size-mb", "1"], join(base, "home"), 90_000);
  assertSucceeded(result, "demo");
  assert.match(result.stdout, /^demo: host is sharing it at\n {2}teleport:\/\/127\.0\.0\.1:\d+\//m);
  assert.match(result.stdout, /all (\d+) files match/);
  const share = /^demo: generated \d+ files .* in (.+)$/m.exec(result.stdout)?.[1];
  assert.ok(share !== undefined, result.stdout);
  onCleanup(t, () => rm(dirname(share), { recursive: true, force: true }));
  assert.ok(await isAbsent(dirname(share)), `the demo's folder ${dirname(share)} is removed`);
});

/**
 * A TCP relay to the host that passes `bytes` from the host, then holds the rest: a pull
 * through it stops mid-transfer for as long as the test needs, whatever the machine's speed.
 */
async function startHoldingRelay(t: TestContext, hostPort: number, bytes: number) {
  let passed = 0;
  let reachedLimit: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    reachedLimit = resolve;
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const host = createConnection({ host: "127.0.0.1", port: hostPort });
    for (const socket of [client, host]) {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.on("close", () => sockets.delete(socket));
    }
    client.pipe(host);
    host.on("data", (data: Buffer) => {
      const allowed = Math.max(0, Math.min(data.length, bytes - passed));
      passed += allowed;
      if (allowed > 0) client.write(data.subarray(0, allowed));
      if (passed >= bytes) {
        host.pause();
        reachedLimit();
      }
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  onCleanup(t, async () => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, held };
}

test("Ctrl-C during a pull: exit 130 with CANCELLED, nothing at the final path, the part file kept and resumed", async (t) => {
  const content = pseudoRandomBytes(32 * MiB, "ctrl-c");
  const { host, env, base } = await hostShare(t, "sigint", (share) =>
    writeFile(join(share, "data.bin"), content),
  );
  const relay = await startHoldingRelay(t, parseLink(host.link).port, 8 * MiB);
  const throughRelay = new URL(host.link);
  throughRelay.port = String(relay.port);
  const dest = join(base, "dest");
  const pulling = spawnCli(
    ["pull", throughRelay.toString(), dest, "--transport", "tcp", "--streams", "1", "--json"],
    env,
  );
  onCleanup(t, () => pulling.process.kill("SIGKILL"));

  await relay.held;
  // The first chunks are on disk: the part file begins with the file's first bytes.
  const prefix = content.subarray(0, 64 * 1024);
  await waitFor(
    async () => {
      const [part] = await findPartFiles(dest);
      if (part === undefined) return false;
      return (await readFile(join(dest, part))).subarray(0, prefix.length).equals(prefix);
    },
    { what: "the pull to write its first chunks", timeoutMs: 30_000 },
  );
  assert.equal(pulling.process.exitCode, null, "the pull is still running, held mid-transfer");
  pulling.process.kill("SIGINT");
  const result = await pulling.result;

  assert.equal(result.signal, null, "the pull exits by itself on SIGINT");
  assert.equal(result.code, 130, result.stderr);
  assert.match(result.stderr, /^teleport: TELEPORT_ERR_CANCELLED: pull interrupted \(SIGINT\)/m);
  assert.doesNotMatch(result.stderr, STACK_TRACE_LINE);
  assert.equal(JSON.parse(result.stdout).error.code, ErrorCode.CANCELLED, "no summary, the error");
  assert.ok(await isAbsent(join(dest, "data.bin")), "nothing half-written at the final path");
  assert.equal((await findPartFiles(dest)).length, 1, "the part file is kept for the next pull");

  const resumed = await pullJson(host.link, dest, env);
  assert.ok(resumed.reused.resumed > 0, "the next pull resumes from the part file");
  assert.equal(resumed.bytesFromNetwork + resumed.reused.resumed, content.length);
  assert.deepEqual(await readFile(join(dest, "data.bin")), content);
  assert.deepEqual(await findPartFiles(dest), []);
});

/** Why IPv6 loopback cannot be used here, or undefined when it can. */
async function ipv6LoopbackMissing(): Promise<string | undefined> {
  const server = createServer();
  try {
    server.listen(0, "::1");
    await once(server, "listening");
    return undefined;
  } catch (err) {
    return `no IPv6 loopback on this machine (listening on ::1: ${(err as Error).message})`;
  } finally {
    server.close();
  }
}

test("IPv6: a host on ::1 prints a bracketed link, and a pull over it is whole", async (t) => {
  const missing = await ipv6LoopbackMissing();
  if (missing !== undefined) {
    t.skip(missing);
    return;
  }
  const { host, env, base, share } = await hostShare(
    t,
    "ipv6",
    async (root) => {
      await writeFile(join(root, "data.bin"), pseudoRandomBytes(3 * MiB, "ipv6"));
      await mkdir(join(root, "sub"));
      await writeFile(join(root, "sub", "b.txt"), "over IPv6\n");
    },
    { args: ["--bind", "::1"] },
  );
  assert.match(host.link, /^teleport:\/\/\[::1\]:\d+\//);
  const dest = join(base, "dest");
  assert.equal((await pullJson(host.link, dest, env, ["--transport", "tcp"])).transport, "tcp");
  await compareTrees(share, dest);
});

test("IPv6: a QUIC pull from a host on ::1", {
  todo: "QUIC dials from an IPv4 endpoint: 'invalid remote address: [::1]:PORT'",
}, async (t) => {
  if (!quicAvailable || (await ipv6LoopbackMissing()) !== undefined) {
    t.skip("no QUIC binding or no IPv6 loopback");
    return;
  }
  const { host, env, base, share } = await hostShare(
    t,
    "ipv6-quic",
    (root) => writeFile(join(root, "a.txt"), "quic6\n"),
    {
      args: ["--bind", "::1"],
    },
  );
  const dest = join(base, "dest");
  assert.equal((await pullJson(host.link, dest, env, ["--transport", "quic"])).transport, "quic");
  await compareTrees(share, dest);
});

/** Says HELLO speaking only `version` to a host and returns the ERROR it answers with. */
async function helloWithVersion(link: string, version: number): Promise<ErrorMessage> {
  const transport = await tcpTransport.dial(parseLink(link));
  const socket = transport.stream;
  try {
    const answer = new Promise<ErrorMessage>((resolve, reject) => {
      const decoder = new FrameDecoder(
        {
          allocateBody: (_type, _id, length) => Buffer.alloc(length),
          onFrame: (type, _id, body) => {
            if (type === MessageType.ERROR) resolve(decodeMessage(errorCodec, body));
            else reject(new Error(`the host answered protocol ${version} with a frame of type ${type}`));
          },
        },
        MiB,
      );
      socket.on("data", (data: Buffer) => decoder.push(data));
      socket.on("error", reject);
      socket.once("close", () => reject(new Error("the host closed the connection without an ERROR")));
    });
    socket.write(
      encodeFrame(MessageType.HELLO, 0, helloCodec, {
        magic: PROTOCOL_MAGIC,
        minVersion: version,
        maxVersion: version,
        features: 0,
        // The right secret: the version is the only thing wrong.
        authProof: authProof(transport, parseLink(link).secret),
        clientName: "from the future",
      }),
    );
    return await answer;
  } finally {
    socket.destroy();
  }
}

test("VERSION: a host refuses a client that speaks another protocol version, and says so", async (t) => {
  const { host } = await hostShare(t, "version", (share) => writeFile(join(share, "a.txt"), "v1\n"));
  const future = PROTOCOL_VERSION + 1;
  const error = await helloWithVersion(host.link, future);
  assert.equal(error.code, ErrorCode.VERSION);
  assert.match(
    error.message,
    new RegExp(`client speaks protocol ${future}-${future}, host \\d+-${PROTOCOL_VERSION}`),
  );
  await waitFor(() => host.stderr().includes(ErrorCode.VERSION), {
    what: "the host to log the refused client",
  });
  assert.match(host.stderr(), new RegExp(`^teleport: client .+: ${ErrorCode.VERSION}: `, "m"));
});

/** A host that speaks only protocol `version`: it answers every HELLO as session.ts does for a mismatch. */
async function startHostOfVersion(t: TestContext, version: number): Promise<string> {
  const home = await tempDir(t, "cli-other-version");
  const identity = await loadOrCreateIdentity(home);
  const listener = await tcpTransport.listen(identity, { host: "127.0.0.1", port: 0 }, (stream) => {
    const connection: Connection = new Connection(stream.stream, {
      allocateBody: (_type, _id, length) => Buffer.allocUnsafe(length),
      onFrame: (type, _id, body) => {
        if (type !== MessageType.HELLO) return;
        const hello = decodeMessage(helloCodec, body);
        connection.sendError(0, {
          code: ErrorCode.VERSION,
          message: `client speaks protocol ${hello.minVersion}-${hello.maxVersion}, host ${version}-${version}`,
        });
        connection.close();
      },
      onClose: () => {},
    });
  });
  onCleanup(t, () => listener.close());
  return formatLink({
    host: "127.0.0.1",
    port: listener.port,
    fingerprint: identity.fingerprint,
    secret: randomBytes(16),
  });
}

test("VERSION: pulling from a host of another protocol version fails with VERSION", async (t) => {
  const link = await startHostOfVersion(t, PROTOCOL_VERSION + 1);
  const base = await tempDir(t, "cli-version-pull");
  const dest = join(base, "dest");
  const result = await runCli(["pull", link, dest, "--transport", "tcp", "--retries", "0"], {
    TELEPORT_HOME: join(base, "home"),
  });
  assertFailedWith(
    result,
    ErrorCode.VERSION,
    new RegExp(`host ${PROTOCOL_VERSION + 1}-${PROTOCOL_VERSION + 1}`),
  );
  assert.deepEqual(await findPartFiles(dest), []);
});

test("NOT_A_FILE: cat of a folder (whole, or a range), and manifest of a folder", async (t) => {
  const { host, env, share } = await hostShare(t, "not-a-file", async (root) => {
    await mkdir(join(root, "sub"));
    await writeFile(join(root, "sub", "a.txt"), "inside\n");
  });
  assertFailedWith(await runCli(["cat", host.link, "sub"], env), ErrorCode.NOT_A_FILE, /"sub" is not a file/);
  assertFailedWith(
    await runCli(["cat", host.link, "sub", "--offset", "0", "--length", "1"], env),
    ErrorCode.NOT_A_FILE,
    /"sub" is not a file/,
  );
  // cat stats the file first (to clamp its range); asked for a range directly, the host refuses.
  const client = await TeleportClient.connect(host.link);
  try {
    await assert.rejects(async () => {
      for await (const _piece of client.readRange("sub", 0, 1));
    }, /TELEPORT_ERR_NOT_A_FILE: host: "sub" is not a regular file/);
  } finally {
    await client.close();
  }
  assertFailedWith(
    await runCli(["manifest", join(share, "sub")], env),
    ErrorCode.NOT_A_FILE,
    /is not a regular file/,
  );
});

test("UNSUPPORTED_TYPE: a FIFO in the share is refused by name, not read", async (t) => {
  const { host, env, base } = await hostShare(t, "fifo", async (root) => {
    await writeFile(join(root, "a.txt"), "regular\n");
    execFileSync("mkfifo", [join(root, "pipe")]);
  });
  assertFailedWith(
    await runCli(["cat", host.link, "pipe"], env),
    ErrorCode.UNSUPPORTED_TYPE,
    /"pipe" is not a file, folder or symlink/,
  );
  const dest = join(base, "dest");
  assertFailedWith(
    await runCli(["pull", host.link, dest, "--path", "pipe", "--no-progress"], env),
    ErrorCode.UNSUPPORTED_TYPE,
    /"pipe"/,
  );
  assert.ok(await isAbsent(join(dest, "pipe")));
});

test("IO: a pull into a destination that is a file, and a chunk index that cannot be opened", async (t) => {
  const { host, env, base } = await hostShare(t, "io", (share) => writeFile(join(share, "a.txt"), "io\n"));
  const inTheWay = join(base, "in-the-way");
  await writeFile(inTheWay, "a file, not a folder\n");
  assertFailedWith(await runCli(["pull", host.link, inTheWay, "--no-progress"], env), ErrorCode.IO, /EEXIST/);
  assert.equal(await readFile(inTheWay, "utf8"), "a file, not a folder\n", "the file is untouched");

  const blockedHome = join(base, "blocked-home");
  await mkdir(join(blockedHome, "index.db"), { recursive: true });
  assertFailedWith(
    await runCli(["store", "stats"], { TELEPORT_HOME: blockedHome }),
    ErrorCode.IO,
    /cannot open the chunk index .*index\.db/,
  );
  assert.ok((await stat(join(blockedHome, "index.db"))).isDirectory());
});

test("UNAVAILABLE: --transport quic where the QUIC binding is not installed; auto falls back to TCP", async (t) => {
  const { host, env, base } = await hostShare(t, "unavailable", (share) =>
    writeFile(join(share, "a.txt"), "tcp\n"),
  );
  // The binding is an optional dependency: this preload makes it missing, as on a machine without it.
  const preload = join(base, "no-quic-binding.cjs");
  await writeFile(
    preload,
    `const Module = require("node:module");
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request.startsWith("@chainsafe/libp2p-quic"))
    throw Object.assign(new Error("Cannot find module '" + request + "'"), { code: "MODULE_NOT_FOUND" });
  return load.call(this, request, ...rest);
};
`,
  );
  const noBinding = {
    ...env,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ""} --require ${JSON.stringify(preload)}`.trim(),
  };
  const result = await runCli(
    ["pull", host.link, join(base, "quic"), "--transport", "quic", "--no-progress"],
    noBinding,
  );
  assertFailedWith(
    result,
    ErrorCode.UNAVAILABLE,
    /QUIC is not available on .*its native binding is not installed/,
  );
  assert.match(result.stderr, /^ {2}hint: use `--transport tcp`/m);

  const dest = join(base, "auto");
  assert.equal((await pullJson(host.link, dest, noBinding)).transport, "tcp");
  assert.equal(await readFile(join(dest, "a.txt"), "utf8"), "tcp\n");
});
