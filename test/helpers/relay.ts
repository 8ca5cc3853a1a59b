/**
 * Relays for tests: a real `teleport relay` process on loopback (startRelay), and the relay
 * transport wrapped so the compliance suite can run it as it runs the others (through a relay
 * started in this process for each listener).
 */
import type { TestContext } from "node:test";
import { RelayServer } from "../../src/relay/relay-server.js";
import { relayTransport } from "../../src/transport/relay.js";
import type { Transport } from "../../src/transport/transport.js";
import { type CliResult, spawnCli } from "./cli.js";
import { onCleanup, waitFor } from "./context.js";

export interface RelayProcess {
  /** HOST:PORT, as the relay printed it on its first stdout line. */
  address: string;
  port: number;
  stderr(): string;
  exited: Promise<CliResult>;
  /** SIGKILL: the relay dies as a crashed machine's would. Resolves once it has exited. */
  kill(): Promise<void>;
}

/** `teleport relay --bind 127.0.0.1` (on `port`, default a free one), stopped when the test ends. */
export async function startRelay(
  t: TestContext,
  options: { home: string; port?: number; args?: string[]; env?: Record<string, string> },
): Promise<RelayProcess> {
  const args = ["relay", "--bind", "127.0.0.1", "--port", String(options.port ?? 0), ...(options.args ?? [])];
  const running = spawnCli(args, { TELEPORT_HOME: options.home, ...options.env });
  const kill = async () => {
    if (running.process.exitCode === null && running.process.signalCode === null)
      running.process.kill("SIGKILL");
    await running.result;
  };
  onCleanup(t, kill);
  let exited: CliResult | undefined;
  running.result.then((result) => {
    exited = result;
  });
  const address = await waitFor(
    () => {
      if (exited !== undefined) throw new Error(`teleport relay exited before listening: ${exited.stderr}`);
      const out = running.stdout();
      return out.includes("\n") ? out.split("\n")[0]?.trim() : undefined;
    },
    { what: "teleport relay to print its address", timeoutMs: 20_000 },
  );
  return {
    address,
    port: Number(address.split(":").at(-1)),
    stderr: running.stderr,
    exited: running.result,
    kill,
  };
}

/**
 * The relay transport as the compliance suite runs a transport: listening starts a relay on the
 * bind address and registers there; the link dialled names that relay. The relay lies
 * (`misroute`): a client asking for a host it does not hold is spliced to the one it holds, so
 * "a host that does not hold the link's key is refused" is the client's pinning at work, end to
 * end through the relay, not the relay's own refusal.
 */
export const loopbackRelayTransport: Transport = {
  ...relayTransport,
  async listen(identity, bind, onStream, options) {
    const relay = await RelayServer.start({
      bind: bind.host,
      faults: { fault: undefined, misroute: true, captureFile: undefined },
    });
    const listener = await relayTransport.listen(
      identity,
      { host: bind.host, port: relay.port },
      onStream,
      options,
    );
    return {
      ...listener,
      close: async () => {
        await listener.close();
        await relay.close();
      },
    };
  },
  dial: (link, options) =>
    relayTransport.dial({ ...link, relays: [{ host: link.host, port: link.port }] }, options),
};
