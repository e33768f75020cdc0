/** `mesh completion bash|zsh|fish`: the completion script, generated from the command tree. */
import { Argument, Command } from "commander";
import { bashCompletion, commandTree, fishCompletion, zshCompletion } from "../completion.js";

const SHELLS = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion } as const;

export function completionCommand(): Command {
  return new Command("completion")
    .description("print a shell completion script (bash, zsh or fish) for every command and option")
    .addArgument(new Argument("<shell>", "bash, zsh or fish").choices(Object.keys(SHELLS)))
    .addHelpText(
      "after",
      `
Install:
  bash  source <(mesh completion bash)        (or save it in ~/.local/share/bash-completion/completions/mesh)
  zsh   source <(mesh completion zsh)         (after compinit; or save it as _mesh in your $fpath)
  fish  mesh completion fish > ~/.config/fish/completions/mesh.fish`,
    )
    .action((shell: keyof typeof SHELLS, _opts: unknown, cmd: Command) => {
      let root = cmd;
      while (root.parent) root = root.parent;
      process.stdout.write(SHELLS[shell](commandTree(root)));
    });
}
