//! `headroom devices` (not yet implemented).

/// Arguments of `headroom devices`.
#[derive(clap::Args)]
pub struct DevicesArgs {}

/// Run the command.
pub fn run(args: DevicesArgs) -> anyhow::Result<()> {
    let DevicesArgs {} = args;
    anyhow::bail!("`headroom devices` is not implemented yet")
}
