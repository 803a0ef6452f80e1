//! Shell completion, both ways people reach the binary.
//!
//! `completion SHELL` prints a script for `kubectl-airgap` typed as a command (clap_complete
//! generates it from the same clap definitions, so it never drifts). Typed as `kubectl airgap`,
//! completion goes through kubectl: kubectl 1.26+ runs `kubectl_complete-airgap ARGS... WORD`
//! and reads candidates in cobra's `__complete` protocol (`candidate\tdescription` lines, then
//! `:DIRECTIVE`). That script runs the hidden `__complete` command here, which walks the clap
//! definitions the same way.

use clap::{Arg, Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, EXIT_OK, ExitStatus};

#[derive(Debug, Args)]
pub(crate) struct CompletionArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The first argument that asks for candidates in cobra's protocol (what `kubectl_complete-airgap`
/// passes); not a clap subcommand, so no generated completion script lists it.
pub(super) const COMPLETE: &str = "__complete";

pub(super) fn run(args: &CompletionArgs) -> anyhow::Result<ExitStatus> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, BIN, &mut script);
    let mut script = String::from_utf8(script)?;
    if args.shell == Shell::Bash {
        // clap_complete 4.6 names a subcommand's case `kubectl__subcmd__airgap__subcmd__push`
        // where it dispatches to `kubectl__airgap__subcmd__push` (it turns the bin name's `-`
        // into `__subcmd__` in one place and `__` in the other), so no flag of a subcommand
        // would complete. One consistent name fixes it; the bash test catches a regression.
        script = script.replace("kubectl__subcmd__airgap__", "kubectl__airgap__");
    }
    print!("{script}");
    Ok(EXIT_OK)
}

const BIN: &str = "kubectl-airgap";

/// Prints the candidates for the last of `words`, then `:DIRECTIVE`.
pub(super) fn complete(words: &[String]) -> ExitStatus {
    let (candidates, directive) = candidates(words);
    let mut out = String::new();
    for (value, help) in candidates {
        out.push_str(&value);
        if !help.is_empty() {
            out.push('\t');
            out.push_str(&help);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{}\n", directive as u8));
    print!("{out}");
    EXIT_OK
}

/// cobra's ShellCompDirective values that are used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Directive {
    /// Let the shell complete file names.
    Files = 0,
    /// The candidates are all there is.
    NoFiles = 4,
}

/// The candidates for the last of `words` (the words after `kubectl airgap`).
pub(super) fn candidates(words: &[String]) -> (Vec<(String, String)>, Directive) {
    let mut root = Cli::command();
    root.build();
    let (current, before) = match words.split_last() {
        Some((c, b)) => (c.as_str(), b),
        None => ("", &[][..]),
    };
    let mut cmd = &root;
    let mut value_of: Option<&Arg> = None;
    for word in before {
        if value_of.take().is_some() {
            continue;
        }
        if word.starts_with('-') {
            value_of =
                flag(cmd, word).filter(|a| a.get_action().takes_values() && !word.contains('='));
        } else if let Some(sub) = cmd.find_subcommand(word) {
            cmd = sub;
        }
    }
    if let Some(arg) = value_of {
        return values(arg, "", current);
    }
    if let Some((name, partial)) = current
        .split_once('=')
        .filter(|_| current.starts_with("--"))
    {
        return match flag(cmd, name) {
            Some(arg) => values(arg, &format!("{name}="), partial),
            None => (Vec::new(), Directive::NoFiles),
        };
    }
    if current.starts_with('-') {
        let mut out = Vec::new();
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            let help = help_of(arg);
            if let Some(long) = arg.get_long() {
                out.push((format!("--{long}"), help.clone()));
            }
            if let Some(short) = arg.get_short() {
                out.push((format!("-{short}"), help));
            }
        }
        out.retain(|(c, _)| c.starts_with(current));
        return (out, Directive::NoFiles);
    }
    if cmd.has_subcommands() {
        let out = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name().starts_with(current))
            .map(|s| {
                let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
                (s.get_name().to_string(), first_line(&about))
            })
            .collect();
        return (out, Directive::NoFiles);
    }
    let positional_values: Vec<&Arg> = cmd
        .get_positionals()
        .filter(|a| !a.get_possible_values().is_empty())
        .collect();
    match positional_values.first() {
        Some(arg) => values(arg, "", current),
        None => (Vec::new(), Directive::Files),
    }
}

/// The argument a flag word names (`--output`, `--output=json`, `-o`).
fn flag<'c>(cmd: &'c clap::Command, word: &str) -> Option<&'c Arg> {
    let name = word.split('=').next().unwrap_or(word);
    cmd.get_arguments().find(|a| {
        if let Some(long) = name.strip_prefix("--") {
            a.get_long() == Some(long)
        } else {
            let short = name.strip_prefix('-').and_then(|s| s.chars().next());
            short.is_some() && a.get_short() == short
        }
    })
}

/// The values `arg` takes that start with `partial`; files when it takes free text.
fn values(arg: &Arg, prefix: &str, partial: &str) -> (Vec<(String, String)>, Directive) {
    let possible = arg.get_possible_values();
    if possible.is_empty() {
        return (Vec::new(), Directive::Files);
    }
    let out = possible
        .iter()
        .filter(|v| !v.is_hide_set() && v.get_name().starts_with(partial))
        .map(|v| {
            let help = v.get_help().map(|h| h.to_string()).unwrap_or_default();
            (format!("{prefix}{}", v.get_name()), first_line(&help))
        })
        .collect();
    (out, Directive::NoFiles)
}

fn help_of(arg: &Arg) -> String {
    first_line(&arg.get_help().map(|h| h.to_string()).unwrap_or_default())
}

/// Descriptions are shown beside candidates: one line, no tabs.
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").replace('\t', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(words: &[&str]) -> (Vec<String>, Directive) {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let (c, d) = candidates(&words);
        (c.into_iter().map(|(v, _)| v).collect(), d)
    }

    #[test]
    fn subcommands_then_flags_then_values() {
        let (c, d) = names(&[""]);
        assert!(c.contains(&"check".to_string()) && c.contains(&"push".to_string()));
        assert!(
            !c.iter().any(|n| n.starts_with("__")),
            "hidden stays hidden"
        );
        assert_eq!(d, Directive::NoFiles);
        assert_eq!(names(&["pu"]).0, ["push", "pull-secret"]);
        let (c, _) = names(&["check", "--reg"]);
        assert_eq!(c, ["--registry"]);
        assert!(
            names(&["images", "-"]).0.contains(&"--config".to_string()),
            "global flags too"
        );
        assert_eq!(
            names(&["images", "-o", ""]).0,
            ["table", "json", "yaml", "ess-configmap"]
        );
        assert_eq!(names(&["images", "--output=j"]).0, ["--output=json"]);
        assert_eq!(names(&["check", "-f", ""]), (vec![], Directive::Files));
        assert_eq!(names(&["completion", "z"]).0, ["zsh"]);
        assert_eq!(names(&["ref", ""]).1, Directive::Files);
    }
}
