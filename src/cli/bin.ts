#!/usr/bin/env node
/** The `teleport` executable: runs the command line for this process and exits with its code. */
import { runCli, shutdownCommands } from "./main.js";

process.exitCode = await runCli(process.argv.slice(2));
await shutdownCommands(); // see shutdownQuic: no live QUIC state when the process is torn down
// Output is flushed; nothing left to wait for (pings and sockets are closed or unref'd).
if (process.exitCode !== 0) process.exit();
