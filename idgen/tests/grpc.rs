//! The gRPC service against a real server on 127.0.0.1:0: every RPC, bad inputs, health,
//! back-pressure on StreamIds, and a clean shutdown.

use std::{net::SocketAddr, time::Duration};

use ringkit_idgen::{
    GeneratorConfig, Id, IdGenHandle, Layout, MemoryMarkStore, SystemClock,
    grpc::{IdGenService, MAX_BATCH, pb, serve_listener},
    start,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Code, transport::Channel};

type Client = pb::id_gen_client::IdGenClient<Channel>;

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<ringkit_idgen::Result<()>>,
    handle: IdGenHandle<SystemClock>,
}

async fn server() -> Server {
    let handle = start(
        GeneratorConfig::default(),
        9,
        SystemClock,
        MemoryMarkStore::new(),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let service = IdGenService::new(handle.generator());
    let task = tokio::spawn(serve_listener(service, listener, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        stop,
        task,
        handle,
    }
}

impl Server {
    async fn client(&self) -> Client {
        Client::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .unwrap()
            .unwrap();
        self.handle.shutdown_async().await.unwrap();
    }
}

#[tokio::test]
async fn next_id_and_batches_are_strictly_increasing() {
    let srv = server().await;
    let mut c = srv.client().await;
    let a = c
        .next_id(pb::NextIdRequest {})
        .await
        .unwrap()
        .into_inner()
        .id;
    let batch = c
        .next_ids(pb::NextIdsRequest { count: 5_000 })
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert_eq!(batch.len(), 5_000);
    assert!(a < batch[0]);
    assert!(batch.windows(2).all(|w| w[0] < w[1]));
    let max = c
        .next_ids(pb::NextIdsRequest { count: MAX_BATCH })
        .await
        .unwrap()
        .into_inner()
        .ids;
    assert_eq!(max.len(), MAX_BATCH as usize);
    let d = Id::new(a).unwrap().decode(&Layout::classic()).unwrap();
    assert_eq!(d.worker, 9);
    srv.stop().await;
}

#[tokio::test]
async fn bad_counts_are_invalid_argument_with_the_range() {
    let srv = server().await;
    let mut c = srv.client().await;
    for count in [0, MAX_BATCH + 1] {
        let err = c.next_ids(pb::NextIdsRequest { count }).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(
            err.message().contains("between 1 and 10000"),
            "{}",
            err.message()
        );
    }
    let err = c
        .stream_ids(pb::StreamIdsRequest {
            count: 10,
            chunk_size: MAX_BATCH + 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("chunk_size"));
    srv.stop().await;
}

#[tokio::test]
async fn stream_ids_sends_packed_increasing_chunks_and_ends() {
    let srv = server().await;
    let mut c = srv.client().await;
    let mut stream = c
        .stream_ids(pb::StreamIdsRequest {
            count: 10_500,
            chunk_size: 1_000,
        })
        .await
        .unwrap()
        .into_inner();
    let mut sizes = Vec::new();
    let mut last = 0;
    while let Some(chunk) = stream.message().await.unwrap() {
        assert!(chunk.ids[0] > last);
        assert!(chunk.ids.windows(2).all(|w| w[0] < w[1]));
        last = *chunk.ids.last().unwrap();
        sizes.push(chunk.ids.len());
    }
    assert_eq!(sizes.iter().sum::<usize>(), 10_500);
    assert_eq!(sizes.len(), 11);
    assert_eq!(sizes[10], 500);
    srv.stop().await;
}

#[tokio::test]
async fn an_unread_stream_stops_generating() {
    let srv = server().await;
    // A client that advertises 64 KiB HTTP/2 windows (hyper's default is 2 MiB per stream).
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", srv.addr))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut c = Client::new(channel);
    let mut info = srv.client().await;
    // Unbounded stream; read one chunk, then stop reading.
    let mut stream = c
        .stream_ids(pb::StreamIdsRequest {
            count: 0,
            chunk_size: 1_000,
        })
        .await
        .unwrap()
        .into_inner();
    stream.message().await.unwrap().unwrap();
    // Give an unbounded producer time to run away (it would reach ~1M IDs in 300 ms) ...
    tokio::time::sleep(Duration::from_millis(300)).await;
    let issued = info
        .info(pb::InfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .ids_issued;
    eprintln!("issued {issued} IDs to a client that read 1,000");
    // ... but flow control holds it to what fits the 64 KiB window plus the transport's buffers:
    // a few dozen 8 kB chunks.
    assert!(
        issued < 100_000,
        "issued {issued} IDs to a client that read 1,000"
    );
    drop(stream);
    srv.stop().await;
}

#[tokio::test]
async fn decode_accepts_every_encoding_and_refuses_malformed_ids() {
    let srv = server().await;
    let mut c = srv.client().await;
    let id = c
        .next_id(pb::NextIdRequest {})
        .await
        .unwrap()
        .into_inner()
        .id;
    let text = Id::new(id).unwrap();
    for (s, encoding) in [
        (text.to_string(), pb::Encoding::Unspecified),
        (
            text.base32().to_string().to_lowercase(),
            pb::Encoding::Base32,
        ),
        (text.base62().to_string(), pb::Encoding::Base62),
    ] {
        let d = c
            .decode(pb::DecodeRequest {
                id: s,
                encoding: encoding as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(d.id, id);
        assert_eq!(d.worker, 9);
        assert!(d.timestamp.ends_with('Z'));
        assert_eq!(d.decimal, text.to_string());
    }
    for (bad, encoding, needle) in [
        ("", pb::Encoding::Decimal, "empty"),
        ("12ab", pb::Encoding::Decimal, "invalid character"),
        ("-5", pb::Encoding::Decimal, "invalid character"),
        ("99999999999999999999", pb::Encoding::Decimal, "64 bits"),
        ("9223372036854775808", pb::Encoding::Decimal, "top bit"),
        ("U0", pb::Encoding::Base32, "invalid character"),
        ("zzzzzzzzzzzz", pb::Encoding::Base62, "too long"),
    ] {
        let err = c
            .decode(pb::DecodeRequest {
                id: bad.into(),
                encoding: encoding as i32,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert!(err.message().contains(needle), "{bad}: {}", err.message());
    }
    let err = c
        .decode(pb::DecodeRequest {
            id: "1".into(),
            encoding: 42,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("unknown encoding"));
    srv.stop().await;
}

#[tokio::test]
async fn info_and_health_describe_the_server() {
    let srv = server().await;
    let mut c = srv.client().await;
    c.next_ids(pb::NextIdsRequest { count: 7 }).await.unwrap();
    let info = c.info(pb::InfoRequest {}).await.unwrap().into_inner();
    let layout = info.layout.unwrap();
    assert_eq!(
        (layout.name.as_str(), layout.time_bits, layout.worker_bits),
        ("classic", 41, 10)
    );
    assert_eq!(layout.epoch_unix_millis, 1_288_834_974_657);
    assert_eq!(info.worker, 9);
    assert_eq!(info.end_of_life, "2080-07-10T17:30:30.209Z");
    assert_eq!(info.ids_issued, 7);
    assert_eq!(info.max_batch, MAX_BATCH);
    assert!(info.high_water_mark_unix_millis > chrono::Utc::now().timestamp_millis());

    let channel = Channel::from_shared(format!("http://{}", srv.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ringkit.idgen.v1.IdGen".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_request_id_layers_work_on_a_tonic_server() {
    use ringkit_idgen::SnowflakeRequestId;
    use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

    let handle = start(
        GeneratorConfig::default(),
        21,
        SystemClock,
        MemoryMarkStore::new(),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .layer(SetRequestIdLayer::x_request_id(SnowflakeRequestId::new(
            handle.generator(),
        )))
        .layer(PropagateRequestIdLayer::x_request_id())
        .add_service(IdGenService::new(handle.generator()).into_server())
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async {
                let _ = stopped.await;
            },
        );
    let task = tokio::spawn(server);

    let mut client = Client::connect(format!("http://{addr}")).await.unwrap();
    let response = client.next_id(pb::NextIdRequest {}).await.unwrap();
    let header = response
        .metadata()
        .get("x-request-id")
        .expect("x-request-id in the response");
    let request_id: Id = header.to_str().unwrap().parse().unwrap();
    let issued = response.into_inner().id;
    // Both came from worker 21's generator, the request id first.
    assert_eq!(request_id.decode(&Layout::classic()).unwrap().worker, 21);
    assert!(request_id.as_u64() < issued);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    handle.shutdown_async().await.unwrap();
}

/// A client that connects and then says nothing (a crashed host, a bare TCP health probe) must
/// not keep a stopping server from stopping: tonic's graceful shutdown waits for every
/// connection, so the server stops waiting after `DRAIN_GRACE`.
#[tokio::test]
async fn a_silent_connection_cannot_hold_a_stopping_server() {
    let server = server().await;
    let silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // The server accepts in order: once a later client has an answer, the silent connection
    // has been accepted too (else stopping would only leave it in the listen queue).
    let mut c = server.client().await;
    c.info(pb::InfoRequest {}).await.unwrap();
    drop(c);
    let _ = server.stop.send(());
    let bound = ringkit_idgen::grpc::DRAIN_GRACE + Duration::from_secs(20);
    let stopped = tokio::time::timeout(bound, server.task).await;
    assert!(
        stopped.is_ok(),
        "the server was still draining {bound:?} after it was asked to stop"
    );
    server.handle.shutdown_async().await.unwrap();
    drop(silent);
}
