//! `detbench zoo`.

#[derive(clap::Args)]
pub struct Args {}

pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`detbench zoo` is not implemented yet")
}
