//! `headroom probe` (not yet implemented).

/// Arguments of `headroom probe`.
#[derive(clap::Args)]
pub struct ProbeArgs {}

/// Run the command.
pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let ProbeArgs {} = args;
    anyhow::bail!("`headroom probe` is not implemented yet")
}
