//! Private files: `umask 077`, tightening a home's permissions, durable
//! replacement of small key files and in-place overwriting (crypto-shredding).

use std::io::{Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Makes every file and directory this process creates private to its user
/// (`umask 077`). Binaries call it first thing.
pub fn private_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Removes group and other permissions from `dir` and everything under it
/// (symbolic links are left alone). Returns how many entries were changed.
pub fn tighten(dir: &Path) -> std::io::Result<usize> {
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&d) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode & 0o700))?;
            changed += 1;
        }
        if meta.is_dir() {
            for e in std::fs::read_dir(&d)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(changed)
}

fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        // Best effort: some file systems refuse fsync on directories.
        let _ = d.sync_all();
    }
}

/// Overwrites an open file's bytes in place with random bytes and fsyncs.
fn overwrite(file: &mut std::fs::File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut left = len;
    while left > 0 {
        let block: [u8; 4096] = crate::crypt::random();
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.sync_all()
}

/// Writes `bytes` to `path` (mode 0600) durably — temporary file, fsync,
/// rename, fsync of the directory — and then overwrites the replaced file's
/// old bytes in place through a descriptor kept open, so that an old wrapped
/// key does not linger in freed blocks (on file systems that overwrite in place).
pub fn replace_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut old = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .ok();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    sync_dir(path);
    if let Some(f) = old.as_mut() {
        overwrite(f)?;
    }
    Ok(())
}

/// Crypto-shreds `path`: overwrites its bytes in place with random bytes,
/// fsyncs, removes it and fsyncs the directory. Absent files are fine.
pub fn shred(path: &Path) -> std::io::Result<()> {
    let mut f = match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    overwrite(&mut f)?;
    drop(f);
    std::fs::remove_file(path)?;
    sync_dir(path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tighten_and_shred() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a");
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = sub.join("f");
        std::fs::write(&f, b"secret").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(tighten(dir.path()).unwrap(), 2);
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(tighten(dir.path()).unwrap(), 0);
        replace_private(&f, b"new").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
        shred(&f).unwrap();
        assert!(!f.exists());
        shred(&f).unwrap();
    }
}
