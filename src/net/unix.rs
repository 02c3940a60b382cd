//! Unix-socket listeners: a socket file left by a server that died is
//! replaced, one a live server listens on is not, and the file is removed
//! when the listener goes (if it is still the one bound).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The socket file of a bound listener; removed on drop if it is still ours
/// (another server may have replaced it meanwhile).
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    /// Device and inode of the file bound.
    id: (u64, u64),
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|meta| (meta.dev(), meta.ino()) == self.id);
        if ours {
            if let Err(error) = fs::remove_file(&self.path) {
                log::warn!("cannot remove the socket file {}: {error}", self.path.display());
            }
        }
    }
}

/// Binds a listener at `path`. A socket file already there is removed and
/// bound again if nothing listens on it (its server died); otherwise the
/// error says what is there.
pub(crate) fn bind(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    let listener = match UnixListener::bind(path) {
        Ok(listener) => listener,
        Err(error) if error.kind() == io::ErrorKind::AddrInUse => {
            replace_stale(path)?;
            UnixListener::bind(path).map_err(|error| named(path, error))?
        }
        Err(error) => return Err(named(path, error)),
    };
    let meta = fs::symlink_metadata(path).map_err(|error| named(path, error))?;
    Ok((listener, SocketFile { path: path.to_owned(), id: (meta.dev(), meta.ino()) }))
}

/// Removes the socket file at `path` if it is stale.
fn replace_stale(path: &Path) -> io::Result<()> {
    let in_use = |what: String| io::Error::new(io::ErrorKind::AddrInUse, format!("unix:{}: {what}", path.display()));
    let meta = fs::symlink_metadata(path).map_err(|error| named(path, error))?;
    if !meta.file_type().is_socket() {
        return Err(in_use("the path exists and is not a socket; left alone".into()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(in_use("a server is listening there".into())),
        Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("unix:{}: removing a stale socket file (nothing listens on it)", path.display());
            fs::remove_file(path).map_err(|error| named(path, error))
        }
        Err(error) => Err(in_use(format!("the socket there cannot be checked: {error}"))),
    }
}

fn named(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("unix:{}: {error}", path.display()))
}
