//! `bglass man DIR`: writes the manual pages (roff, from the command line's own help) of
//! `bglass` and each of its commands, for `man` to read (e.g. DIR=~/.local/share/man/man1).

use std::path::Path;

use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::error::{CliError, CliResult};

/// Writes `bglass.1` and `bglass-COMMAND[-SUBCOMMAND].1` into the directory.
pub fn run(args: ManArgs) -> CliResult {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| CliError::user(format!("cannot create {}: {e}", args.dir.display())))?;
    let mut command = Cli::command();
    command.build();
    let mut written = 0usize;
    write_pages(&command, "bglass", &args.dir, &mut written)?;
    crate::outln!("wrote {written} manual pages to {}", args.dir.display())?;
    crate::outln!(
        "read them with `man -l {}`, or put the directory on MANPATH",
        args.dir.join("bglass.1").display()
    )
}

fn write_pages(command: &clap::Command, name: &str, dir: &Path, written: &mut usize) -> CliResult {
    if command.is_hide_set() {
        return Ok(());
    }
    let page = command.clone().display_name(name.to_owned());
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|e| CliError::internal(format!("cannot render the manual page {name}: {e}")))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, roff)
        .map_err(|e| CliError::user(format!("cannot write {}: {e}", path.display())))?;
    *written += 1;
    for sub in command.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
