//! The index on disk: `manifest.json` naming a dump folder, the dump's own files (slots, live slots,
//! every slot's f32 vector), the atomic swap of a new dump for the old one, and the vectors
//! themselves in memory — a saved index's rows memory-mapped, rows added since owned.
//!
//! The graph's files in a dump (hnsw_rs's and `walk.bin`) are written by [`super::graph`] and
//! [`super::walk`].
//!
//! `vectors.f32`, `walk.bin` and hnsw_rs's `hnsw.hnsw.data` are memory-mapped: a mapped file must
//! never change under the process (a sync tool or another machine truncating it turns the next
//! read of a lost page into SIGBUS, which kills the process). Dumps are written once into a fresh
//! folder and never modified; a library folder on a network or FUSE file system is read into
//! memory instead of mapped ([`may_map`]); the README asks to keep the library folder out of sync
//! tools and network shares (the catalog, SQLite, is safe there; only the index is mapped).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Format 2 added `vectors.f32`: every slot's vector, row after row, little-endian. Format 3 builds
/// the graph over i8 codes (the manifest records their scale) and adds `walk.bin`.
const FORMAT: u32 = 3;
pub(super) const VECTORS_FILE: &str = "vectors.f32";
pub(super) const WALK_FILE: &str = "walk.bin";
const SLOTS_FILE: &str = "slots.bin";
const LIVE_FILE: &str = "live.bin";

#[cfg(target_endian = "big")]
compile_error!("the saved index maps little-endian f32 rows directly");

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Manifest {
    format: u32,
    pub(super) model: String,
    pub(super) dim: usize,
    /// Live vectors.
    pub(super) count: usize,
    pub(super) generation: i64,
    pub(super) last_row: i64,
    pub(super) dump: String,
    /// The i8 codes' scale (format 3).
    #[serde(default)]
    pub(super) scale: f32,
}

impl Manifest {
    /// A manifest of the current format.
    pub(super) fn new(
        model: &str,
        dim: usize,
        count: usize,
        generation: i64,
        last_row: i64,
        dump: String,
        scale: f32,
    ) -> Self {
        Manifest {
            format: FORMAT,
            model: model.to_string(),
            dim,
            count,
            generation,
            last_row,
            dump,
            scale,
        }
    }

    fn path(dir: &Path) -> PathBuf {
        dir.join("manifest.json")
    }

    /// The manifest under `dir`, if it is of this format and for `model` at `dim` dimensions.
    pub(super) fn read(dir: &Path, model: &str, dim: usize) -> Result<Self> {
        let mpath = Self::path(dir);
        let text = std::fs::read_to_string(&mpath).map_err(|e| Error::io(&mpath, e))?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::Index(format!("{}: {e}", mpath.display())))?;
        if m.format != FORMAT || m.model != model || m.dim != dim {
            return Err(Error::Index(format!(
                "{} is for {} ({}-d, format {}), not {model} ({dim}-d, format {FORMAT})",
                mpath.display(),
                m.model,
                m.dim,
                m.format
            )));
        }
        Ok(m)
    }

    /// Swap this manifest in under `dir` (a synced temp file renamed over the old one).
    pub(super) fn write(&self, dir: &Path) -> Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
        serde_json::to_writer_pretty(&mut tmp, self)
            .map_err(|e| Error::Index(format!("manifest: {e}")))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(dir, e))?;
        tmp.persist(Self::path(dir))
            .map_err(|e| Error::io(dir, e.error))?;
        Ok(())
    }
}

/// A fresh, empty dump folder under `dir` (created with `dir`): its name and path.
pub(super) fn new_dump(dir: &Path) -> Result<(String, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dump = format!("dump-{stamp}-{}", std::process::id());
    let dump_dir = dir.join(&dump);
    std::fs::create_dir_all(&dump_dir).map_err(|e| Error::io(&dump_dir, e))?;
    Ok((dump, dump_dir))
}

/// Write the slots (photo id per slot) and the live slots of a dump.
pub(super) fn write_slots(
    dump_dir: &Path,
    slots: &[i64],
    live: &HashMap<i64, usize>,
) -> Result<()> {
    write_i64s(&dump_dir.join(SLOTS_FILE), slots)?;
    let mut live: Vec<i64> = live.values().map(|s| *s as i64).collect();
    live.sort_unstable();
    write_i64s(&dump_dir.join(LIVE_FILE), &live)
}

/// Flush every file of a finished dump to disk.
pub(super) fn sync_dump(dump_dir: &Path) -> Result<()> {
    for f in std::fs::read_dir(dump_dir).map_err(|e| Error::io(dump_dir, e))? {
        let f = f.map_err(|e| Error::io(dump_dir, e))?;
        std::fs::File::open(f.path())
            .and_then(|h| h.sync_all())
            .map_err(|e| Error::io(f.path(), e))?;
    }
    Ok(())
}

/// Delete every dump under `dir` but `keep` (old dumps, and dumps left by a crash, that no manifest
/// names any more).
pub(super) fn remove_other_dumps(dir: &Path, keep: &str) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("dump-") && name != keep {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// What a saved dump holds besides the graph: the photo id of every slot, the live slot of every
/// photo, and every slot's vector (mapped).
pub(super) struct Dump {
    pub(super) slots: Vec<i64>,
    pub(super) live: HashMap<i64, usize>,
    pub(super) vectors: Vectors,
}

/// Read the dump `m` names under `dir`, `None` for an empty index saved without one; its vectors
/// are memory-mapped if `map` (see [`may_map`]), read into memory otherwise. Any problem is an
/// error: the caller rebuilds.
pub(super) fn read_dump(dir: &Path, m: &Manifest, dim: usize, map: bool) -> Result<Option<Dump>> {
    let dump_dir = dir.join(&m.dump);
    if m.count == 0 && !dump_dir.join(SLOTS_FILE).exists() {
        return Ok(None);
    }
    let damaged = |why: String| Error::Index(format!("{}: {why}", dump_dir.display()));
    let slots = read_i64s(&dump_dir.join(SLOTS_FILE))?;
    let live_slots = read_i64s(&dump_dir.join(LIVE_FILE))?;
    if live_slots.len() != m.count || !(m.scale > 0.0 && m.scale.is_finite()) {
        return Err(damaged(format!(
            "{} live slots; the manifest says {} at scale {}",
            live_slots.len(),
            m.count,
            m.scale
        )));
    }
    let mut live = HashMap::with_capacity(live_slots.len());
    for s in live_slots {
        let s = usize::try_from(s)
            .ok()
            .filter(|s| *s < slots.len())
            .ok_or_else(|| damaged(format!("live slot {s} of {}", slots.len())))?;
        // One live slot per photo.
        if live.insert(slots[s], s).is_some() {
            return Err(damaged(format!("photo {} is live twice", slots[s])));
        }
    }
    // The vectors' length is checked before they are mapped or read.
    let vpath = dump_dir.join(VECTORS_FILE);
    let want = slots
        .len()
        .checked_mul(dim)
        .and_then(|n| n.checked_mul(4))
        .ok_or_else(|| damaged(format!("{} slots", slots.len())))?;
    let mut vfile = std::fs::File::open(&vpath).map_err(|e| Error::io(&vpath, e))?;
    let len = vfile.metadata().map_err(|e| Error::io(&vpath, e))?.len();
    if len != want as u64 {
        return Err(damaged(format!(
            "{len} bytes of vectors for {} slots of {dim} dimensions",
            slots.len()
        )));
    }
    let vectors = if map {
        // SAFETY: dumps are written once into a fresh folder and never modified; a folder is only
        // deleted once no manifest names it (Unix keeps a deleted file's pages while mapped). A
        // file truncated behind our back is the module's note on mapping.
        let flat = unsafe { memmap2::Mmap::map(&vfile) }.map_err(|e| Error::io(&vpath, e))?;
        if flat.len() != want || bytemuck::try_cast_slice::<u8, f32>(&flat[..]).is_err() {
            return Err(damaged(format!("{} bytes of vectors mapped", flat.len())));
        }
        Vectors {
            dim,
            mapped: Some(flat),
            mapped_rows: slots.len(),
            owned: Vec::new(),
        }
    } else {
        let mut owned = vec![0f32; want / 4];
        vfile
            .read_exact(bytemuck::cast_slice_mut(&mut owned))
            .map_err(|e| Error::io(&vpath, e))?;
        Vectors {
            dim,
            mapped: None,
            mapped_rows: 0,
            owned,
        }
    };
    Ok(Some(Dump {
        slots,
        live,
        vectors,
    }))
}

/// Every slot's f32 vector: the rows of a saved index memory-mapped, then rows added since, owned.
pub(super) struct Vectors {
    dim: usize,
    mapped: Option<memmap2::Mmap>,
    mapped_rows: usize,
    owned: Vec<f32>,
}

impl Vectors {
    pub(super) fn new(dim: usize) -> Self {
        Vectors {
            dim,
            mapped: None,
            mapped_rows: 0,
            owned: Vec::new(),
        }
    }

    /// The mapped file's rows (checked for alignment and size by the caller).
    fn mapped_f32(&self) -> &[f32] {
        self.mapped
            .as_ref()
            .and_then(|m| bytemuck::try_cast_slice(&m[..]).ok())
            .unwrap_or(&[])
    }

    pub(super) fn row(&self, slot: usize) -> &[f32] {
        if slot < self.mapped_rows {
            &self.mapped_f32()[slot * self.dim..(slot + 1) * self.dim]
        } else {
            let r = slot - self.mapped_rows;
            &self.owned[r * self.dim..(r + 1) * self.dim]
        }
    }

    pub(super) fn push(&mut self, v: &[f32]) {
        self.owned.extend_from_slice(v);
    }

    fn rows(&self) -> usize {
        self.mapped_rows + self.owned.len() / self.dim.max(1)
    }

    /// Hand back the pages of the mapped rows that were read in (they are read back from the page
    /// cache, on demand).
    pub(super) fn release_mapped_pages(&self) {
        if let Some(m) = &self.mapped {
            // SAFETY: a read-only shared file mapping; dropped pages are read back from the file,
            // which is never modified (dumps are written once).
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// Write the vectors of `slots` slots, in slot order, as little-endian f32 rows (the dump's
    /// `vectors.f32`).
    pub(super) fn write(&self, path: &Path, slots: usize) -> Result<()> {
        if self.rows() != slots {
            return Err(Error::Index(format!(
                "{} vectors for {} slots",
                self.rows(),
                slots
            )));
        }
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        for slot in 0..slots {
            w.write_all(bytemuck::cast_slice(self.row(slot)))
                .map_err(|e| Error::io(path, e))?;
        }
        let file = w
            .into_inner()
            .map_err(|e| Error::io(path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path, e))
    }
}

/// A hard link to `from` at `to` (the same file, no copy), or a copy where links are refused.
pub(super) fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| Error::io(from, e))?;
    Ok(())
}

fn write_i64s(path: &Path, v: &[i64]) -> Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Whether the index files under `dir` may be memory-mapped: not on a network or FUSE file system,
/// where another machine or a sync daemon can truncate a file behind our back (a read of a mapped
/// page past the new end kills the process) and a dropped connection turns page faults into
/// SIGBUS. Those are read into memory instead. Where the file system cannot be told, map.
pub(super) fn may_map(dir: &Path) -> bool {
    !remote_fs(dir).unwrap_or(false)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn remote_fs(dir: &Path) -> Option<bool> {
    // statfs(2) magic numbers (linux/magic.h and the file systems' sources).
    const REMOTE: [u32; 12] = [
        0x6969,      // NFS
        0x517B,      // SMB
        0xFF53_4D42, // CIFS
        0xFE53_4D42, // SMB2
        0x6573_5546, // FUSE (sshfs, rclone, cloud drives, …)
        0x0102_1997, // 9P (v9fs: VMs, WSL)
        0x5346_414F, // AFS
        0x6B41_4653, // kAFS
        0x00C3_6400, // Ceph
        0x7375_7245, // Coda
        0x564C,      // NCP
        0x0BD0_0BD0, // Lustre
    ];
    let st = rustix::fs::statfs(dir).ok()?;
    // `f_type` is a signed or unsigned word by architecture; the magic numbers fit in 32 bits.
    Some(REMOTE.contains(&(st.f_type as u32)))
}

#[cfg(target_vendor = "apple")]
fn remote_fs(dir: &Path) -> Option<bool> {
    let st = rustix::fs::statfs(dir).ok()?;
    let name: Vec<u8> = st
        .f_fstypename
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let remote = [
        "nfs", "smbfs", "afpfs", "webdav", "cifs", "macfuse", "osxfuse", "fuse",
    ];
    Some(remote.iter().any(|r| name.starts_with(r.as_bytes())))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn remote_fs(_dir: &Path) -> Option<bool> {
    None
}

fn read_i64s(path: &Path) -> Result<Vec<i64>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() % 8 != 0 {
        return Err(Error::Index(format!("{} is truncated", path.display())));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}
