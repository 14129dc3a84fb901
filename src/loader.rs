//! The loader: reads saga definitions from disk and hands their text to the
//! pure [`Catalog`]. This is the only place definitions touch the file
//! system.
//!
//! A path to a file loads that file; a path to a directory loads every
//! `*.toml` directly in it, in file-name order (other files and
//! subdirectories are ignored). Errors name each file as the path given
//! joined with its file name, e.g. `sagas/trip_booking.toml`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::definition::{Catalog, CatalogError};

/// Largest definition file read; a saga definition is a few KiB at most.
pub const FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Why no catalog could be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A path could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying failure.
        source: io::Error,
    },
    /// A definition file is larger than [`FILE_BYTES_MAX`].
    #[error("{} is {bytes} bytes; a definition file may have at most {FILE_BYTES_MAX}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// A directory without any `*.toml` file.
    #[error("no saga definitions (*.toml) in {}", .0.display())]
    Empty(PathBuf),
    /// The files were read but the set was refused.
    #[error("invalid saga definitions:\n{0}")]
    Invalid(#[from] CatalogError),
}

/// Loads the definitions at `path` (a file or a directory), all or nothing.
pub fn load(path: &Path) -> Result<Catalog, LoadError> {
    let files = if path.is_dir() { toml_files(path)? } else { vec![path.to_path_buf()] };
    if files.is_empty() {
        return Err(LoadError::Empty(path.to_path_buf()));
    }
    let sources = files.iter().map(|file| Ok((file.display().to_string(), read(file)?))).collect::<Result<Vec<_>, LoadError>>()?;
    Ok(Catalog::from_sources(sources)?)
}

/// The `*.toml` files directly in `dir`, sorted by file name.
fn toml_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io_error = |source| LoadError::Io { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let is_toml = entry.path().extension().is_some_and(|ext| ext == "toml");
        if is_toml && entry.path().is_file() {
            files.push(dir.join(entry.file_name()));
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// One file's text, refusing files over [`FILE_BYTES_MAX`].
fn read(file: &Path) -> Result<String, LoadError> {
    let io_error = |source| LoadError::Io { path: file.to_path_buf(), source };
    let bytes = fs::metadata(file).map_err(io_error)?.len();
    if bytes > FILE_BYTES_MAX {
        return Err(LoadError::TooLarge { path: file.to_path_buf(), bytes });
    }
    fs::read_to_string(file).map_err(io_error)
}
