/**
 * The pull progress bar (cli-progress), drawn on stderr only when it is a terminal, so that
 * stdout stays clean for --json and for pipes.
 */
import type { PullProgress } from "../client/pull.js";

export interface ProgressDisplay {
  update(progress: PullProgress): void;
  stop(): void;
}

const NO_DISPLAY: ProgressDisplay = { update() {}, stop() {} };

/** Loads cli-progress only when a bar will be drawn: pipes and --json runs start faster. */
export async function createProgressDisplay(enabled: boolean): Promise<ProgressDisplay> {
  if (!enabled || !process.stderr.isTTY) return NO_DISPLAY;
  const { default: cliProgress } = await import("cli-progress");
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: " {bar} {percentage}% | {done} / {total} | {rate}/s | ETA {eta_formatted} | {files} files",
      barCompleteChar: "█",
      barIncompleteChar: "░",
      hideCursor: true,
      etaBuffer: 50,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  bar.start(1, 0, { done: formatBytes(0), total: "?", rate: formatBytes(0), files: 0 });
  return {
    update(progress) {
      const seconds = Math.max((performance.now() - started) / 1000, 0.001);
      bar.setTotal(Math.max(progress.bytesKnown, 1));
      bar.update(progress.bytesDone, {
        done: formatBytes(progress.bytesDone),
        total: formatBytes(progress.bytesKnown) + (progress.manifestComplete ? "" : "+"),
        rate: formatBytes(progress.bytesDone / seconds),
        files: progress.files,
      });
    },
    stop() {
      bar.stop();
    },
  };
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
