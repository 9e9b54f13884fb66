//! The chunk store: content-defined chunks, named by a keyed hash of their
//! plaintext, compressed then sealed, shared by every snapshot.
//!
//! Chunk boundaries come from FastCDC so that an insertion in a file moves
//! only nearby boundaries; sizes are bounded so no chunk is ever large.

use bytes::Bytes;

use super::model::ChunkRef;
use super::{layout, RepoError, Repository, Result};
use crate::crypto::{header, Dek, Header};
use crate::storage::StorageError;

pub const MIN_CHUNK: u32 = 64 * 1024;
pub const AVG_CHUNK: u32 = 256 * 1024;
pub const MAX_CHUNK: u32 = 1024 * 1024;

/// A chunk cut from a file, hashed and sealed, ready to upload.
pub struct PreparedChunk {
    pub id: String,
    pub len: u64,
    pub sealed: Vec<u8>,
}

/// Cuts `data` into content-defined pieces: (offset, length) pairs.
pub fn cut(data: &[u8]) -> Vec<(usize, usize)> {
    if data.is_empty() {
        return Vec::new();
    }
    fastcdc::v2020::FastCDC::new(data, MIN_CHUNK, AVG_CHUNK, MAX_CHUNK)
        .map(|c| (c.offset, c.length))
        .collect()
}

impl Repository {
    /// The CPU part of storing a chunk whose id (keyed hash) is known:
    /// compress and seal, packaged to
    /// run off the async runtime with `spawn_blocking`.
    pub fn seal_chunk_job(
        &self,
        dek: Dek,
        id: String,
        data: Bytes,
    ) -> impl FnOnce() -> PreparedChunk + Send + 'static {
        let (uuid, compress) = (self.uuid().to_string(), self.compress());
        move || {
            let sealed = super::seal_bytes(&dek, compress, &uuid, &layout::chunk(&id), &data);
            PreparedChunk {
                id,
                len: data.len() as u64,
                sealed,
            }
        }
    }

    /// A reference to a chunk the repository already holds (read from its
    /// header, which names the data key that sealed it), or `None`.
    pub async fn existing_chunk(&self, id: &str, len: u64) -> Result<Option<ChunkRef>> {
        let path = layout::chunk(id);
        match self.store().read_range(&path, 0, header::LEN as u64).await {
            Ok(head) => {
                let h = Header::parse(&path, &head)?;
                Ok(Some(ChunkRef {
                    id: id.to_string(),
                    dek: h.key_id.to_hex(),
                    len,
                }))
            }
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Uploads a prepared chunk unless a chunk with that id exists already.
    /// Returns the number of bytes uploaded (0 when it was there).
    pub async fn put_chunk(&self, dek: &Dek, chunk: PreparedChunk) -> Result<(ChunkRef, u64)> {
        let path = layout::chunk(&chunk.id);
        let size = chunk.sealed.len() as u64;
        let mut r = ChunkRef {
            id: chunk.id,
            dek: dek.id().to_hex(),
            len: chunk.len,
        };
        match self
            .store()
            .write_if_absent(&path, Bytes::from(chunk.sealed))
            .await
        {
            Ok(()) => Ok((r, size)),
            Err(StorageError::AlreadyExists(_)) => {
                // Another snapshot stored these bytes under its own data key:
                // record that key, which cleanup must keep while we refer to it.
                let head = self
                    .store()
                    .read_range(&path, 0, header::LEN as u64)
                    .await?;
                r.dek = Header::parse(&path, &head)?.key_id.to_hex();
                Ok((r, 0))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a chunk and verifies it twice: the authenticated encryption
    /// (header, path and bytes) and the keyed hash of the plaintext.
    pub async fn get_chunk(&self, r: &ChunkRef) -> Result<Vec<u8>> {
        let path = layout::chunk(&r.id);
        let bytes = self.read_sealed(&path).await?;
        let dek = self
            .dek(Header::parse(&path, &bytes)?.key_id, &path)
            .await?;
        let (uuid, chunk_key, expected) =
            (self.uuid().to_string(), self.chunk_key().clone(), r.clone());
        // Decryption, decompression and hashing are CPU work: off the runtime.
        super::cpu::run(move || {
            // Manifests are authenticated, but a length beyond the largest
            // chunk is not worth a buffer: then the frame sizes itself.
            let len = (expected.len <= u64::from(MAX_CHUNK)).then_some(expected.len as usize);
            let plain = super::open_bytes_sized(&dek, &uuid, &path, &bytes, len)?;
            if plain.len() as u64 != expected.len || chunk_key.keyed_hash(&plain) != expected.id {
                return Err(RepoError::ChunkMismatch { path });
            }
            Ok(plain)
        })
        .await
        .map_err(|source| RepoError::Task {
            path: layout::chunk(&r.id),
            source,
        })?
    }
}
