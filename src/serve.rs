//! `deltasync serve`: clap arguments in, the driver's agent out.

use anyhow::Result;
use deltasync_driver::DriverError;
use deltasync_driver::agent::{self, ServeOptions};

use crate::cli::ServeArgs;

pub fn serve(args: &ServeArgs) -> Result<()> {
    let mut options = ServeOptions {
        root: args.root.clone(),
        jail: None,
        read_only: args.read_only,
        mkdir: args.mkdir,
    };
    // Run as an authorized_keys forced command: confine the client's request.
    if let Ok(original) = std::env::var("SSH_ORIGINAL_COMMAND") {
        options = agent::forced_options(&options, &original).map_err(DriverError::Usage)?;
    }
    agent::serve(&options, std::io::stdin(), std::io::stdout())?;
    Ok(())
}
