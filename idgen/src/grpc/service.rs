//! `IdGenService`: the `ringkit.idgen.v1.IdGen` implementation over an [`IdGenerator`].

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use futures::Stream;
use tonic::{Request, Response, Status};

use crate::{Clock, Error, Id, IdGenerator, SystemClock, metrics};

use super::{convert, pb};

/// The largest `NextIds.count` and `StreamIds.chunk_size`: 10,000 IDs are 80 kB on the wire,
/// well under tonic's 4 MB message limit, and about 2.5 ticks of the classic layout.
pub const MAX_BATCH: u32 = 10_000;
/// `StreamIds.chunk_size` when the request leaves it 0: one classic tick's worth.
pub const DEFAULT_CHUNK: u32 = 4_096;

/// The gRPC service. Holds only handles, so clones are cheap and share the generator and counter.
#[derive(Debug)]
pub struct IdGenService<C = SystemClock> {
    /// The generator every call draws from.
    generator: IdGenerator<C>,
    /// IDs handed out since start, for `Info`.
    issued: Arc<AtomicU64>,
}

impl<C> Clone for IdGenService<C> {
    fn clone(&self) -> Self {
        Self {
            generator: self.generator.clone(),
            issued: Arc::clone(&self.issued),
        }
    }
}

impl<C: Clock> IdGenService<C> {
    /// A service over `generator`.
    pub fn new(generator: IdGenerator<C>) -> Self {
        Self {
            generator,
            issued: Arc::new(AtomicU64::new(0)),
        }
    }

    /// IDs handed out by this service since it was created.
    pub fn ids_issued(&self) -> u64 {
        self.issued.load(Ordering::Relaxed)
    }

    /// The generated tonic server wrapping this service.
    pub fn into_server(self) -> pb::id_gen_server::IdGenServer<Self> {
        pb::id_gen_server::IdGenServer::new(self)
    }

    fn count(&self, n: u64) {
        self.issued.fetch_add(n, Ordering::Relaxed);
        ::metrics::counter!(metrics::IDS_ISSUED).increment(n);
    }
}

/// Checks a batch size, naming the accepted range in the error.
fn batch_size(count: u64, what: &str) -> Result<u64, Status> {
    if count == 0 || count > u64::from(MAX_BATCH) {
        let err = Error::InvalidCount {
            count,
            max: u64::from(MAX_BATCH),
        };
        return Err(Status::invalid_argument(format!("{what}: {err}")));
    }
    Ok(count)
}

/// The stream type of `StreamIds`.
pub type IdChunkStream = Pin<Box<dyn Stream<Item = Result<pb::IdChunk, Status>> + Send>>;

#[tonic::async_trait]
impl<C: Clock> pb::id_gen_server::IdGen for IdGenService<C> {
    async fn next_id(
        &self,
        _request: Request<pb::NextIdRequest>,
    ) -> Result<Response<pb::NextIdResponse>, Status> {
        let id = self.generator.next_id().await?;
        self.count(1);
        Ok(Response::new(pb::NextIdResponse { id: id.as_u64() }))
    }

    async fn next_ids(
        &self,
        request: Request<pb::NextIdsRequest>,
    ) -> Result<Response<pb::NextIdsResponse>, Status> {
        let count = batch_size(u64::from(request.get_ref().count), "NextIds.count")?;
        let mut ids = Vec::with_capacity(count as usize);
        self.generator.fill(count, &mut ids).await?;
        self.count(count);
        Ok(Response::new(pb::NextIdsResponse { ids }))
    }

    type StreamIdsStream = IdChunkStream;

    async fn stream_ids(
        &self,
        request: Request<pb::StreamIdsRequest>,
    ) -> Result<Response<Self::StreamIdsStream>, Status> {
        let req = request.into_inner();
        let chunk = match req.chunk_size {
            0 => u64::from(DEFAULT_CHUNK),
            n => batch_size(u64::from(n), "StreamIds.chunk_size")?,
        };
        let total = if req.count == 0 { u64::MAX } else { req.count };
        // Pull-based: tonic polls for the next chunk only when HTTP/2 flow control lets it send,
        // so a slow client stops generation instead of filling a buffer. No task to leak either.
        let stream =
            futures::stream::unfold((self.clone(), total), move |(svc, left)| async move {
                if left == 0 {
                    return None;
                }
                let n = chunk.min(left);
                let mut ids = Vec::with_capacity(n as usize);
                match svc.generator.fill(n, &mut ids).await {
                    Ok(()) => {
                        svc.count(n);
                        Some((Ok(pb::IdChunk { ids }), (svc, left - n)))
                    }
                    Err(e) => Some((Err(Status::from(e)), (svc, 0))),
                }
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn decode(
        &self,
        request: Request<pb::DecodeRequest>,
    ) -> Result<Response<pb::DecodeResponse>, Status> {
        let req = request.get_ref();
        let encoding = convert::encoding(req.encoding)?;
        let id = Id::parse(req.id.trim(), encoding)?;
        let decoded = id.decode(self.generator.layout())?;
        Ok(Response::new(convert::decode_response(id, &decoded)))
    }

    async fn info(
        &self,
        _request: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let info = self.generator.info();
        Ok(Response::new(convert::info_response(
            &info,
            self.ids_issued(),
            MAX_BATCH,
        )))
    }
}
