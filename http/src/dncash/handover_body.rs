//! The trigger long poll's 200 body: it holds the trigger's handover until the ATM's answer
//! has been written to the ATM's connection, and so lets the phone's request (which waits for
//! the handover) answer only after that, as the original's order was. A body that is never
//! written (the ATM left) lets go when it is dropped, too.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::web::Bytes;
use cashgrid_actors::engine::trigger::TriggerHandover;

pub struct HandoverBody {
    bytes: Option<Bytes>,
    size: u64,
    handover: Option<TriggerHandover>,
}

impl HandoverBody {
    pub fn new(bytes: Vec<u8>, handover: Option<TriggerHandover>) -> Self {
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        Self { bytes: Some(Bytes::from(bytes)), size, handover }
    }
}

impl MessageBody for HandoverBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.size)
    }

    // `try_into_bytes` keeps its default (refuse): taking the bytes out early would drop the
    // handover before anything was written.
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(self.get_mut().bytes.take().map(Ok))
    }
}

impl Drop for HandoverBody {
    /// actix's HTTP/1 dispatcher drops a finished body and writes its buffer to the socket in
    /// the same poll. Letting go right here would wake the phone's request on another thread
    /// first, which on a busy machine can answer before this thread has written; a task on
    /// this worker's (single-threaded) runtime runs only after that poll, i.e. after the write.
    fn drop(&mut self) {
        let Some(handover) = self.handover.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { drop(handover) });
            }
            Err(_) => drop(handover),
        }
    }
}
