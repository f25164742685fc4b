//! The book's configuration reference (`docs/configuration.md`) is made
//! from the CLI's own definitions (clap's, the ones `scribe serve --help`
//! prints), so the two cannot drift: this test fails when the table in the
//! book is not what they make, and `SCRIBE_BLESS=1` rewrites it.

use clap::CommandFactory;

const BOOK: &str = "docs/configuration.md";
const BEGIN: &str = "<!-- BEGIN GENERATED: scribe serve --help (cargo test config_reference; SCRIBE_BLESS=1 rewrites) -->";
const END: &str = "<!-- END GENERATED -->";

/// One table cell: one line, its pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The table of `scribe serve`'s settings, in the order `--help` lists them.
fn reference() -> String {
    let cli = scribe::config::Cli::command();
    let serve = cli
        .find_subcommand("serve")
        .expect("scribe has a serve command");
    let mut table =
        String::from("| flag | environment | default | what it is |\n|---|---|---|---|\n");
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if arg.is_hide_set() || ["help", "version"].contains(&long) {
            continue;
        }
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| format!("`{}`", v.to_string_lossy()))
            .collect();
        let default = if defaults.is_empty() {
            "none".to_owned()
        } else {
            defaults.join(", ")
        };
        let values: Vec<String> = arg
            .get_possible_values()
            .iter()
            .filter(|v| !v.is_hide_set())
            .map(|v| format!("`{}`", v.get_name()))
            .collect();
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default();
        let help = if values.len() > 1 {
            format!("{help} (one of {})", values.join(", "))
        } else {
            help
        };
        table.push_str(&format!(
            "| `--{long}` | {env} | {default} | {} |\n",
            cell(&help)
        ));
    }
    table
}

#[test]
fn config_reference_is_what_the_cli_defines() {
    let book = std::fs::read_to_string(BOOK).expect("the configuration page");
    let (Some(begin), Some(end)) = (book.find(BEGIN), book.find(END)) else {
        panic!("{BOOK} has lost its generated-table markers");
    };
    let current = &book[begin + BEGIN.len()..end];
    let wanted = format!("\n{}", reference());
    if current == wanted {
        return;
    }
    if std::env::var_os("SCRIBE_BLESS").is_some() {
        let rewritten = format!("{}{BEGIN}{wanted}{}", &book[..begin], &book[end..]);
        std::fs::write(BOOK, rewritten).expect("rewrites the page");
        return;
    }
    panic!(
        "{BOOK}'s settings table is not what `scribe serve --help` defines; \
         run `SCRIBE_BLESS=1 cargo test --test it config_reference` and commit the page.\n\
         wanted:\n{wanted}"
    );
}
