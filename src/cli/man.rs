//! `moat man`: the man page, rendered by clap_mangen from the one clap definition of the CLI.

use super::args::{Cli, ManArgs};
use super::Failure;
use clap::CommandFactory;
use std::io::Write;

/// Prints `moat.1` (roff) to stdout, or with `-o DIR` writes it and one page per subcommand
/// (`moat-ask.1`, `moat-models-pull.1`, …) into DIR, each atomically.
///
/// Errors: a page that cannot be written (a runtime failure naming the file); nothing else fails.
pub fn run(args: ManArgs) -> Result<i32, Failure> {
    let pages = pages();
    match args.out_dir {
        None => {
            let (_, top) = pages.into_iter().last().expect("the top-level page is always rendered");
            std::io::stdout()
                .write_all(&top)
                .map_err(|e| Failure::runtime(format!("cannot print the man page: {e}")))?;
        }
        Some(dir) => {
            for (name, roff) in &pages {
                let path = dir.join(name);
                crate::atomic_write::write_atomic(&path, roff)
                    .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))?;
            }
            warnln!("moat: wrote {} man pages to {}", pages.len(), dir.display());
        }
    }
    Ok(0)
}

/// Every page as (file name, roff), subcommands first and `moat.1` last, as `clap_mangen::generate_to`
/// would write them.
fn pages() -> Vec<(String, Vec<u8>)> {
    // Clap's own `help` subcommand would get a page that says nothing `--help` does not.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    collect(cmd, &mut out);
    out
}

fn collect(cmd: clap::Command, out: &mut Vec<(String, Vec<u8>)>) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
        collect(sub, out);
    }
    let man = clap_mangen::Man::new(cmd);
    let mut roff = Vec::new();
    man.render(&mut roff).expect("rendering into memory cannot fail");
    out.push((man.get_filename(), roff));
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_page_per_command_with_the_sampling_flags_on_the_top_one() {
        let pages = super::pages();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "moat.1",
            "moat-ask.1",
            "moat-models-pull.1",
            "moat-completions.1",
            "moat-man.1",
            "moat-sessions-move-aside.1",
            "moat-history-search.1",
        ] {
            assert!(names.contains(&want), "{want} in {names:?}");
        }
        assert!(!names.contains(&"moat-help.1"), "{names:?}");
        let top = String::from_utf8(pages.last().unwrap().1.clone()).unwrap();
        assert!(top.contains("\n.TH moat 1 "), "{}", &top[..200.min(top.len())]);
        for knob in crate::sampling::KNOBS {
            assert!(top.contains(&format!("\\-\\-{}", knob.flag.replace('-', "\\-"))), "--{} in the page", knob.flag);
        }
    }
}
