/**
 * The config file, TELEPORT_HOME/config.json: standing defaults for `pull` and `host`, one
 * section per command, each key a flag's long name as typed (`"compress-level"`, and `"quic":
 * false` for `--no-quic`), each value what the flag takes (`"bwlimit": "10M"`, `"streams": 8`).
 * A flag on the command line overrides the file. A key this version does not know, or a value
 * its flag would refuse, is an error naming the file and the key: a setting silently ignored is
 * worse than none. JSON needs no parser beyond Node's (docs/decisions.md, "The config file is JSON").
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command, Option } from "commander";
import { ErrorCode, TeleportError } from "../errors.js";
import { teleportHome } from "./home.js";

export const CONFIG_FILE_NAME = "config.json";

/**
 * The flags a config file may set: what makes sense as a standing default. Not `--no-encryption`
 * or `--allow-no-encryption` (a choice to make each time), nor what names one transfer.
 */
const CONFIGURABLE: Readonly<Record<string, readonly string[]>> = {
  pull: [
    "streams",
    "bwlimit",
    "transport",
    "compress",
    "compress-level",
    "reuse",
    "retries",
    "timeout",
    "xattrs",
    "progress",
  ],
  host: ["port", "bind", "advertise", "compress", "quic", "congestion", "expire"],
  send: ["relay", "expire", "lan"],
  receive: ["relay", "lan"],
};

/** One key of the file: the value as its flag parses it, and as written. */
interface ConfigSetting {
  value: unknown;
  written: unknown;
}

export interface TeleportConfig {
  path: string;
  found: boolean;
  /** Per command, per key. */
  sections: Map<string, Map<string, ConfigSetting>>;
}

export function configPath(): string {
  return join(teleportHome(), CONFIG_FILE_NAME);
}

function configError(path: string, problem: string, hint: string): TeleportError {
  return new TeleportError(ErrorCode.CONFIG, `config file ${path}: ${problem}`, { hint });
}

/** The key a flag has in the file: its long name, without `--` (or `--no-`, whose value is then false). */
function configKey(option: Option): string {
  return (option.long ?? "").replace(option.negate ? /^--no-/ : /^--/, "");
}

/** The options of `command` the file may set, by key. */
function configurableOptions(command: Command): Map<string, Option> {
  const options = new Map<string, Option>();
  for (const key of CONFIGURABLE[command.name()] ?? []) {
    const option = command.options.find((candidate) => configKey(candidate) === key);
    if (option !== undefined) options.set(key, option);
  }
  return options;
}

/** Reads and checks the file at `path` against `program`'s flags; a missing file is an empty config. */
export function loadConfig(program: Command, path: string = configPath()): TeleportConfig {
  const config: TeleportConfig = { path, found: false, sections: new Map() };
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return config;
    throw configError(
      path,
      `cannot be read (${(err as Error).message})`,
      "make it readable, or move it away",
    );
  }
  config.found = true;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw configError(
      path,
      `is not valid JSON: ${(err as Error).message}`,
      "fix the JSON, or move the file away",
    );
  }
  for (const [name, section] of Object.entries(objectOf(path, parsed, "the file"))) {
    const command = program.commands.find((candidate) => candidate.name() === name);
    if (command === undefined || CONFIGURABLE[name] === undefined)
      throw configError(
        path,
        `unknown section "${name}"`,
        `the sections are ${Object.keys(CONFIGURABLE).join(", ")}`,
      );
    config.sections.set(name, readSection(path, command, objectOf(path, section, `"${name}"`)));
  }
  return config;
}

function objectOf(path: string, value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw configError(path, `${what} must be a JSON object`, 'write it as {"pull": {"streams": 8}}');
  return value as Record<string, unknown>;
}

function readSection(
  path: string,
  command: Command,
  section: Record<string, unknown>,
): Map<string, ConfigSetting> {
  const options = configurableOptions(command);
  const settings = new Map<string, ConfigSetting>();
  for (const [key, written] of Object.entries(section)) {
    const option = options.get(key);
    const name = `${command.name()}.${key}`;
    if (option === undefined)
      throw configError(
        path,
        `unknown key "${name}"`,
        `the keys of "${command.name()}" are ${[...options.keys()].join(", ")}`,
      );
    settings.set(key, { value: parseValue(path, name, option, written), written });
  }
  return settings;
}

/** A value as its flag would parse it on the command line. */
function parseValue(path: string, name: string, option: Option, written: unknown): unknown {
  if (option.negate || option.isBoolean()) {
    if (typeof written !== "boolean")
      throw configError(path, `"${name}" must be true or false`, "write true or false, unquoted");
    return written;
  }
  if (typeof written !== "string" && typeof written !== "number")
    throw configError(
      path,
      `"${name}" must be a string or a number`,
      `write it as on the command line: ${option.flags}`,
    );
  if (option.parseArg === undefined) return String(written);
  try {
    return option.parseArg(String(written), undefined);
  } catch (err) {
    throw configError(
      path,
      `"${name}": ${(err as Error).message}`,
      `write it as on the command line: ${option.flags}`,
    );
  }
}

/**
 * Gives `command` the file's settings for the flags not given on its command line: the
 * program's preAction hook, so the action sees one set of flags, whichever set each.
 */
export function applyConfig(program: Command, command: Command): void {
  if (command.parent !== program || CONFIGURABLE[command.name()] === undefined) return;
  const section = loadConfig(program).sections.get(command.name());
  for (const [key, setting] of section ?? []) {
    const option = configurableOptions(command).get(key);
    if (option === undefined) continue;
    const name = option.attributeName();
    if (command.getOptionValueSource(name) !== "cli")
      command.setOptionValueWithSource(name, setting.value, "config");
  }
}

/** Every configurable flag: its effective default, and whether it comes from the file or teleport. */
export function describeConfig(program: Command, config: TeleportConfig): ConfigLine[] {
  const lines: ConfigLine[] = [];
  for (const name of Object.keys(CONFIGURABLE)) {
    const command = program.commands.find((candidate) => candidate.name() === name);
    if (command === undefined) continue;
    for (const [key, option] of configurableOptions(command)) {
      const setting = config.sections.get(name)?.get(key);
      lines.push(
        setting === undefined
          ? { key: `${name}.${key}`, value: builtInDefault(option), source: "default" }
          : { key: `${name}.${key}`, value: setting.written, source: "config" },
      );
    }
  }
  return lines;
}

export interface ConfigLine {
  key: string;
  /** null where the flag has no fixed default (see UNSET). */
  value: unknown;
  source: "default" | "config";
}

/** What a flag without a fixed default does when left unset. */
const UNSET: Readonly<Record<string, string>> = {
  streams: "tuned to the path",
  bwlimit: "unlimited",
  timeout: "30 s",
  "compress-level": "adapted by the host",
  advertise: "the bind address or this machine's IPv4",
  expire: "never",
  congestion: "bbr where the kernel has it",
  relay: "none",
};

function builtInDefault(option: Option): unknown {
  if (option.negate) return option.defaultValue ?? true;
  if (option.isBoolean()) return option.defaultValue ?? false;
  return option.defaultValue ?? null;
}

/** `teleport config show`: the effective defaults, and where each came from. */
export function configShowCommand(program: Command, flags: { json?: boolean }): void {
  const config = loadConfig(program);
  const lines = describeConfig(program, config);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ path: config.path, found: config.found, settings: lines })}\n`);
    return;
  }
  process.stdout.write(`config file: ${config.path}${config.found ? "" : " (none: built-in defaults)"}\n`);
  const rows = lines.map(({ key, value, source }) => [
    key,
    value === null ? `(${UNSET[key.slice(key.indexOf(".") + 1)] ?? "unset"})` : JSON.stringify(value),
    source === "config" ? "config file" : "default",
  ]);
  const keyWidth = Math.max(...rows.map(([key]) => (key ?? "").length));
  const valueWidth = Math.max(...rows.map(([, value]) => (value ?? "").length));
  for (const [key, value, source] of rows)
    process.stdout.write(`${(key ?? "").padEnd(keyWidth)}  ${(value ?? "").padEnd(valueWidth)}  ${source}\n`);
}
