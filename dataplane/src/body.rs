//! The body types (requests' and responses') and helpers to build and read bodies.

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};

/// A boxed error inside a body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response the data plane writes.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// The body of every request the handlers get: whole when the connection had read it all
/// with the head (the public port's common case), read as it is polled otherwise.
#[derive(Debug)]
pub enum RequestBody {
    /// The whole body (`None`: empty).
    Full(Option<Bytes>),
    /// Read by the public port's connection as the handler asks for it.
    Streamed(crate::server::h1::StreamedBody),
    /// hyper's (the admin and metrics ports).
    Hyper(hyper::body::Incoming),
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        use std::task::Poll;
        match self.get_mut() {
            RequestBody::Full(bytes) => {
                Poll::Ready(bytes.take().map(|b| Ok(http_body::Frame::data(b))))
            }
            RequestBody::Streamed(body) => body.poll_frame(cx),
            RequestBody::Hyper(body) => std::pin::Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Full(bytes) => bytes.is_none(),
            RequestBody::Streamed(body) => body.is_end_stream(),
            RequestBody::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            RequestBody::Full(bytes) => {
                http_body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            RequestBody::Streamed(_) => http_body::SizeHint::default(),
            RequestBody::Hyper(body) => body.size_hint(),
        }
    }
}

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

/// Reads a whole request body of at most `limit` bytes (a whole one without the
/// collecting machinery).
pub async fn read_request(body: RequestBody, limit: u64) -> Result<Bytes, ReadError> {
    match body {
        RequestBody::Full(bytes) => {
            let bytes = bytes.unwrap_or_default();
            if bytes.len() as u64 > limit {
                return Err(ReadError::TooLarge(limit));
            }
            Ok(bytes)
        }
        body => read_limited(body, limit).await,
    }
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
