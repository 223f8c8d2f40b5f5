//! Turning the SSH and transfer flags into the driver's `ConnectOptions`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use deltasync_driver::DriverError;
use deltasync_driver::client::ConnectOptions;
use deltasync_driver::wire::bwlimit::BwLimit;

use crate::cli::{SshArgs, TransferArgs};

pub fn connect_options(ssh: &SshArgs, transfer: &TransferArgs) -> Result<ConnectOptions> {
    let bwlimit = check(ssh, transfer)?;
    let compress = if transfer.no_compress {
        Some(false)
    } else if transfer.compress {
        Some(true)
    } else {
        None
    };
    Ok(ConnectOptions {
        rsh: ssh.rsh.clone(),
        identity: ssh.identity.clone(),
        known_hosts: ssh.known_hosts.clone(),
        accept_new_host_key: ssh.accept_new_host_key,
        password: password(ssh)?,
        remote_bin: ssh.remote_bin.clone(),
        no_deploy: ssh.no_deploy,
        timeout: ssh.timeout.filter(|&s| s > 0).map(Duration::from_secs),
        compress,
        compress_level: transfer.compress_level,
        bwlimit,
        ssh_config: ssh.ssh_config.clone(),
        ..ConnectOptions::default()
    })
}

/// Checks the values that need no I/O; returns the rate limit.
pub fn check(ssh: &SshArgs, transfer: &TransferArgs) -> Result<BwLimit, DriverError> {
    if let Some(bin) = &ssh.remote_bin {
        shell_words::split(bin)
            .map_err(|e| DriverError::Usage(format!("--remote-bin {bin:?}: {e}")))?;
    }
    if !(1..=19).contains(&transfer.compress_level) {
        let why = format!(
            "--compress-level must be between 1 and 19, not {}",
            transfer.compress_level
        );
        return Err(DriverError::Usage(why));
    }
    match &transfer.bwlimit {
        Some(text) => {
            BwLimit::parse(text).map_err(|e| DriverError::Usage(format!("--bwlimit: {e}")))
        }
        None => Ok(BwLimit::off()),
    }
}

/// `--password-cmd` (its first line of output) or `DELTASYNC_SSH_PASSWORD`.
fn password(ssh: &SshArgs) -> Result<Option<String>> {
    if let Some(cmd) = &ssh.password_cmd {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .output()
            .with_context(|| format!("--password-cmd {cmd:?}"))?;
        if !out.status.success() {
            bail!("--password-cmd {cmd:?} failed with {}", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        return Ok(Some(text.lines().next().unwrap_or("").to_string()));
    }
    Ok(std::env::var("DELTASYNC_SSH_PASSWORD").ok())
}
