/**
 * How a command's failure reaches the user: one line with its stable code and a hint on
 * stderr (never a stack trace, but with TELEPORT_DEBUG=1), with `--json` also one JSON object on
 * stdout, and the exit status that says what kind of failure it was.
 */
import type { CommanderError } from "commander";
import { ErrorCode, TeleportError, toTeleportError } from "../errors.js";
import { StdoutClosed } from "./stdout.js";
import { jsonLine, terminalLine } from "./terminal-text.js";

export const EXIT_FAILURE = 1;
/** Bad arguments: an unknown command or option, an option value out of range, an empty DEST. */
export const EXIT_USAGE = 2;

/** Where the CLI's own text goes (help, version, usage and error lines); commands write to the process. */
export interface CliOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Exit statuses of a process a signal ended, as a shell reports them: 128 + the signal's number. */
const SIGNAL_EXITS = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof SIGNAL_EXITS;
export const STOP_SIGNALS = Object.keys(SIGNAL_EXITS) as StopSignal[];

/** A command stopped by Ctrl-C (SIGINT) or SIGTERM: CANCELLED, with the signal's exit status. */
export class Interrupted extends TeleportError {
  readonly exitCode: number;

  /** `hint` in place of CANCELLED's (resume by running the same command again) where that is wrong. */
  constructor(signal: StopSignal, what: string, cause: unknown, hint?: string) {
    super(ErrorCode.CANCELLED, `${what} interrupted (${signal})`, { cause, hint });
    this.exitCode = SIGNAL_EXITS[signal];
  }
}

/** The --json form of an error: `{"error": {"code", "message", "hint"}}` (hint null when none). */
export function errorJson(error: TeleportError): {
  error: { code: string; message: string; hint: string | null };
} {
  return { error: { code: error.code, message: error.message, hint: error.hint ?? null } };
}

/** The --json line of a usage error commander found (and printed) while parsing. */
export function usageErrorJson(err: CommanderError): string {
  return jsonLine(errorJson(new TeleportError(ErrorCode.USAGE, err.message.replace(/^error: /, ""))));
}

/** Errors whose JSON a command has already printed (inside its own summary line). */
const printedAsJson = new WeakSet<TeleportError>();

/** Marks `error` as printed inside the command's own JSON line, so it is not printed again. */
export function printedInJson(error: TeleportError): TeleportError {
  printedAsJson.add(error);
  return error;
}

/** Prints a command's failure and returns the process's exit status. */
export function reportFailure(err: unknown, output: CliOutput, json: boolean): number {
  if (err instanceof StdoutClosed) return 0; // see stdout.ts
  const error = toTeleportError(err);
  output.stderr(terminalLine(`teleport: ${error.message}`));
  if (error.hint !== undefined) output.stderr(terminalLine(`  hint: ${error.hint}`));
  if (process.env.TELEPORT_DEBUG === "1") output.stderr(`${(err as Error).stack}\n`);
  if (json && !printedAsJson.has(error)) output.stdout(jsonLine(errorJson(error)));
  if (error instanceof Interrupted) return error.exitCode;
  return error.code === ErrorCode.USAGE ? EXIT_USAGE : EXIT_FAILURE;
}

/**
 * Ctrl-C and SIGTERM while a command runs: `signal` aborts, and `explain` turns the failure the
 * abort caused into an Interrupted. A second Ctrl-C ends the process at once, as Node would.
 */
export class StopSignals {
  readonly #controller = new AbortController();
  readonly #listeners = new Map<StopSignal, () => void>();
  #received: StopSignal | undefined;

  constructor() {
    for (const name of STOP_SIGNALS) {
      const listener = () => {
        this.#received ??= name;
        this.#controller.abort();
      };
      this.#listeners.set(name, listener);
      process.once(name, listener);
    }
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** `err` as the user should see it: Interrupted if a signal stopped the command. */
  explain(err: unknown, what: string, hint?: string): unknown {
    return this.#received === undefined ? err : new Interrupted(this.#received, what, err, hint);
  }

  stop(): void {
    for (const [name, listener] of this.#listeners) process.removeListener(name, listener);
  }
}
