//! A power-cut simulator: an in-memory FUSE file system that tracks, besides
//! what programs see, what `fsync` has made durable, and at a cut point keeps
//! only that (plus, as a real disk might, a seeded subset of what was not yet
//! synced).
//!
//! The model (POSIX's promise, not one file system's habits):
//! - a file's contents and size are durable as of its last `fsync`/`fdatasync`;
//!   writes and truncations after it are *pending*;
//! - a directory's entries (create, mkdir, unlink, rmdir, rename) are durable
//!   as of its last `fsync` of the directory; later changes are pending;
//! - `sync_file_range`, `close` and `flush` make nothing durable (FUSE does
//!   not even see `sync_file_range`: it is not an fsync).
//!
//! At the cut, for every directory the seed chooses whether its pending entry
//! changes reached the disk (all of them, as a journal would commit them) or
//! none; for every file it chooses whether its pending writes were lost, all
//! written, or torn (each pending write kept or dropped, a kept write of more
//! than one 4 KiB page possibly cut at a page boundary). Every request after
//! the cut fails with `EIO`, so no program can report success for work that
//! was not durable before the cut. [`PowerCutFs::finish`] unmounts and writes
//! the surviving image into an ordinary directory, where the store can be
//! opened and checked.
//!
//! The cut point is counted in *mutating operations* (write, truncate, fsync,
//! create, mkdir, unlink, rmdir, rename, chmod), so a seed names the same cut
//! for the same sequence of operations. Programs with several threads do not
//! always issue the same sequence, so a replay lands at the same operation
//! count, which is usually, not always, the same moment of the workload.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, WriteFlags,
};

/// Page size used to tear writes.
const PAGE: usize = 4096;
/// Attribute and entry cache time handed to the kernel. Every change goes
/// through this mount, so the kernel's caches stay coherent.
const TTL: Duration = Duration::from_secs(1);
/// Deepest directory nesting materialised (guards against cycles).
const MAX_DEPTH: usize = 64;

/// A SplitMix64 generator: small, seedable, the same everywhere.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Where a matrix cuts a workload, counted from the workload's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutPoint {
    /// Before the n-th mutating operation.
    Op(u64),
    /// Before the n-th fsync (file or directory).
    Sync(u64),
}

impl CutPoint {
    /// A seeded cut point within a workload that took `total` (as measured
    /// by an uncut run): half of the seeds cut before a uniformly drawn
    /// operation, half before a uniformly drawn sync.
    pub fn choose(seed: u64, total: FsStats) -> CutPoint {
        let mut rng = SplitMix::new(seed);
        if rng.below(2) == 0 || total.syncs() == 0 {
            CutPoint::Op(1 + rng.below(total.ops.max(1)))
        } else {
            CutPoint::Sync(1 + rng.below(total.syncs()))
        }
    }

    /// Parses `op:N` or `sync:N` (how a failure prints its replay).
    pub fn parse(s: &str) -> Option<CutPoint> {
        let (kind, n) = s.split_once(':')?;
        let n = n.parse().ok()?;
        match kind {
            "op" => Some(CutPoint::Op(n)),
            "sync" => Some(CutPoint::Sync(n)),
            _ => None,
        }
    }

    /// Arms `fs` to cut at this point, counting from the counters in `base`
    /// (what the set-up before the workload did).
    pub fn arm(self, fs: &PowerCutFs, base: FsStats) {
        match self {
            CutPoint::Op(n) => fs.set_cut_before_op(Some(base.ops + n)),
            CutPoint::Sync(n) => fs.set_cut_before_sync(Some(base.syncs() + n)),
        }
    }
}

impl std::fmt::Display for CutPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CutPoint::Op(n) => write!(f, "op:{n}"),
            CutPoint::Sync(n) => write!(f, "sync:{n}"),
        }
    }
}

/// The counters of a workload alone: `after` minus the set-up's `base`.
pub fn workload_stats(after: FsStats, base: FsStats) -> FsStats {
    FsStats {
        ops: after.ops - base.ops,
        writes: after.writes - base.writes,
        file_syncs: after.file_syncs - base.file_syncs,
        dir_syncs: after.dir_syncs - base.dir_syncs,
    }
}

/// When to cut the power.
#[derive(Debug, Clone, Copy)]
pub struct CutPlan {
    /// Seeds the choice of what unsynced data survives.
    pub seed: u64,
    /// Cut just before the mutating operation with this number (1-based) is
    /// applied. `None`: only when [`PowerCutFs::cut_now`] is called.
    pub cut_before_op: Option<u64>,
    /// Cut just before the `fsync` (of a file or a directory) with this
    /// number (1-based) is applied: the moments between two syncs are where
    /// ordering mistakes show. `None`: not by sync count.
    pub cut_before_sync: Option<u64>,
}

impl CutPlan {
    /// A plan that never cuts by itself (only [`PowerCutFs::cut_now`]).
    pub fn never(seed: u64) -> CutPlan {
        CutPlan {
            seed,
            cut_before_op: None,
            cut_before_sync: None,
        }
    }
}

#[derive(Debug, Clone)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    Truncate(u64),
}

#[derive(Debug)]
enum Node {
    File {
        data: Vec<u8>,
        durable: Vec<u8>,
        pending: Vec<Pending>,
        mode: u32,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        durable: BTreeMap<OsString, u64>,
        mode: u32,
    },
}

/// Counters of what the file system saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Mutating operations applied (the cut counter).
    pub ops: u64,
    /// `write` requests.
    pub writes: u64,
    /// File `fsync`/`fdatasync` requests.
    pub file_syncs: u64,
    /// Directory `fsync` requests.
    pub dir_syncs: u64,
}

impl FsStats {
    /// File and directory syncs together (the `cut_before_sync` counter).
    pub fn syncs(&self) -> u64 {
        self.file_syncs + self.dir_syncs
    }
}

/// One entry of a materialised image.
#[derive(Debug, Clone)]
enum ImageEntry {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
}

/// What survived a cut.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// Relative path → entry, parents before children.
    entries: BTreeMap<PathBuf, ImageEntry>,
    /// Files whose surviving contents differ from both their durable and their
    /// latest contents (a torn or partly lost write).
    pub torn_files: usize,
    /// Files that lost pending data entirely.
    pub lost_files: usize,
}

impl Image {
    /// Number of files in the image.
    pub fn files(&self) -> usize {
        self.entries
            .values()
            .filter(|e| matches!(e, ImageEntry::File { .. }))
            .count()
    }

    /// Writes the image under `dest` (which must exist and be empty).
    pub fn write_to(&self, dest: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        for (path, entry) in &self.entries {
            let target = dest.join(path);
            match entry {
                ImageEntry::Dir { mode } => {
                    std::fs::create_dir_all(&target)?;
                    std::fs::set_permissions(
                        &target,
                        std::fs::Permissions::from_mode(mode & 0o7777 | 0o700),
                    )?;
                }
                ImageEntry::File { mode, data } => {
                    std::fs::write(&target, data)?;
                    std::fs::set_permissions(
                        &target,
                        std::fs::Permissions::from_mode(mode & 0o7777 | 0o600),
                    )?;
                }
            }
        }
        Ok(())
    }
}

struct State {
    nodes: BTreeMap<u64, Node>,
    next_ino: u64,
    stats: FsStats,
    plan: CutPlan,
    image: Option<Image>,
}

fn apply(data: &mut Vec<u8>, p: &Pending) {
    match p {
        Pending::Write {
            offset,
            data: bytes,
        } => {
            let off = usize::try_from(*offset).unwrap_or(usize::MAX);
            let end = off.saturating_add(bytes.len());
            if data.len() < end {
                data.resize(end, 0);
            }
            data[off..end].copy_from_slice(bytes);
        }
        Pending::Truncate(len) => data.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0),
    }
}

impl State {
    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let (kind, perm, size, nlink) = match node {
            Node::File { data, mode, .. } => (FileType::RegularFile, *mode, data.len() as u64, 1),
            Node::Dir { mode, entries, .. } => {
                (FileType::Directory, *mode, 0, 2 + entries.len() as u32)
            }
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm: (perm & 0o7777) as u16,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            flags: 0,
            blksize: PAGE as u32,
        })
    }

    /// Counts a sync; `Err(EIO)` if the power is (now) off.
    fn sync_op(&mut self) -> Result<(), Errno> {
        self.op()?;
        let next = self.stats.syncs() + 1;
        if self.plan.cut_before_sync.is_some_and(|n| next >= n) {
            self.cut();
            return Err(Errno::EIO);
        }
        Ok(())
    }

    /// Counts a mutating operation; `Err(EIO)` if the power is (now) off.
    fn op(&mut self) -> Result<(), Errno> {
        if self.image.is_some() {
            return Err(Errno::EIO);
        }
        let next = self.stats.ops + 1;
        if self.plan.cut_before_op.is_some_and(|n| next >= n) {
            self.cut();
            return Err(Errno::EIO);
        }
        self.stats.ops = next;
        Ok(())
    }

    fn alive(&self) -> Result<(), Errno> {
        if self.image.is_some() {
            Err(Errno::EIO)
        } else {
            Ok(())
        }
    }

    fn dir_entries(&mut self, ino: u64) -> Result<&mut BTreeMap<OsString, u64>, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir { entries, .. }) => Ok(entries),
            Some(Node::File { .. }) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn lookup(&mut self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir_entries(parent)?
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    fn new_node(&mut self, node: Node) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    /// Takes the picture of what survives, seeded by the plan.
    fn cut(&mut self) {
        if self.image.is_some() {
            return;
        }
        let mut rng = SplitMix::new(self.plan.seed ^ 0x5EED_0FC0_FFEE);
        let mut image = Image::default();
        // Decide each directory's and file's fate once, in inode order, so
        // that the image is a pure function of (seed, operation history).
        let mut dir_new: BTreeMap<u64, bool> = BTreeMap::new();
        let mut file_data: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for (&ino, node) in &self.nodes {
            match node {
                Node::Dir { .. } => {
                    dir_new.insert(ino, rng.below(2) == 1);
                }
                Node::File {
                    data,
                    durable,
                    pending,
                    ..
                } => {
                    let mut out = durable.clone();
                    if !pending.is_empty() {
                        match rng.below(3) {
                            0 => {} // everything pending lost
                            1 => out = data.clone(),
                            _ => {
                                for p in pending {
                                    if rng.below(2) == 0 {
                                        continue;
                                    }
                                    match p {
                                        Pending::Write { offset, data } if data.len() > PAGE => {
                                            let pages = data.len().div_ceil(PAGE) as u64;
                                            let keep = (1 + rng.below(pages)) as usize * PAGE;
                                            let keep = keep.min(data.len());
                                            apply(
                                                &mut out,
                                                &Pending::Write {
                                                    offset: *offset,
                                                    data: data[..keep].to_vec(),
                                                },
                                            );
                                        }
                                        other => apply(&mut out, other),
                                    }
                                }
                            }
                        }
                        if out != *data {
                            if out == *durable {
                                image.lost_files += 1;
                            } else {
                                image.torn_files += 1;
                            }
                        }
                    }
                    file_data.insert(ino, out);
                }
            }
        }
        let mut stack = vec![(1u64, PathBuf::new(), 0usize)];
        while let Some((ino, path, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                continue;
            }
            let Some(Node::Dir {
                entries,
                durable,
                mode,
            }) = self.nodes.get(&ino)
            else {
                continue;
            };
            if !path.as_os_str().is_empty() {
                image
                    .entries
                    .insert(path.clone(), ImageEntry::Dir { mode: *mode });
            }
            let chosen = if dir_new.get(&ino).copied().unwrap_or(false) {
                entries
            } else {
                durable
            };
            for (name, child) in chosen {
                let child_path = path.join(name);
                match self.nodes.get(child) {
                    Some(Node::Dir { .. }) => stack.push((*child, child_path, depth + 1)),
                    Some(Node::File { mode, .. }) => {
                        let data = file_data.get(child).cloned().unwrap_or_default();
                        image
                            .entries
                            .insert(child_path, ImageEntry::File { mode: *mode, data });
                    }
                    None => {}
                }
            }
        }
        self.image = Some(image);
    }
}

/// The FUSE file system (the part the kernel talks to).
struct CutFsInner {
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in a handler cannot leave the maps half-updated in a way that
    // matters more than the panic itself; carry on so the mount can end.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl CutFsInner {
    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Filesystem for CutFsInner {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut st = self.st();
        let r = st.alive().and_then(|()| st.lookup(parent.0, name));
        match r.and_then(|ino| st.attr(ino).ok_or(Errno::ENOENT)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.st();
        match st
            .alive()
            .and_then(|()| st.attr(ino.0).ok_or(Errno::ENOENT))
        {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.st();
        let r = (|| {
            st.alive()?;
            if mode.is_some() || size.is_some() {
                st.op()?;
            }
            match st.nodes.get_mut(&ino.0) {
                Some(Node::File {
                    data,
                    pending,
                    mode: m,
                    ..
                }) => {
                    if let Some(len) = size {
                        let p = Pending::Truncate(len);
                        apply(data, &p);
                        pending.push(p);
                    }
                    if let Some(new) = mode {
                        *m = new;
                    }
                }
                Some(Node::Dir { mode: m, .. }) => {
                    if size.is_some() {
                        return Err(Errno::EISDIR);
                    }
                    if let Some(new) = mode {
                        *m = new;
                    }
                }
                None => return Err(Errno::ENOENT),
            }
            st.attr(ino.0).ok_or(Errno::ENOENT)
        })();
        match r {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        let r = (|| {
            st.op()?;
            if st.dir_entries(parent.0)?.contains_key(name) {
                return Err(Errno::EEXIST);
            }
            let ino = st.new_node(Node::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
                mode: mode & !umask,
            });
            st.dir_entries(parent.0)?.insert(name.to_owned(), ino);
            st.attr(ino).ok_or(Errno::EIO)
        })();
        match r {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.st();
        let r = (|| {
            st.op()?;
            if st.dir_entries(parent.0)?.contains_key(name) {
                return Err(Errno::EEXIST);
            }
            let ino = st.new_node(Node::File {
                data: Vec::new(),
                durable: Vec::new(),
                pending: Vec::new(),
                mode: mode & !umask,
            });
            st.dir_entries(parent.0)?.insert(name.to_owned(), ino);
            st.attr(ino).ok_or(Errno::EIO)
        })();
        match r {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.st();
        let r = (|| {
            st.op()?;
            let ino = st.lookup(parent.0, name)?;
            if matches!(st.nodes.get(&ino), Some(Node::Dir { .. })) {
                return Err(Errno::EISDIR);
            }
            st.dir_entries(parent.0)?.remove(name);
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.st();
        let r = (|| {
            st.op()?;
            let ino = st.lookup(parent.0, name)?;
            match st.nodes.get(&ino) {
                Some(Node::Dir { entries, .. }) if !entries.is_empty() => {
                    return Err(Errno::ENOTEMPTY);
                }
                Some(Node::Dir { .. }) => {}
                _ => return Err(Errno::ENOTDIR),
            }
            st.dir_entries(parent.0)?.remove(name);
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        let r = (|| {
            st.op()?;
            if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                return Err(Errno::EINVAL);
            }
            let ino = st.lookup(parent.0, name)?;
            let existing = st.dir_entries(newparent.0)?.get(newname).copied();
            if let Some(old) = existing {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                    return Err(Errno::EEXIST);
                }
                if let Some(Node::Dir { entries, .. }) = st.nodes.get(&old)
                    && !entries.is_empty()
                {
                    return Err(Errno::ENOTEMPTY);
                }
            }
            st.dir_entries(parent.0)?.remove(name);
            st.dir_entries(newparent.0)?.insert(newname.to_owned(), ino);
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let st = self.st();
        match st.alive() {
            Ok(()) if st.nodes.contains_key(&ino.0) => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Ok(()) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.st();
        if let Err(e) = st.alive() {
            return reply.error(e);
        }
        match st.nodes.get(&ino.0) {
            Some(Node::File { data, .. }) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let end = start.saturating_add(size as usize).min(data.len());
                reply.data(&data[start..end]);
            }
            Some(Node::Dir { .. }) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        bytes: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.st();
        let r = (|| {
            st.op()?;
            st.stats.writes += 1;
            match st.nodes.get_mut(&ino.0) {
                Some(Node::File { data, pending, .. }) => {
                    let p = Pending::Write {
                        offset,
                        data: bytes.to_vec(),
                    };
                    apply(data, &p);
                    pending.push(p);
                    Ok(bytes.len() as u32)
                }
                Some(Node::Dir { .. }) => Err(Errno::EISDIR),
                None => Err(Errno::ENOENT),
            }
        })();
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() makes nothing durable.
        match self.st().alive() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        let r = (|| {
            st.sync_op()?;
            st.stats.file_syncs += 1;
            match st.nodes.get_mut(&ino.0) {
                Some(Node::File {
                    data,
                    durable,
                    pending,
                    ..
                }) => {
                    durable.clone_from(data);
                    pending.clear();
                    Ok(())
                }
                Some(Node::Dir {
                    entries, durable, ..
                }) => {
                    durable.clone_from(entries);
                    Ok(())
                }
                None => Err(Errno::ENOENT),
            }
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let st = self.st();
        match st.alive() {
            Ok(()) if matches!(st.nodes.get(&ino.0), Some(Node::Dir { .. })) => {
                reply.opened(FileHandle(0), FopenFlags::empty())
            }
            Ok(()) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = self.st();
        if let Err(e) = st.alive() {
            return reply.error(e);
        }
        let Some(Node::Dir { entries, .. }) = st.nodes.get(&ino.0) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for (name, child) in entries {
            let kind = match st.nodes.get(child) {
                Some(Node::Dir { .. }) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            all.push((*child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), (i + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        let r = (|| {
            st.sync_op()?;
            st.stats.dir_syncs += 1;
            match st.nodes.get_mut(&ino.0) {
                Some(Node::Dir {
                    entries, durable, ..
                }) => {
                    durable.clone_from(entries);
                    Ok(())
                }
                Some(Node::File { .. }) => Err(Errno::ENOTDIR),
                None => Err(Errno::ENOENT),
            }
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(
            1 << 24,
            1 << 23,
            1 << 23,
            1 << 20,
            1 << 19,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }
}

/// A mounted power-cut file system.
pub struct PowerCutFs {
    state: Arc<Mutex<State>>,
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl std::fmt::Debug for PowerCutFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerCutFs")
            .field("mountpoint", &self.mountpoint)
            .finish_non_exhaustive()
    }
}

impl PowerCutFs {
    /// Mounts an empty file system at `mountpoint` (an existing empty
    /// directory) with the given cut plan. Needs `/dev/fuse` and the right to
    /// mount (root, or `fusermount3` on PATH).
    pub fn mount(mountpoint: &Path, plan: CutPlan) -> io::Result<PowerCutFs> {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            1,
            Node::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
                mode: 0o755,
            },
        );
        let state = Arc::new(Mutex::new(State {
            nodes,
            next_ino: 2,
            stats: FsStats::default(),
            plan,
            image: None,
        }));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("minqing-powercut".into()),
            fuser::MountOption::RW,
        ];
        let session = fuser::spawn_mount(
            CutFsInner {
                state: state.clone(),
            },
            mountpoint,
            &config,
        )?;
        Ok(PowerCutFs {
            state,
            session: Some(session),
            mountpoint: mountpoint.to_owned(),
        })
    }

    /// The directory the file system is mounted on.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Counters so far.
    pub fn stats(&self) -> FsStats {
        lock(&self.state).stats
    }

    /// Whether the power has been cut.
    pub fn is_cut(&self) -> bool {
        lock(&self.state).image.is_some()
    }

    /// Cuts the power now (if not already cut).
    pub fn cut_now(&self) {
        lock(&self.state).cut();
    }

    /// Makes everything written so far durable, as if the machine had been
    /// idle long enough for the kernel to write every dirty page and commit
    /// every directory (used after a test's set-up, before the workload whose
    /// durability is under test).
    pub fn settle(&self) {
        let mut st = lock(&self.state);
        for node in st.nodes.values_mut() {
            match node {
                Node::File {
                    data,
                    durable,
                    pending,
                    ..
                } => {
                    durable.clone_from(data);
                    pending.clear();
                }
                Node::Dir {
                    entries, durable, ..
                } => durable.clone_from(entries),
            }
        }
    }

    /// Changes the operation number at which the power is cut (operations
    /// already counted stay counted).
    pub fn set_cut_before_op(&self, op: Option<u64>) {
        lock(&self.state).plan.cut_before_op = op;
    }

    /// Changes the sync number at which the power is cut.
    pub fn set_cut_before_sync(&self, sync: Option<u64>) {
        lock(&self.state).plan.cut_before_sync = sync;
    }

    /// Cuts the power if it is still on, unmounts (every process using the
    /// mount must have exited), and returns what survived.
    pub fn finish(mut self) -> io::Result<(Image, FsStats)> {
        self.cut_now();
        if let Some(session) = self.session.take() {
            session.umount_and_join()?;
        }
        let mut st = lock(&self.state);
        let image = st.image.take().unwrap_or_default();
        Ok((image, st.stats))
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = session.umount_and_join();
        }
    }
}
