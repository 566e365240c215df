//! `headroom models` (not yet implemented).

/// Arguments of `headroom models`.
#[derive(clap::Args)]
pub struct ModelsArgs {}

/// Run the command.
pub fn run(args: ModelsArgs) -> anyhow::Result<()> {
    let ModelsArgs {} = args;
    anyhow::bail!("`headroom models` is not implemented yet")
}
