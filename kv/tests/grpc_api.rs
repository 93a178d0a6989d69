//! The gRPC API against a real server on 127.0.0.1:0: normal use, every kind of bad input,
//! health, reflection, and graceful shutdown.

use std::sync::Arc;

use bytes::Bytes;
use ringkit_kv::clock::SystemClock;
use ringkit_kv::grpc::pb::kv_client::KvClient;
use ringkit_kv::grpc::pb::{self, scan_request::Bounds};
use ringkit_kv::grpc::serve_listener;
use ringkit_kv::node::{KvNode, NodeConfig};
use ringkit_kv::storage::{SqliteConfig, SqliteStorage, StorageExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::transport::Channel;

/// A running server and what it takes to stop it.
struct Server {
    addr: std::net::SocketAddr,
    client: KvClient<Channel>,
    channel: Channel,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ringkit_kv::error::KvError>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(config: NodeConfig) -> Server {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        Self::start_in(dir, config).await
    }

    async fn start_in(dir: tempfile::TempDir, config: NodeConfig) -> Server {
        let store = SqliteStorage::open(SqliteConfig::new(dir.path(), "grpc-test"))
            .unwrap_or_else(|e| panic!("open: {e}"));
        let node = KvNode::new(store, config, Arc::new(SystemClock))
            .unwrap_or_else(|e| panic!("node: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_listener(node, listener, async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap_or_else(|e| panic!("uri: {e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        Server {
            addr,
            client: KvClient::new(channel.clone())
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            channel,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .unwrap_or_else(|e| panic!("join: {e}"))
                .unwrap_or_else(|e| panic!("serve: {e}"));
        }
        self._dir
    }
}

fn put_req(key: &str, value: &[u8], context: &Bytes) -> pb::PutRequest {
    pb::PutRequest {
        key: Bytes::from(key.to_owned()),
        value: Bytes::copy_from_slice(value),
        context: context.clone(),
        ..Default::default()
    }
}

fn get_req(key: &str) -> pb::GetRequest {
    pb::GetRequest {
        key: Bytes::from(key.to_owned()),
        quorum: None,
    }
}

/// Asserts a call failed with `code` and a message containing `needle`.
fn expect<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    needle: &str,
) {
    let status = r.err().unwrap_or_else(|| panic!("expected {code:?}"));
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "{:?} lacks {needle:?}",
        status.message()
    );
}

fn values(r: &pb::GetResponse) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = r.siblings.iter().map(|s| s.value.to_vec()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn put_get_siblings_resolve_and_delete() {
    let server = Server::start(NodeConfig::new("n1")).await;
    let mut c = server.client.clone();
    let none = Bytes::new();
    c.put(put_req("cart", b"apple", &none))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.put(put_req("cart", b"pear", &none))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let read = c
        .get(get_req("cart"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(read.found);
    assert_eq!(values(&read), vec![b"apple".to_vec(), b"pear".to_vec()]);

    let merged = c
        .put(put_req("cart", b"apple+pear", &read.context))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(merged.sibling_count, 1);
    let read = c
        .get(get_req("cart"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(values(&read), vec![b"apple+pear".to_vec()]);

    let del = pb::DeleteRequest {
        key: Bytes::from_static(b"cart"),
        context: read.context,
        quorum: None,
    };
    let del = c
        .delete(del)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(del.remaining_siblings, 0);
    let read = c
        .get(get_req("cart"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(!read.found);
    assert!(!read.context.is_empty(), "a tombstone still has a context");

    let stats = c
        .stats(pb::StatsRequest {})
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(
        (stats.keys, stats.tombstones, stats.durability.as_str()),
        (1, 1, "full")
    );
    assert!(stats.writer.is_some_and(|w| w.commits >= 4));
    server.stop().await;
}

#[tokio::test]
async fn bad_inputs_are_invalid_argument_with_actionable_messages() {
    let server = Server::start(NodeConfig::new("n1")).await;
    let mut c = server.client.clone();
    let none = Bytes::new();

    let long_key = "k".repeat(1025);
    expect(
        c.put(put_req(&long_key, b"v", &none)).await,
        Code::InvalidArgument,
        "limit of 1024 bytes",
    );
    expect(
        c.get(get_req(&long_key)).await,
        Code::InvalidArgument,
        "limit of 1024 bytes",
    );
    expect(
        c.put(put_req("", b"v", &none)).await,
        Code::InvalidArgument,
        "empty",
    );
    let big = vec![0u8; (1 << 20) + 1];
    expect(
        c.put(put_req("k", &big, &none)).await,
        Code::InvalidArgument,
        "limit of 1048576 bytes",
    );

    // Contexts: garbage, truncated, and one read from a different key.
    expect(
        c.put(put_req("k", b"v", &Bytes::from_static(b"\x01garbage")))
            .await,
        Code::InvalidArgument,
        "context",
    );
    let ctx = c
        .put(put_req("a", b"v", &none))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner()
        .context;
    expect(
        c.put(put_req("k", b"v", &ctx)).await,
        Code::InvalidArgument,
        "different key",
    );
    expect(
        c.put(put_req("a", b"v", &ctx.slice(..ctx.len() - 1))).await,
        Code::InvalidArgument,
        "context",
    );
    let del = pb::DeleteRequest {
        key: Bytes::from_static(b"a"),
        context: Bytes::from_static(b"\xff"),
        quorum: None,
    };
    expect(
        c.delete(del).await,
        Code::InvalidArgument,
        "context version",
    );

    // Scans: page size 0 and too large, a forged cursor, a cursor from another scan.
    let scan = |prefix: &str, cursor: Bytes, page_size: u32| pb::ScanRequest {
        bounds: Some(Bounds::Prefix(Bytes::from(prefix.to_owned()))),
        cursor,
        page_size,
        ..Default::default()
    };
    expect(
        c.scan(scan("a", none.clone(), 0)).await,
        Code::InvalidArgument,
        "page size 0",
    );
    expect(
        c.scan(scan("a", none.clone(), 5000)).await,
        Code::InvalidArgument,
        "use 1 to 1000",
    );
    expect(
        c.scan(scan("a", Bytes::from_static(b"not a cursor"), 10))
            .await,
        Code::InvalidArgument,
        "cursor",
    );
    for i in 0..3 {
        c.put(put_req(&format!("p/{i}"), b"v", &none))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let page = c
        .scan(scan("p/", none.clone(), 1))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert!(!page.next_cursor.is_empty());
    expect(
        c.scan(scan("q/", page.next_cursor.clone(), 1)).await,
        Code::InvalidArgument,
        "different scan",
    );
    let range = pb::ScanRequest {
        bounds: Some(Bounds::Range(pb::KeyRange {
            start: Bytes::from_static(b"z"),
            end: Bytes::from_static(b"a"),
        })),
        page_size: 1,
        ..Default::default()
    };
    expect(c.scan(range).await, Code::InvalidArgument, "range start");

    // Quorum and enums.
    let mut bad_quorum = get_req("a");
    bad_quorum.quorum = Some(pb::Quorum {
        n: 1,
        r: 2,
        ..Default::default()
    });
    expect(c.get(bad_quorum).await, Code::InvalidArgument, "r <= n");
    let mut bad_mode = put_req("a", b"v", &none);
    bad_mode.mode = 99;
    expect(c.put(bad_mode).await, Code::InvalidArgument, "write mode");
    expect(
        c.batch_get(pb::BatchGetRequest {
            keys: vec![],
            quorum: None,
        })
        .await,
        Code::InvalidArgument,
        "at least one",
    );

    // Nothing stored was harmed: "a" still has exactly its one value.
    let a = c
        .get(get_req("a"))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(values(&a), vec![b"v".to_vec()]);
    server.stop().await;
}

#[tokio::test]
async fn scan_pages_through_everything_once() {
    let server = Server::start(NodeConfig::new("n1")).await;
    let mut c = server.client.clone();
    let items = (0..25)
        .map(|i| pb::BatchPutItem {
            key: Bytes::from(format!("user/{i:03}")),
            value: Bytes::from_static(b"x"),
            ..Default::default()
        })
        .chain([pb::BatchPutItem {
            key: Bytes::from_static(b"zzz"),
            ..Default::default()
        }])
        .collect();
    let r = c
        .batch_put(pb::BatchPutRequest {
            items,
            quorum: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(r.results.len(), 26);
    let mut seen = Vec::new();
    let mut cursor = Bytes::new();
    loop {
        let req = pb::ScanRequest {
            bounds: Some(Bounds::Prefix(Bytes::from_static(b"user/"))),
            cursor,
            page_size: 7,
            keys_only: true,
            quorum: None,
        };
        let page = c
            .scan(req)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        assert!(page.entries.len() <= 7);
        assert!(
            page.entries
                .iter()
                .all(|e| e.siblings.is_empty() && !e.context.is_empty())
        );
        seen.extend(page.entries.into_iter().map(|e| e.key));
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    let expected: Vec<Bytes> = (0..25)
        .map(|i| Bytes::from(format!("user/{i:03}")))
        .collect();
    assert_eq!(seen, expected);
    server.stop().await;
}

#[tokio::test]
async fn batch_put_fails_items_alone_and_sibling_limit_is_failed_precondition() {
    let mut config = NodeConfig::new("n1");
    config.limits.siblings.warn = 2;
    config.limits.siblings.max = 3;
    let server = Server::start(config).await;
    let mut c = server.client.clone();
    let items = vec![
        pb::BatchPutItem {
            key: Bytes::from_static(b"ok1"),
            value: Bytes::from_static(b"1"),
            ..Default::default()
        },
        pb::BatchPutItem {
            key: Bytes::from_static(b"bad"),
            value: Bytes::from_static(b"1"),
            context: Bytes::from_static(b"junk"),
            ..Default::default()
        },
        pb::BatchPutItem {
            key: Bytes::from_static(b"ok2"),
            value: Bytes::from_static(b"2"),
            ..Default::default()
        },
    ];
    let r = c
        .batch_put(pb::BatchPutRequest {
            items,
            quorum: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    use pb::batch_put_result::Outcome;
    let kinds: Vec<Option<i32>> = r
        .results
        .iter()
        .map(|r| match &r.outcome {
            Some(Outcome::Ok(_)) => None,
            Some(Outcome::Error(e)) => Some(e.code),
            None => Some(-1),
        })
        .collect();
    assert_eq!(kinds, vec![None, Some(Code::InvalidArgument as i32), None]);
    let got = c
        .batch_get(pb::BatchGetRequest {
            keys: vec![
                Bytes::from_static(b"ok1"),
                Bytes::from_static(b"bad"),
                Bytes::from_static(b"ok2"),
            ],
            quorum: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(
        got.results.iter().map(|r| r.found).collect::<Vec<_>>(),
        vec![true, false, true]
    );

    let none = Bytes::new();
    for _ in 0..3 {
        c.put(put_req("hot", b"x", &none))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let err = c
        .put(put_req("hot", b"x", &none))
        .await
        .err()
        .unwrap_or_else(|| panic!("limit"));
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("4 siblings (limit 3)"),
        "{}",
        err.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn health_serves_and_shutdown_drains_to_disk() {
    let server = Server::start(NodeConfig::new("n1")).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ringkit.kv.v1.Kv".to_owned(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let mut c = server.client.clone();
    let writes: Vec<_> = (0..50)
        .map(|i| {
            let mut c = c.clone();
            tokio::spawn(async move {
                c.put(put_req(&format!("k{i}"), b"v", &Bytes::new()))
                    .await
                    .map(|_| ())
            })
        })
        .collect();
    for w in writes {
        w.await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    c.put(put_req("last", b"v", &Bytes::new()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = server.stop().await;

    // Reopen the files directly: everything acknowledged is there.
    let store = SqliteStorage::open(SqliteConfig::new(dir.path(), "grpc-test"))
        .unwrap_or_else(|e| panic!("reopen: {e}"));
    let rows = store
        .read_blocking(|v| v.stats())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rows.rows, 51);
    // And the node-id check refuses to open it under another name.
    drop(store);
    let err = SqliteStorage::open(SqliteConfig::new(dir.path(), "someone-else")).err();
    assert!(err.is_some_and(|e| e.to_string().contains("belongs to node")));
}

/// A client that connects and then says nothing (its host hung, or a partition cut it off) must
/// not hold a stopping server: graceful HTTP/2 shutdown waits for every connection to close,
/// and this one never would. The server stops waiting after `DRAIN_GRACE`.
#[tokio::test]
async fn a_silent_connection_cannot_hold_a_stopping_server() {
    let server = Server::start(NodeConfig::new("n1")).await;
    let silent = tokio::net::TcpStream::connect(server.addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let bound = ringkit_kv::grpc::DRAIN_GRACE + std::time::Duration::from_secs(20);
    let stopped = tokio::time::timeout(bound, server.stop()).await;
    assert!(
        stopped.is_ok(),
        "the server was still draining {bound:?} after it was asked to stop"
    );
    drop(silent);
}
