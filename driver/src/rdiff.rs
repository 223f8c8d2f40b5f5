//! The rdiff-compatible commands: `signature`, `delta` and `patch`, with
//! rdiff's argument conventions (`-` or a missing name is stdin/stdout, an
//! existing output is refused without `--force`).
//!
//! Outputs named by path are written to a temporary file beside them and
//! renamed into place, so a failure never leaves a half-written file under
//! the real name.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::engine::{
    self, DeltaOptions, DeltaStats, IndexedSignature, Limits, PatchFileOptions, PatchStats,
    SigFormat, SignatureParams,
};
use crate::error::DriverError;

/// Where a command reads from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-` or no name).
    Stdin,
    /// A file.
    Path(PathBuf),
}

/// Where a command writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Standard output (`-` or no name).
    Stdout,
    /// A file, replaced atomically.
    Path(PathBuf),
}

impl Input {
    /// rdiff's rule: `-` or nothing means stdin.
    pub fn from_arg(arg: Option<&Path>) -> Input {
        match arg {
            Some(p) if p != Path::new("-") => Input::Path(p.to_path_buf()),
            _ => Input::Stdin,
        }
    }

    fn name(&self) -> PathBuf {
        match self {
            Input::Stdin => PathBuf::from("<stdin>"),
            Input::Path(p) => p.clone(),
        }
    }

    /// Opens the input; also returns its size when it is a regular file
    /// (rdiff sizes its defaults from that, and treats pipes differently).
    fn open(&self) -> Result<(Box<dyn Read + Send>, Option<u64>), DriverError> {
        let io_err = |source| DriverError::Io {
            path: self.name(),
            source,
        };
        let file = match self {
            Input::Path(p) => File::open(p).map_err(io_err)?,
            Input::Stdin => {
                use std::os::fd::AsFd;
                let fd = io::stdin().as_fd().try_clone_to_owned().map_err(io_err)?;
                File::from(fd)
            }
        };
        let meta = file.metadata().map_err(io_err)?;
        let size = meta.is_file().then_some(meta.len());
        Ok((Box::new(BufReader::with_capacity(1 << 16, file)), size))
    }
}

impl Output {
    /// rdiff's rule: `-` or nothing means stdout.
    pub fn from_arg(arg: Option<&Path>) -> Output {
        match arg {
            Some(p) if p != Path::new("-") => Output::Path(p.to_path_buf()),
            _ => Output::Stdout,
        }
    }

    fn check_clobber(&self, force: bool) -> Result<(), DriverError> {
        match self {
            Output::Path(p) if !force && p.symlink_metadata().is_ok() => {
                Err(DriverError::Exists { path: p.clone() })
            }
            _ => Ok(()),
        }
    }
}

/// Writes through `body` to `output`: stdout directly, a path through a
/// temporary file that is renamed into place only when `body` succeeds.
fn write_output<T>(
    output: &Output,
    force: bool,
    body: impl FnOnce(&mut dyn Write) -> Result<T, DriverError>,
) -> Result<T, DriverError> {
    output.check_clobber(force)?;
    match output {
        Output::Stdout => {
            let stdout = io::stdout();
            let mut w = BufWriter::with_capacity(1 << 16, stdout.lock());
            let value = body(&mut w)?;
            w.flush().map_err(|source| DriverError::Io {
                path: "<stdout>".into(),
                source,
            })?;
            Ok(value)
        }
        Output::Path(path) => {
            let io_err = |source| DriverError::Io {
                path: path.clone(),
                source,
            };
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let mut tmp = tempfile::Builder::new()
                .prefix(".deltasync-out.")
                .tempfile_in(dir)
                .map_err(io_err)?;
            let value = {
                let mut w = BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
                let value = body(&mut w)?;
                w.flush().map_err(io_err)?;
                value
            };
            let persisted = if force {
                tmp.persist(path)
            } else {
                tmp.persist_noclobber(path)
            };
            persisted.map_err(|e| io_err(e.error))?;
            Ok(value)
        }
    }
}

/// `deltasync signature`.
#[derive(Clone, Debug)]
pub struct SignatureJob {
    /// The basis file.
    pub basis: Input,
    /// Where the signature goes.
    pub output: Output,
    /// The signature format (`-H` and `-R`).
    pub format: SigFormat,
    /// `-b`: block length, `None` or 0 for rdiff's default.
    pub block_len: Option<u32>,
    /// `-S`: strong-sum length, 0 for full, -1 for rdiff's minimum.
    pub strong_len: Option<i64>,
    /// Overwrite an existing output.
    pub force: bool,
}

/// What `signature` did.
#[derive(Clone, Debug)]
pub struct SignatureReport {
    /// The parameters used.
    pub params: SignatureParams,
    /// Bytes of basis read.
    pub basis_len: u64,
    /// Warnings for the user, as rdiff would print them.
    pub warnings: Vec<String>,
}

/// Writes the signature of a basis.
pub fn signature(job: &SignatureJob) -> Result<SignatureReport, DriverError> {
    let (basis, size) = job.basis.open()?;
    let sig_err = |source| DriverError::Signature {
        path: job.basis.name(),
        source,
    };
    let params =
        SignatureParams::rdiff(job.format, size, job.block_len, job.strong_len).map_err(sig_err)?;
    let mut warnings = Vec::new();
    if let Some(len) = size {
        let min = engine::rdiff_min_strong_len(Some(len), params.block_len);
        if params.strong_len < min {
            warnings.push(format!(
                "strong_len={} smaller than recommended minimum {min} for a {len}-byte basis \
                 with block_len={}: risk of undetected collisions",
                params.strong_len, params.block_len
            ));
        }
    }
    let basis_len = write_output(&job.output, job.force, |w| {
        engine::write_signature(basis, w, params).map_err(sig_err)
    })?;
    Ok(SignatureReport {
        params,
        basis_len,
        warnings,
    })
}

/// `deltasync delta`.
#[derive(Clone, Debug)]
pub struct DeltaJob {
    /// The signature of the basis.
    pub signature: Input,
    /// The new file.
    pub new: Input,
    /// Where the delta goes.
    pub output: Output,
    /// Overwrite an existing output.
    pub force: bool,
    /// Scanner threads (the bytes are the same for any count).
    pub threads: usize,
}

/// Writes the delta of a new file against a signature.
pub fn delta(job: &DeltaJob) -> Result<DeltaStats, DriverError> {
    if job.signature == Input::Stdin && job.new == Input::Stdin {
        return Err(DriverError::Usage(
            "the signature and the new file cannot both be stdin".into(),
        ));
    }
    let (sig_in, _) = job.signature.open()?;
    let sig = engine::read_signature(sig_in, &Limits::default()).map_err(|source| {
        DriverError::Signature {
            path: job.signature.name(),
            source,
        }
    })?;
    let index = IndexedSignature::new(sig);
    let (new, _) = job.new.open()?;
    let options = DeltaOptions {
        threads: job.threads.max(1),
        ..DeltaOptions::default()
    };
    write_output(&job.output, job.force, |w| {
        engine::write_delta(&index, new, w, &options).map_err(|source| DriverError::Delta {
            path: job.new.name(),
            source,
        })
    })
}

/// `deltasync patch`.
#[derive(Clone, Debug)]
pub struct PatchJob {
    /// The basis file (must be seekable).
    pub basis: PathBuf,
    /// The delta.
    pub delta: Input,
    /// Where the new file goes.
    pub output: Output,
    /// Overwrite an existing output.
    pub force: bool,
    /// fsync the new file before renaming it into place.
    pub fsync: bool,
}

/// Applies a delta to a basis.
pub fn patch(job: &PatchJob) -> Result<PatchStats, DriverError> {
    let (delta, _) = job.delta.open()?;
    let patch_err = |source| DriverError::Patch {
        path: job.delta.name(),
        source,
    };
    let basis_err = |source| DriverError::Io {
        path: job.basis.clone(),
        source,
    };
    match &job.output {
        Output::Path(new) => {
            job.output.check_clobber(job.force)?;
            if !job.basis.is_file() {
                return Err(basis_err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "basis must be a regular file",
                )));
            }
            let options = PatchFileOptions {
                fsync: job.fsync,
                ..PatchFileOptions::default()
            };
            engine::patch_file(&job.basis, delta, new, &options).map_err(|e| match e {
                engine::PatchError::Io(source) => DriverError::Io {
                    path: new.clone(),
                    source,
                },
                other => patch_err(other),
            })
        }
        Output::Stdout => {
            let basis = File::open(&job.basis)
                .and_then(engine::FileBasis::new)
                .map_err(basis_err)?;
            write_output(&job.output, true, |w| {
                engine::apply_delta(&basis, delta, w, &Limits::default()).map_err(patch_err)
            })
        }
    }
}
