//! `headroom show` (not yet implemented).

/// Arguments of `headroom show`.
#[derive(clap::Args)]
pub struct ShowArgs {}

/// Run the command.
pub fn run(args: ShowArgs) -> anyhow::Result<()> {
    let ShowArgs {} = args;
    anyhow::bail!("`headroom show` is not implemented yet")
}
