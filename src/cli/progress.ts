/**
 * What `pull` shows while it runs, built only on the library's PullEvents: a bar on stderr when
 * it is a terminal, else a line of stats every few seconds; with -v a line per file on stdout;
 * notices and retries printed above the bar, which is then drawn again. stdout stays clean for
 * --json and pipes.
 */
import type { PullEvent, RetryEvent } from "../client/pull.js";
import { PullStatus } from "./pull-status.js";
import { terminalLine } from "./terminal-text.js";
import { formatBytes } from "./units.js";

export { formatBytes } from "./units.js";

export interface PullOutputOptions {
  /** Show how far the pull is: the bar, or periodic lines where stderr is not a terminal. */
  progress: boolean;
  /** A line per file as it completes (-v). */
  verbose: boolean;
  /** Nothing but errors (-q): no progress, notices or retries. */
  quiet: boolean;
}

export interface PullOutput {
  onProgress(event: PullEvent): void;
  /** A line for the user on stderr (a notice), above the bar. */
  notice(message: string): void;
  /** Takes the bar away: what is printed next starts on a clean line. Idempotent. */
  stop(): void;
}

/** Seconds between the stats lines where stderr is not a terminal (TELEPORT_PROGRESS_INTERVAL). */
const DEFAULT_LINE_INTERVAL_S = 5;
/** Redraws between events, so the rate and ETA follow a stalled link. */
const REDRAW_MS = 250;
const BAR_WIDTH = 20;

export function createPullOutput(options: PullOutputOptions): PullOutput {
  const status = new PullStatus();
  const view = options.progress && !options.quiet ? progressView(status) : new PlainView();
  return {
    onProgress(event) {
      status.observe(event);
      if (event.type === "file-done" && options.verbose && !options.quiet)
        view.print(
          process.stdout,
          terminalLine(fileLine(event.path, event.bytes, event.moved, event.reused)),
        );
      else if (event.type === "retry" && !options.quiet) view.print(process.stderr, retryLine(event));
      view.changed();
    },
    notice(message) {
      if (!options.quiet) view.print(process.stderr, terminalLine(`teleport: ${message}`));
    },
    stop() {
      view.stop();
    },
  };
}

/** `dir/a.bin  12.0 MiB  moved`, as rsync -v names each file it transferred. */
export function fileLine(path: string, bytes: number, moved: number, reused: number): string {
  let how = `${formatBytes(moved)} moved, ${formatBytes(reused)} reused`;
  if (moved === 0) how = reused > 0 ? "reused" : bytes > 0 ? "holes only" : "empty";
  else if (reused === 0) how = "moved";
  return `${path}  ${formatBytes(bytes)}  ${how}`;
}

function retryLine({ error, waitMs, attempt, of }: RetryEvent): string {
  const wait = (waitMs / 1000).toFixed(1);
  return terminalLine(`teleport: ${error.message}; resuming in ${wait} s (retry ${attempt} of ${of})`);
}

/** Where lines go while the pull runs. */
interface View {
  /** Prints `text` (whole lines) to `stream`, keeping the bar below it. */
  print(stream: NodeJS.WritableStream, text: string): void;
  /** The status changed. */
  changed(): void;
  stop(): void;
}

function progressView(status: PullStatus): View {
  if (process.stderr.isTTY) return new TerminalBar(status, process.stderr);
  return new StatsLines(status, lineIntervalMs());
}

function lineIntervalMs(): number {
  const seconds = Number(process.env.TELEPORT_PROGRESS_INTERVAL ?? DEFAULT_LINE_INTERVAL_S);
  return (Number.isFinite(seconds) && seconds > 0 ? seconds : DEFAULT_LINE_INTERVAL_S) * 1000;
}

/** No progress shown: lines are printed as they come. */
class PlainView implements View {
  print(stream: NodeJS.WritableStream, text: string): void {
    stream.write(text);
  }
  changed(): void {}
  stop(): void {}
}

/** A line of stats every few seconds on stderr, for logs and pipes. */
class StatsLines extends PlainView {
  readonly #timer: NodeJS.Timeout;

  constructor(status: PullStatus, intervalMs: number) {
    super();
    this.#timer = setInterval(() => process.stderr.write(`teleport: ${status.line()}\n`), intervalMs).unref();
  }

  override stop(): void {
    clearInterval(this.#timer);
  }
}

/**
 * The bar, on the terminal's last line: redrawn in place with a carriage return, and cleared
 * before anything else is printed, which then scrolls up above it.
 */
class TerminalBar implements View {
  readonly #status: PullStatus;
  readonly #terminal: NodeJS.WriteStream;
  readonly #timer: NodeJS.Timeout;
  #lastDrawnAt = 0;
  #stopped = false;

  constructor(status: PullStatus, terminal: NodeJS.WriteStream) {
    this.#status = status;
    this.#terminal = terminal;
    this.#terminal.write("\x1b[?25l"); // no cursor blinking over the bar
    this.#timer = setInterval(() => this.#draw(), REDRAW_MS).unref();
    this.#draw();
  }

  print(stream: NodeJS.WritableStream, text: string): void {
    if (this.#stopped) {
      stream.write(text);
      return;
    }
    this.#terminal.write("\r\x1b[K");
    stream.write(text);
    this.#draw();
  }

  changed(): void {
    // Events come at most every 100 ms; a redraw per event would be the most a terminal shows.
    if (performance.now() - this.#lastDrawnAt >= REDRAW_MS / 2) this.#draw();
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#terminal.write("\r\x1b[K\x1b[?25h");
  }

  #draw(): void {
    if (this.#stopped) return;
    this.#lastDrawnAt = performance.now();
    const fraction = this.#status.fraction ?? 0;
    const filled = Math.round(fraction * BAR_WIDTH);
    const bar = `${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}`;
    const width = Math.max((this.#terminal.columns || 80) - 1, 10);
    // One line, never wrapped: a wrapped bar would leave its first half behind on each redraw.
    const line = ` ${bar} ${this.#status.line()}`.slice(0, width);
    this.#terminal.write(`\r${line}\x1b[K`);
  }
}
