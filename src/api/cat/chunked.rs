//! Answers written as they are produced, for `_cat` tables and snapshot
//! listings: the body goes out in chunks of about [`CHUNK`] bytes, each
//! written from the next rows when hyper asks for more, instead of one
//! buffer holding the whole answer (a listing of 10 000 snapshots is
//! megabytes). An answer that fits in one chunk is sent whole, with its
//! `Content-Length`, as before. What is written is already gathered:
//! nothing here can fail halfway.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Bytes written before a chunk is handed to hyper.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The pieces of a body and how each is written.
struct Chunks<I, F> {
    pieces: I,
    write: F,
    /// The first chunk, written before the answer started.
    first: Option<Vec<u8>>,
    done: bool,
}

impl<I: Iterator, F: FnMut(&mut Vec<u8>, I::Item)> Chunks<I, F> {
    /// Fills `out` up to a chunk; whether the pieces are all written.
    fn fill(&mut self, out: &mut Vec<u8>) -> bool {
        while out.len() < CHUNK {
            match self.pieces.next() {
                Some(piece) => (self.write)(out, piece),
                None => return true,
            }
        }
        false
    }
}

impl<I: Iterator, F: FnMut(&mut Vec<u8>, I::Item)> Iterator for Chunks<I, F> {
    type Item = Result<Bytes, Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first.into()));
        }
        if self.done {
            return None;
        }
        let mut out = Vec::with_capacity(CHUNK + CHUNK / 4);
        self.done = self.fill(&mut out);
        (!out.is_empty()).then(|| Ok(out.into()))
    }
}

/// A body of `pieces`, each appended by `write`, sent as it is written.
pub(crate) fn body<I, F>(pieces: I, write: F) -> Body
where
    I: Iterator + Send + 'static,
    F: FnMut(&mut Vec<u8>, I::Item) + Send + 'static,
{
    let mut chunks = Chunks {
        pieces,
        write,
        first: None,
        done: false,
    };
    let mut first = Vec::new();
    if chunks.fill(&mut first) {
        return Body::from(first);
    }
    chunks.first = Some(first);
    Body::from_stream(futures::stream::iter(chunks))
}

/// A JSON answer: `head`, the items written by `write` (each as one JSON
/// value) and separated by commas, then `tail` (`head` opens the array,
/// `tail` closes it). Bytes equal to serialising the whole document at
/// once.
pub(crate) fn json_array<I, F>(head: Vec<u8>, items: I, mut write: F, tail: Vec<u8>) -> Response
where
    I: Iterator + Send + 'static,
    I::Item: Send,
    F: FnMut(&mut Vec<u8>, I::Item) -> serde_json::Result<()> + Send + 'static,
{
    enum Piece<X> {
        Raw(Vec<u8>),
        Item(X),
    }
    let pieces = std::iter::once(Piece::Raw(head))
        .chain(items.map(Piece::Item))
        .chain(std::iter::once(Piece::Raw(tail)));
    let mut first = true;
    let write = move |out: &mut Vec<u8>, piece: Piece<I::Item>| match piece {
        Piece::Raw(bytes) => out.extend_from_slice(&bytes),
        Piece::Item(item) => {
            let start = out.len();
            if !first {
                out.push(b',');
            }
            match write(out, item) {
                Ok(()) => first = false,
                // Our answer types always serialise; were one not to, the
                // answer stays valid JSON without it.
                Err(e) => {
                    out.truncate(start);
                    tracing::error!(error = %e, "an item of a listing did not serialise");
                }
            }
        }
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        body(pieces, write),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body's exact length when it is known before it is sent (what
    /// hyper sends as `Content-Length`), and its bytes.
    async fn collect(resp: Response) -> (Option<u64>, Vec<u8>) {
        use axum::body::HttpBody;
        let body = resp.into_body();
        let length = body.size_hint().exact();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (length, bytes.to_vec())
    }

    #[tokio::test]
    async fn a_streamed_array_is_the_document_serialised_at_once() {
        for n in [0usize, 1, 3, 20_000] {
            let items: Vec<serde_json::Value> = (0..n)
                .map(|i| serde_json::json!({"name": format!("s-{i}"), "n": i}))
                .collect();
            let whole =
                serde_json::to_vec(&serde_json::json!({"items": items, "total": n})).unwrap();
            let resp = json_array(
                b"{\"items\":[".to_vec(),
                items.clone().into_iter(),
                |out, v| serde_json::to_writer(out, &v),
                format!("],\"total\":{n}}}").into_bytes(),
            );
            let (length, streamed) = collect(resp).await;
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(whole.clone()).unwrap()
            );
            // Small answers keep their length; large ones are chunked.
            assert_eq!(length.is_some(), whole.len() < CHUNK, "{n} items");
        }
    }

    #[test]
    fn chunks_hold_about_a_chunk_each_and_lose_nothing() {
        let line = vec![b'x'; 1000];
        let mut chunks = Chunks {
            pieces: std::iter::repeat_n(line, 300),
            write: |out: &mut Vec<u8>, l: Vec<u8>| out.extend_from_slice(&l),
            first: None,
            done: false,
        };
        let sizes: Vec<usize> = chunks.by_ref().map(|c| c.unwrap().len()).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 300_000);
        assert!(
            sizes[..sizes.len() - 1]
                .iter()
                .all(|&s| (CHUNK..CHUNK + 1000).contains(&s)),
            "{sizes:?}"
        );
    }
}
