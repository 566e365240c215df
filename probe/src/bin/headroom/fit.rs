//! `headroom fit` (not yet implemented).

/// Arguments of `headroom fit`.
#[derive(clap::Args)]
pub struct FitArgs {}

/// Run the command.
pub fn run(args: FitArgs) -> anyhow::Result<()> {
    let FitArgs {} = args;
    anyhow::bail!("`headroom fit` is not implemented yet")
}
