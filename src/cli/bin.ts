#!/usr/bin/env node
/** The `teleport` executable: runs the command line for this process and exits with its code. */
import { setFlagsFromString } from "node:v8";

/**
 * V8 otherwise grows the main thread's young generation to 32 MiB and lets old space reach ~3x
 * what survives a collection; both flags are read as the heap grows, so they hold once set, until
 * a worker thread's start sets them back: they are set again as each comes online
 * (docs/decisions.md, "The CLI's heap growth").
 */
function keepHeapSmall(): void {
  setFlagsFromString("--semi-space-growth-factor=1");
  setFlagsFromString("--heap-growing-percent=30");
}

keepHeapSmall();
process.on("worker", (worker) => worker.once("online", keepHeapSmall));
// Loaded after the flags are set: loading the CLI's modules allocates.
const { runCli, shutdownCommands } = await import("./main.js");

process.exitCode = await runCli(process.argv.slice(2));
await shutdownCommands(); // see shutdownQuic: no live QUIC state when the process is torn down
// Output is flushed; nothing left to wait for (pings and sockets are closed or unref'd).
if (process.exitCode !== 0) process.exit();
