//! How a client reaches one broker: over gRPC on a connection ([`Transport::Remote`]), or, for
//! the broker in this same process whose RESP listener the client serves, by calling that
//! broker's service directly ([`Transport::Local`]: the same handler and the same protobuf
//! codec, without HTTP/2, sockets or a hop to another thread). Everything above this type —
//! retries, batching, error meanings — is the same either way.

use crate::broker::LocalKv;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::transport::Channel;

/// One broker's transport.
#[derive(Clone)]
pub enum Transport {
    /// A gRPC connection.
    Remote(Channel),
    /// The broker in this process.
    Local(LocalKv),
}

/// An error from either transport.
pub type TransportError = Box<dyn std::error::Error + Send + Sync>;

/// A call in progress on either transport.
pub type TransportFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, TransportError>> + Send>>;

impl Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = TransportError;
    type Future = TransportFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        match self {
            Transport::Remote(c) => c.poll_ready(cx).map_err(Into::into),
            Transport::Local(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        match self {
            Transport::Remote(c) => {
                let call = c.call(req);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Transport::Local(l) => l.call(req),
        }
    }
}
