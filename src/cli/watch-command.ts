/**
 * `pull --watch`: the pull, then the destination kept a mirror as the host's folder changes
 * (client/watch.ts), until Ctrl-C (exit 130, as a pull's). A line per sync and per batch of
 * changes, or with --json one JSON object per line.
 */
import { resolve } from "node:path";
import type { RetryEvent } from "../client/pull.js";
import { type WatchReport, watchLink } from "../client/watch.js";
import { ErrorCode, TeleportError } from "../errors.js";
import { makeDestination, openChunkIndex, type PullFlags, pullLinkOptions } from "./commands.js";
import { StopSignals } from "./error-report.js";
import { plural } from "./plural.js";
import { createPullOutput } from "./progress.js";
import { writeOut } from "./stdout.js";
import { jsonLine, terminalLine } from "./terminal-text.js";
import { formatBytes } from "./units.js";

export async function watchCommand(link: string, dest: string, flags: PullFlags): Promise<never> {
  if (dest === "")
    throw new TeleportError(
      ErrorCode.USAGE,
      'DEST is empty: name the folder to pull into ("." for this one)',
    );
  if (flags.encryption === false)
    throw new TeleportError(ErrorCode.USAGE, "--watch keeps its connection encrypted: drop --no-encryption");
  const json = flags.json === true;
  const quiet = flags.quiet === true;
  const index = openChunkIndex();
  const output = createPullOutput({ progress: false, verbose: false, quiet });
  const stopSignals = new StopSignals();
  const destPath = resolve(dest);
  try {
    await makeDestination(destPath);
    const { onProgress: _progress, ...options } = pullLinkOptions(flags, output);
    return await watchLink(link, {
      ...options,
      dest: destPath,
      index,
      signal: stopSignals.signal,
      onBatch: (report) => {
        if (json) void writeOut(jsonLine(reportJson(report)));
        else if (!quiet) void writeOut(reportLine(report));
      },
      onRetry: (event) => {
        if (!quiet) process.stderr.write(retryLine(event));
      },
    });
  } catch (err) {
    throw stopSignals.explain(err, "pull --watch");
  } finally {
    stopSignals.stop();
    output.stop();
    index.close();
  }
}

function reportJson(report: WatchReport): object {
  const { kind, ...fields } = report;
  const seconds = Number(report.seconds.toFixed(3));
  if (kind === "sync") return { type: "sync", ...fields, seconds };
  return { type: "changes", paths: report.changed.length + report.removed.length, ...fields, seconds };
}

/** `3 changed, 1 removed: 12.0 KiB from the network, 1.0 GiB reused (0.21 s)`. */
function reportLine(report: WatchReport): string {
  const moved = `${formatBytes(report.bytesFromNetwork)} from the network, ${formatBytes(report.bytesReused)} reused`;
  const seconds = `(${report.seconds.toFixed(2)} s)`;
  if (report.kind === "sync")
    return terminalLine(`synced (${report.reason}): ${plural(report.files, "file")}, ${moved} ${seconds}`);
  const what = [`${report.changed.length} changed`, `${report.removed.length} removed`].join(", ");
  return terminalLine(`${what}: ${moved} ${seconds}`);
}

function retryLine({ error, waitMs, attempt, of }: RetryEvent): string {
  const wait = (waitMs / 1000).toFixed(1);
  return terminalLine(`teleport: ${error.message}; reconnecting in ${wait} s (retry ${attempt} of ${of})`);
}
