//! `detbench import-md`.

#[derive(clap::Args)]
pub struct Args {}

pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`detbench import-md` is not implemented yet")
}
