/**
 * `teleport completion bash|zsh|fish`: a completion script for the shell, generated from the
 * commander program itself, so that it names the commands and options the CLI has.
 */
import type { Command, Option } from "commander";

export const COMPLETION_SHELLS = ["bash", "zsh", "fish"] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/** A command as completion sees it: where it sits, what follows it. */
interface CompletedCommand {
  /** The words from `teleport` to it: [] for teleport itself, ["store", "gc"]. */
  path: string[];
  subcommands: { name: string; description: string }[];
  options: CompletedOption[];
}

interface CompletedOption {
  /** Every spelling: "-r", "--recursive". */
  flags: string[];
  description: string;
  /** Takes a value (`--path <remote>`): the next word is not a command. */
  takesValue: boolean;
}

export function completionScript(shell: CompletionShell, program: Command): string {
  const commands = listCommands(program, []);
  if (shell === "bash") return bashScript(commands);
  if (shell === "zsh") return zshScript(commands);
  return fishScript(commands);
}

function listCommands(command: Command, path: string[]): CompletedCommand[] {
  const children = command.commands;
  // The help's own list: the options commander adds (--help, --version) are in it.
  const options = command.createHelp().visibleOptions(command);
  const own: CompletedCommand = {
    path,
    subcommands: children.map((child) => ({ name: child.name(), description: child.description() })),
    options: options.map(completedOption),
  };
  return [own, ...children.flatMap((child) => listCommands(child, [...path, child.name()]))];
}

function completedOption(option: Option): CompletedOption {
  return {
    flags: [option.short, option.long].filter((flag): flag is string => flag !== undefined),
    description: option.description,
    takesValue: option.required || option.optional,
  };
}

/** The key a command's position is matched by in the shell scripts: "", "/pull", "/store/gc". */
function pathKey(path: readonly string[]): string {
  return path.map((word) => `/${word}`).join("");
}

function bashScript(commands: readonly CompletedCommand[]): string {
  const descend = commands
    .filter((command) => command.path.length > 0)
    .map((command) => pathKey(command.path))
    .join("|");
  const valueOptions = commands.flatMap((command) => {
    const flags = command.options.filter((option) => option.takesValue).flatMap((option) => option.flags);
    return flags.length === 0
      ? []
      : [`    ${bashCase(command)}) [[ " ${flags.join(" ")} " == *" $prev "* ]] && return 0 ;;`];
  });
  const words = commands.map(
    (command) =>
      `    ${bashCase(command)}) subcommands="${command.subcommands.map((sub) => sub.name).join(" ")}"; ` +
      `options="${command.options.flatMap((option) => option.flags).join(" ")}" ;;`,
  );
  return `# bash completion for teleport: eval "$(teleport completion bash)", e.g. in ~/.bashrc
_teleport() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local command_path="" word i subcommands="" options=""
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=\${COMP_WORDS[i]}
    case "$command_path/$word" in
      ${descend}) command_path="$command_path/$word" ;;
    esac
  done
  # An option's value: what the shell completes by default (file names).
  case "$command_path" in
${valueOptions.join("\n")}
  esac
  case "$command_path" in
${words.join("\n")}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
  elif [[ -n $subcommands ]]; then
    COMPREPLY=($(compgen -W "$subcommands" -- "$cur"))
  fi
}
complete -o default -F _teleport teleport
`;
}

function bashCase(command: CompletedCommand): string {
  return `"${pathKey(command.path)}"`;
}

function zshScript(commands: readonly CompletedCommand[]): string {
  const descend = commands
    .filter((command) => command.path.length > 0)
    .map((command) => `'${pathKey(command.path)}'`)
    .join("|");
  const words = commands.map((command) => {
    const subcommands = command.subcommands.map((sub) => zshQuote(`${sub.name}:${sub.description}`));
    const options = command.options.flatMap((option) =>
      option.flags.map((flag) => zshQuote(`${flag}:${option.description}`)),
    );
    const values = command.options.filter((option) => option.takesValue).flatMap((option) => option.flags);
    return (
      `    '${pathKey(command.path)}') subcommands=(${subcommands.join(" ")}); ` +
      `options=(${options.join(" ")}); value_options=(${values.join(" ")}) ;;`
    );
  });
  return `#compdef teleport
# zsh completion for teleport: teleport completion zsh > "\${fpath[1]}/_teleport", or
# eval "$(teleport completion zsh)" after compinit
_teleport() {
  local command_path="" word i
  local -a subcommands options value_options
  for ((i = 2; i < CURRENT; i++)); do
    word=\${words[i]}
    case "$command_path/$word" in
      ${descend}) command_path="$command_path/$word" ;;
    esac
  done
  case "$command_path" in
${words.join("\n")}
  esac
  if (( \${value_options[(Ie)\${words[CURRENT-1]}]} )); then
    _files
  elif [[ \${words[CURRENT]} == -* ]]; then
    _describe -t options option options
  elif (( \${#subcommands} )); then
    _describe -t commands command subcommands
  else
    _files
  fi
}
if [[ \${zsh_eval_context[-1]} == loadautofunc ]]; then
  _teleport "$@"
else
  compdef _teleport teleport
fi
`;
}

/** A zsh single-quoted word; a colon in the name part would split it, so it is escaped. */
function zshQuote(entry: string): string {
  const colon = entry.indexOf(":");
  const name = entry.slice(0, colon).replaceAll(":", "\\:");
  return `'${`${name}${entry.slice(colon)}`.replaceAll("'", "'\\''")}'`;
}

function fishScript(commands: readonly CompletedCommand[]): string {
  const lines = [
    "# fish completion for teleport: teleport completion fish > ~/.config/fish/completions/teleport.fish",
  ];
  for (const command of commands) {
    const condition = fishCondition(command);
    for (const sub of command.subcommands) {
      lines.push(
        `complete -c teleport -n ${fishQuote(condition)} -f -a ${sub.name} -d ${fishQuote(sub.description)}`,
      );
    }
    for (const option of command.options) {
      const spellings = option.flags.map((flag) =>
        flag.startsWith("--") ? `-l ${flag.slice(2)}` : `-s ${flag.slice(1)}`,
      );
      lines.push(
        `complete -c teleport -n ${fishQuote(condition)} ${spellings.join(" ")}${option.takesValue ? " -r" : ""} -d ${fishQuote(option.description)}`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

/** True in fish exactly where the words so far lead to `command` (and not one of its subcommands). */
function fishCondition(command: CompletedCommand): string {
  if (command.path.length === 0) return "__fish_use_subcommand";
  const seen = command.path.map((word) => `__fish_seen_subcommand_from ${word}`);
  const deeper = command.subcommands.map((sub) => sub.name);
  return [
    ...seen,
    ...(deeper.length > 0 ? [`not __fish_seen_subcommand_from ${deeper.join(" ")}`] : []),
  ].join("; and ");
}

function fishQuote(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}
