//! What a shell and `man` need from the command line: completion scripts
//! (`warden completions bash|zsh|fish`) and the man pages shipped in
//! `deploy/man/` (written by the hidden `warden man`), both generated from the
//! clap definition so they never fall behind it.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::args::Cli;

/// Prints the completion script of `shell` on stdout.
pub fn completions(shell: Shell) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut Cli::command(), "warden", &mut out);
    out.flush().context("cannot write the completion script")?;
    Ok(0)
}

/// Writes every man page into `dir` (created if missing) and names them.
pub fn write_man_pages(dir: &Path) -> anyhow::Result<u8> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in man_pages()? {
        let path = dir.join(&name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(0)
}

/// The man pages as (file name, roff text): `warden.1`, then one page per
/// visible command (`warden-check.1`, `warden-baseline-accept.1`, …).
///
/// The pages carry the bare package version, not the commit or the build
/// date, so that the committed pages only change when the interface does.
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command()
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect(cmd, &mut pages)?;
    Ok(pages)
}

fn collect(cmd: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let man = clap_mangen::Man::new(cmd);
    let mut text = Vec::new();
    man.render(&mut text)
        .context("cannot render the man page")?;
    pages.push((man.get_filename(), text));
    for sub in subcommands {
        collect(sub, pages)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_a_page_per_visible_command() {
        let names: Vec<String> = man_pages().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "warden.1");
        assert!(names.contains(&"warden-check.1".to_owned()), "{names:?}");
        assert!(
            names.contains(&"warden-baseline-accept.1".to_owned()),
            "{names:?}"
        );
        assert!(!names.iter().any(|n| n.contains("-man")), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("-help")), "{names:?}");
    }
}
