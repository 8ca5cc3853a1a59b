/**
 * What `teleport host` tells its user, through the real CLI: every address it listens on with a
 * link for each, `--advertise` naming an interface, one log line per client with what it asked
 * for, the bytes and the seconds, and no error for a client that finished (QUIC reports a closed
 * connection as one).
 */
import assert from "node:assert/strict";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseLink } from "../../src/transport/link.js";
import { quicAvailable } from "../../src/transport/quic.js";
import { runCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/context.js";
import { hostWithCli, makeShare } from "../helpers/share.js";
import { pseudoRandomBytes } from "../helpers/tree.js";

const KiB = 1024;

function ipv4Addresses(): { name: string; address: string }[] {
  return Object.entries(networkInterfaces()).flatMap(([name, addresses]) =>
    (addresses ?? [])
      .filter((address) => address.family === "IPv4")
      .map((address) => ({ name, address: address.address })),
  );
}

test("host on every address lists each address it listens on, and a link naming any of them works", async (t) => {
  const folder = await makeShare(t, "host-addresses", { "a.txt": "reachable\n" });
  const host = await hostWithCli(t, { ...folder, args: ["--bind", "0.0.0.0"] });
  const expected = ipv4Addresses();
  const printed = await waitFor(
    () => {
      const lines = [...host.stderr().matchAll(/^teleport: {3}(\S+) +(\S+)( +\(in the link\))?$/gm)];
      return lines.length >= expected.length && lines;
    },
    { what: "an address per line on the host's stderr" },
  );
  assert.deepEqual(
    printed.map(([, name, address]) => ({ name, address })),
    expected,
    host.stderr(),
  );
  const linkHost = parseLink(host.link).host;
  assert.deepEqual(
    printed.filter(([, , , inLink]) => inLink !== undefined).map(([, , address]) => address),
    [linkHost],
  );
  assert.doesNotMatch(host.stderr(), /key=/, "no link, and so no secret, on stderr");
  // The link with another listed address in it reaches the host as well.
  const loopbackLink = host.link.replace(`//${linkHost}:`, "//127.0.0.1:");
  const listed = await runCli(["ls", loopbackLink], folder.env);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /a\.txt/);
});

test("--advertise INTERFACE puts that interface's address in the link", async (t) => {
  const loopbackInterface = ipv4Addresses().find(({ address }) => address === "127.0.0.1")?.name;
  assert.ok(loopbackInterface !== undefined, "this machine has a loopback interface");
  const folder = await makeShare(t, "host-advertise", { "a.txt": "advertised\n" });
  const host = await hostWithCli(t, {
    ...folder,
    args: ["--bind", "0.0.0.0", "--advertise", loopbackInterface],
  });
  assert.equal(parseLink(host.link).host, "127.0.0.1");
  const read = await runCli(["cat", host.link, "a.txt"], folder.env);
  assert.equal(read.code, 0, read.stderr);
  assert.equal(read.stdout, "advertised\n");
});

test("the host logs one line per client with what it asked for, bytes and seconds, and no error for a finished pull", async (t) => {
  const folder = await makeShare(t, "host-log", {
    "docs/tcp.bin": pseudoRandomBytes(300 * KiB, "tcp"),
    "docs/quic.bin": pseudoRandomBytes(300 * KiB, "quic"),
    "a.txt": "logged\n",
  });
  const host = await hostWithCli(t, folder);
  const transports = quicAvailable ? ["tcp", "quic"] : ["tcp"];
  for (const transport of transports) {
    const dest = join(folder.base, `dest-${transport}`);
    // A file each: what one pull fetched, the next would copy locally instead.
    const path = `docs/${transport}.bin`;
    const args = ["pull", host.link, dest, "--path", path, "--no-progress", "--transport", transport];
    const pulled = await runCli(args, folder.env);
    assert.equal(pulled.code, 0, pulled.stderr);
  }
  const listed = await runCli(["ls", host.link, "docs"], folder.env);
  assert.equal(listed.code, 0, listed.stderr);
  const read = await runCli(["cat", host.link, "a.txt"], folder.env);
  assert.equal(read.code, 0, read.stderr);

  const lines = await waitFor(
    () => {
      const found = host.stderr().match(/^teleport: 127\.0\.0\.1 .*$/gm) ?? [];
      return found.length >= transports.length + 2 && found;
    },
    { what: "a line per client on the host's stderr", timeoutMs: 20_000 },
  );
  const seconds = String.raw`in \d+\.\d\d s$`;
  for (const transport of transports) {
    const pulled = new RegExp(`pulled "docs/${transport}\\.bin": 3\\d\\d\\.\\d KiB ${seconds}`);
    assert.ok(
      lines.some((line) => pulled.test(line)),
      host.stderr(),
    );
  }
  assert.ok(
    lines.some((line) => new RegExp(`listed "docs": \\d+ B ${seconds}`).test(line)),
    lines.join("\n"),
  );
  assert.ok(
    lines.some((line) => new RegExp(`read "a.txt": \\d+ B ${seconds}`).test(line)),
    lines.join("\n"),
  );
  assert.doesNotMatch(host.stderr(), /TELEPORT_ERR|connection closed/);
});
