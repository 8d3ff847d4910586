//! Large values as files: written and fsynced (with their directory) before
//! sled records a pointer to them, so that sled never keeps a value large
//! enough to become one of its own blob files (which it points to before they
//! are durable). See docs/store.md, "Large values".
//!
//! This layer takes bytes in and gives the same bytes back; it knows nothing
//! of what they mean (records, encryption).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Values (as stored: records, meta values, sync states) longer than this go
/// to a file. Small enough that no sled node can reach sled's blob threshold
/// (docs/store.md explains the arithmetic).
pub const INLINE_MAX: usize = 4096;

/// The directory, inside the store, that holds the files.
pub(crate) const LARGE_DIR: &str = "large";

/// Longest file name this module writes or accepts (a file-system limit is 255).
const MAX_NAME: usize = 200;

/// Which tree a file's pointer lives in; the first character of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// `snapshots`
    Snapshot,
    /// `chunks`
    Chunk,
    /// `meta_large`
    Meta,
    /// `sync_states_large`
    SyncState,
}

impl Tag {
    fn letter(self) -> char {
        match self {
            Tag::Snapshot => 's',
            Tag::Chunk => 'c',
            Tag::Meta => 'm',
            Tag::SyncState => 'y',
        }
    }
    fn from_letter(c: char) -> Option<Tag> {
        Some(match c {
            's' => Tag::Snapshot,
            'c' => Tag::Chunk,
            'm' => Tag::Meta,
            'y' => Tag::SyncState,
            _ => return None,
        })
    }
}

/// What sled keeps instead of a large value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    /// Bytes in the file.
    pub len: u64,
    /// crc32 of the file's contents.
    pub crc: u32,
    /// The file's name inside `large/`.
    pub name: String,
}

impl Pointer {
    /// `len: u64 BE`, `crc32: u32 BE`, name (UTF-8).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(12 + self.name.len());
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.crc.to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        out
    }

    /// Parses [`Pointer::encode`]'s output; `None` if malformed.
    pub fn decode(bytes: &[u8]) -> Option<Pointer> {
        let len = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let crc = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
        let name = std::str::from_utf8(bytes.get(12..)?).ok()?;
        if name.is_empty() || name.len() > MAX_NAME || name.contains(['/', '\0']) {
            return None;
        }
        Some(Pointer {
            len,
            crc,
            name: name.to_owned(),
        })
    }
}

/// Why a large value could not be written or read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LargeError {
    /// The file system failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is missing or does not match its pointer.
    #[error("large value file {name} {detail}")]
    Damaged {
        /// The file's name.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

/// The `large/` directory of one store.
#[derive(Debug)]
pub(crate) struct LargeFiles {
    dir: PathBuf,
    counter: AtomicU64,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LargeError + use<> {
    let path = path.to_owned();
    move |source| LargeError::Io { path, source }
}

/// fsyncs a directory (its entries: creates, renames, deletes).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LargeError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// `create_dir_all` that makes each directory it creates durable: the new
/// directory's entry is fsynced in its parent. Directories are made 0700.
pub(crate) fn create_dir_all_durable(path: &Path) -> Result<(), LargeError> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_all_durable(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(io_err(path)(e)),
    }
    sync_dir(path)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    sync_dir(&parent)
}

impl LargeFiles {
    /// Opens (creating, 0700, durably) `<store>/large`.
    pub fn open(store: &Path) -> Result<LargeFiles, LargeError> {
        let dir = store.join(LARGE_DIR);
        create_dir_all_durable(&dir)?;
        Ok(LargeFiles {
            dir,
            counter: AtomicU64::new(0),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn name_for(&self, tag: Tag, key: &[u8]) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut name = String::with_capacity(2 + key.len() * 2 + 40);
        name.push(tag.letter());
        name.push('-');
        for b in key {
            name.push_str(&format!("{b:02x}"));
        }
        name.push_str(&format!("-{nanos:x}{n:x}"));
        name
    }

    /// Writes `content` as a new file for the record `key` of `tag`'s tree,
    /// fsyncs it and the directory, and returns the pointer to record.
    pub fn write(&self, tag: Tag, key: &[u8], content: &[u8]) -> Result<Pointer, LargeError> {
        loop {
            let name = self.name_for(tag, key);
            if name.len() > MAX_NAME {
                // Keys are bounded (peer ≤ 256 bytes ⇒ at most 200 hex chars
                // would not fit): callers only pass keys ≤ 80 bytes, see lib.rs.
                return Err(LargeError::Damaged {
                    name,
                    detail: "would have a name longer than 200 bytes (key too long)".into(),
                });
            }
            let path = self.dir.join(&name);
            let mut file = match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err(&path)(e)),
            };
            let written = file
                .write_all(content)
                .and_then(|()| file.sync_all())
                .map_err(io_err(&path));
            if let Err(e) = written.and_then(|()| sync_dir(&self.dir)) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            return Ok(Pointer {
                len: content.len() as u64,
                crc: crc32fast::hash(content),
                name,
            });
        }
    }

    /// Reads the file `p` points to and checks it against the pointer.
    pub fn read(&self, p: &Pointer) -> Result<Vec<u8>, LargeError> {
        let path = self.dir.join(&p.name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(LargeError::Damaged {
                    name: p.name.clone(),
                    detail: "is missing".into(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        if bytes.len() as u64 != p.len {
            return Err(LargeError::Damaged {
                name: p.name.clone(),
                detail: format!("holds {} bytes, {} expected", bytes.len(), p.len),
            });
        }
        if crc32fast::hash(&bytes) != p.crc {
            return Err(LargeError::Damaged {
                name: p.name.clone(),
                detail: "fails its checksum".into(),
            });
        }
        Ok(bytes)
    }

    /// Deletes a file (nothing happens if it is already gone).
    pub fn delete(&self, name: &str) -> Result<(), LargeError> {
        let path = self.dir.join(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Every file name in the directory.
    pub fn list(&self) -> Result<Vec<String>, LargeError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }
}

/// The tree and record key a file name says should point to it.
pub(crate) fn parse_name(name: &str) -> Option<(Tag, Vec<u8>)> {
    let mut parts = name.splitn(3, '-');
    let tag = parts.next()?;
    let hex = parts.next()?;
    parts.next()?;
    let mut chars = tag.chars();
    let tag = Tag::from_letter(chars.next()?)?;
    if chars.next().is_some() || hex.len() % 2 != 0 {
        return None;
    }
    let key = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some((tag, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_pointers_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let large = LargeFiles::open(dir.path()).unwrap();
        let key = b"V1\0\0\0\0\0\0\0\0\x07";
        let p = large.write(Tag::Chunk, key, b"payload").unwrap();
        assert_eq!(parse_name(&p.name), Some((Tag::Chunk, key.to_vec())));
        assert_eq!(Pointer::decode(&p.encode()), Some(p.clone()));
        assert_eq!(large.read(&p).unwrap(), b"payload");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(large.dir().join(&p.name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mode = std::fs::metadata(large.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(large.dir().join(&p.name), b"payloaX").unwrap();
        assert!(matches!(large.read(&p), Err(LargeError::Damaged { .. })));
        large.delete(&p.name).unwrap();
        assert!(matches!(large.read(&p), Err(LargeError::Damaged { .. })));
        assert_eq!(parse_name("x-00-1"), None);
        assert_eq!(parse_name("c-0-1"), None);
        assert_eq!(parse_name("c-00"), None);
    }
}
