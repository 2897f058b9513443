//! The response body type and helpers to build and read bodies.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};

/// A boxed error inside a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the data plane writes.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON body.
pub fn json(value: &impl serde::Serialize) -> Body {
    full(serde_json::to_vec(value).unwrap_or_default())
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Over the limit.
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
    /// The connection failed.
    #[error("cannot read the body: {0}")]
    Io(BoxError),
}

/// Reads a whole body of at most `limit` bytes.
pub async fn read_limited<B>(body: B, limit: u64) -> Result<Bytes, ReadError>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(ReadError::TooLarge(limit))
            } else {
                Err(ReadError::Io(e))
            }
        }
    }
}
