/** The host's client log as a pure unit: the session's events in, the lines `teleport host` prints out. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ClientLog } from "../../src/cli/host-log.js";
import { ErrorCode, TeleportError } from "../../src/errors.js";
import type { ClientEvent, ClientPeer } from "../../src/host/host.js";

/** The lines `run` has the log print; `printed` is the list so far, for looking in mid-run. */
function logged(run: (log: ClientLog, clock: { ms: number }, printed: readonly string[]) => void): string[] {
  const lines: string[] = [];
  const clock = { ms: 0 };
  const log = new ClientLog(
    (line) => lines.push(line),
    () => clock.ms,
  );
  run(log, clock, lines);
  return lines;
}

const peer = (port: number, id: string | undefined = "c1"): ClientPeer => ({ address: "10.0.0.7", port, id });

const closed = (
  from: ClientPeer,
  bytesSent: number,
  changes: Partial<Extract<ClientEvent, { kind: "closed" }>> = {},
): ClientEvent => ({
  kind: "closed",
  peer: from,
  authenticated: true,
  error: undefined,
  idle: true,
  bytesSent,
  bytesReceived: 0,
  ...changes,
});

test("a pull over a control connection and two data streams is one line, once the last closes", () => {
  const lines = logged((log, clock, printed) => {
    log.observe({ kind: "authenticated", peer: peer(1) });
    log.observe({ kind: "request", peer: peer(1), request: "manifest", path: "docs" });
    log.observe({ kind: "authenticated", peer: peer(2) });
    log.observe({ kind: "authenticated", peer: peer(3) });
    log.observe(closed(peer(2), 3 * 1024 * 1024));
    log.observe(closed(peer(3), 1024 * 1024));
    clock.ms = 1520;
    assert.deepEqual(printed, [], "nothing until the client's last connection closes");
    log.observe(closed(peer(1), 0));
  });
  assert.deepEqual(lines, ['teleport: 10.0.0.7 pulled "docs": 4.0 MiB in 1.52 s\n']);
});

test("a push's line gives the bytes received from the pusher, not the requests sent to it", () => {
  const lines = logged((log, clock) => {
    log.observe({ kind: "authenticated", peer: peer(1) });
    log.observe({ kind: "request", peer: peer(1), request: "upload", path: "inbox" });
    log.observe({ kind: "authenticated", peer: peer(2) });
    log.observe(closed(peer(2), 2048)); // a data stream: its bytes are counted by the upload
    clock.ms = 6200;
    log.observe(closed(peer(1), 955, { bytesReceived: 1024 * 1024 * 1024 }));
  });
  assert.deepEqual(lines, ['teleport: 10.0.0.7 pushed to "inbox": 1.0 GiB received in 6.20 s\n']);
});

test("a client closing between requests is not an error; a connection cut mid-request is", () => {
  const quicClose = new TeleportError(ErrorCode.CONNECTION, "QUIC connection closed");
  const lines = logged((log) => {
    log.observe({ kind: "authenticated", peer: peer(1) });
    log.observe({ kind: "request", peer: peer(1), request: "list", path: "" });
    log.observe(closed(peer(1), 100, { error: quicClose }));
    log.observe({ kind: "authenticated", peer: peer(2, "c2") });
    log.observe({ kind: "request", peer: peer(2, "c2"), request: "read", path: "a.txt" });
    log.observe(closed(peer(2, "c2"), 100, { error: quicClose, idle: false }));
    log.observe(
      closed(peer(3, undefined), 0, { authenticated: false, error: new TeleportError(ErrorCode.AUTH, "no") }),
    );
  });
  assert.deepEqual(lines, [
    'teleport: 10.0.0.7 listed ".": 100 B in 0.00 s\n',
    "teleport: client 10.0.0.7:2: TELEPORT_ERR_CONNECTION: QUIC connection closed\n",
    'teleport: 10.0.0.7 read "a.txt": 100 B in 0.00 s\n',
    "teleport: client 10.0.0.7:3: TELEPORT_ERR_AUTH: no\n",
  ]);
});

test("a client's line names its first requests and counts the rest; paths are escaped", () => {
  const lines = logged((log) => {
    log.observe({ kind: "authenticated", peer: peer(1) });
    log.observe({ kind: "request", peer: peer(1), request: "list", path: "evil\u001b[2J" });
    for (let i = 0; i < 8; i++)
      log.observe({ kind: "request", peer: peer(1), request: "read", path: `f${i}` });
    log.observe({ kind: "request", peer: peer(1), request: "read", path: "f0" });
    log.observe(closed(peer(1), 0));
  });
  assert.equal(lines.length, 1);
  assert.match(
    lines[0] ?? "",
    /^teleport: 10\.0\.0\.7 listed "evil.+", read "f0", read "f1", read "f2", read "f3" and 4 more: 0 B/,
  );
  assert.ok(!(lines[0] ?? "").includes("\u001b"), "the escape character is escaped");
});
