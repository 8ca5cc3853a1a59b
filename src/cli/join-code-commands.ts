/**
 * `send` and `receive`: the commander side of join codes. Only commander and the flags' parsers
 * load here; each command's module loads when it runs (main.ts's commandModule).
 */
import { type Command, InvalidArgumentError } from "commander";
import { parseDuration } from "./duration.js";

/** How a command's module is loaded (main.ts: counted, so QUIC is shut down after). */
export type CommandLoader = <T>(load: () => Promise<T>) => Promise<T>;

/** An offer that nobody takes in 10 minutes is likely forgotten. */
const DEFAULT_SEND_EXPIRE_MS = 10 * 60_000;
/** Node's timers hold at most 2^31-1 ms. */
const MAX_SEND_EXPIRE_MS = 24 * 86_400_000;

function expireDuration(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms > MAX_SEND_EXPIRE_MS)
    throw new InvalidArgumentError("expected a duration such as 45s, 10m or 1h30m (at most 24d)");
  return ms;
}

function relayAddress(value: string): string {
  if (!/^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):\d{1,5}$/.test(value))
    throw new InvalidArgumentError("expected HOST:PORT, as `teleport relay` prints it");
  return value;
}

export function addJoinCodeCommands(program: Command, commandModule: CommandLoader): void {
  program
    .command("send")
    .description(
      "offer a folder or one file under a short join code, printed as the first line of stdout; " +
        "waits for one `teleport receive CODE` to pull it, then exits",
    )
    .argument("<path>", "folder or file to send")
    .option(
      "--relay <host:port>",
      "relay whose mailbox gives the code its number (else the LAN only)",
      relayAddress,
    )
    .option(
      "--expire <duration>",
      "give up if nobody uses the code within this long (45s, 10m, 1h30m; default 10m)",
      expireDuration,
      DEFAULT_SEND_EXPIRE_MS,
    )
    .option("--no-lan", "do not offer the code on the LAN (mDNS)")
    .action(async (path: string, flags) => {
      const { sendCommand } = await commandModule(() => import("./send-command.js"));
      await sendCommand(path, flags);
    });

  program
    .command("receive")
    .description("pull what `teleport send` offers under CODE, found on the LAN (mDNS) or at the relay")
    .argument("<code>", "the code `teleport send` printed, such as 7-crossover-clockwork")
    .argument("[dest]", "folder to pull into (default: a folder named as the sender's, or here for one file)")
    .option("--relay <host:port>", "relay whose mailbox the sender used", relayAddress)
    .option("--no-lan", "do not look for the sender on the LAN (mDNS)")
    .option("--json", "print a one-line JSON summary instead of text")
    .option("--no-progress", "no progress bar")
    .option("-q, --quiet", "print nothing but errors")
    .action(async (code: string, dest: string | undefined, flags) => {
      const { receiveCommand } = await commandModule(() => import("./receive-command.js"));
      await receiveCommand(code, dest, flags);
    });
}
