//! Three real `kv-server` processes in cluster mode on loopback: one is killed with SIGKILL and
//! restarted on its data directory, another is frozen with SIGSTOP and resumed. Writes at W=2
//! go on throughout, no acknowledged write is lost, and both nodes catch up (hints, then
//! anti-entropy). And a fourth process joins: it takes its share of the partitions, and the
//! old holders drop the rows they handed off. Bounded in time; every process is stopped, also
//! when the test fails.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use ringkit_kv::grpc::pb::kv_client::KvClient;
use ringkit_kv::grpc::pb::{GetRequest, PutRequest, Quorum, StatsRequest};
use tonic::transport::Channel;

/// Upper bound on the test.
const TEST_BOUND: Duration = Duration::from_secs(120);

/// Kills the process if the test stops half-way.
struct ServerProcess(Child);

impl ServerProcess {
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill {sig}: {e}"));
        assert!(status.success(), "kill {sig} failed");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A stopped process must be resumed to die of SIGTERM; SIGKILL needs nothing.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stops every process with SIGTERM and waits for each.
fn stop_all(procs: Vec<ServerProcess>) {
    for p in &procs {
        p.signal("-TERM");
    }
    for mut p in procs {
        let _ = p.0.wait();
    }
}

/// A free loopback port (bound, read, released; the server binds it right after).
fn free_port(udp: bool) -> u16 {
    let port = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    port.unwrap_or_else(|e| panic!("port: {e}")).port()
}

/// Starts member `i` and waits until it listens; its output is drained on a thread.
fn start(i: usize, members: &str, grpc: &str, dir: &Path) -> ServerProcess {
    start_with(i, members, grpc, dir, &[])
}

/// [`start`] with more `kv-server` arguments.
fn start_with(i: usize, members: &str, grpc: &str, dir: &Path, extra: &[&str]) -> ServerProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kv-server"))
        .args(["--node-id", &format!("n{i}"), "--listen", grpc])
        .args(["--metrics-listen", "off", "--durability", "normal"])
        .args(["--cluster-members", members])
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn kv-server: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("kv-server listening on ") => break,
            Some(Ok(_)) => {}
            other => panic!("n{i} ended before listening: {other:?}"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    ServerProcess(child)
}

async fn connect(addr: &str) -> KvClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("uri: {e}"))
        .connect_lazy();
    KvClient::new(channel)
}

fn quorum(r: u32, w: u32) -> Option<Quorum> {
    Some(Quorum {
        n: 3,
        r,
        w,
        mode: 0,
    })
}

/// Writes `keys` at W=2 through `client`, retrying UNAVAILABLE (a node just died and gossip has
/// not noticed yet); panics if a key cannot be acknowledged within a few seconds.
async fn write_all(client: &mut KvClient<Channel>, keys: &[String]) {
    for k in keys {
        let mut tries = 0;
        loop {
            let put = PutRequest {
                key: Bytes::from(k.clone()),
                value: Bytes::from(k.clone()),
                quorum: quorum(2, 2),
                ..Default::default()
            };
            match client.put(put).await {
                Ok(_) => break,
                Err(s) if s.code() == tonic::Code::Unavailable && tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(s) => panic!("put {k}: {s}"),
            }
        }
    }
}

/// Keys stored by the node at `client` (0 if it does not answer).
async fn keys_held(client: &mut KvClient<Channel>) -> u64 {
    client
        .stats(StatsRequest {})
        .await
        .map_or(0, |s| s.into_inner().keys)
}

/// Waits until the node at `client` stores `rows` keys.
async fn wait_rows(client: &mut KvClient<Channel>, rows: u64, what: &str) {
    let mut last = 0;
    for _ in 0..400 {
        if let Ok(s) = client.stats(StatsRequest {}).await {
            last = s.into_inner().keys;
            if last == rows {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: holds {last} of {rows} keys");
}

/// Reads every key at R=3 through `client` (node `node`): each holds exactly its own value.
async fn all_read_back(client: &mut KvClient<Channel>, keys: &[String], node: &str) {
    for k in keys {
        let r = client
            .get(GetRequest {
                key: Bytes::from(k.clone()),
                quorum: quorum(3, 2),
            })
            .await
            .unwrap_or_else(|s| panic!("get {k} through {node}: {s}"))
            .into_inner();
        assert!(r.found, "{k} lost (read through {node})");
        assert_eq!(r.siblings.len(), 1, "{k}");
        assert_eq!(r.siblings[0].value, Bytes::from(k.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_sigstop_lose_no_acknowledged_write() {
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")))
        .collect();
    let grpc: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port(false)))
        .collect();
    let members = (0..3)
        .map(|i| format!("n{i}={}/127.0.0.1:{}", grpc[i], free_port(true)))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs: Vec<ServerProcess> = (0..3)
        .map(|i| start(i, &members, &grpc[i], dirs[i].path()))
        .collect();
    tokio::time::timeout(TEST_BOUND, async {
        let mut c0 = connect(&grpc[0]).await;
        let mut c1 = connect(&grpc[1]).await;
        let keys: Vec<String> = (0..150).map(|i| format!("key-{i:03}")).collect();
        write_all(&mut c0, &keys[..50]).await;

        // n2 dies without warning; writes through n0 and n1 go on.
        procs[2].signal("-KILL");
        write_all(&mut c0, &keys[50..75]).await;
        write_all(&mut c1, &keys[75..100]).await;

        // n2 restarts on its data directory and catches up on what it missed.
        procs[2] = start(2, &members, &grpc[2], dirs[2].path());
        let mut c2 = connect(&grpc[2]).await;
        wait_rows(&mut c2, 100, "restarted n2").await;

        // n1 freezes (a partition, as far as the others can tell); writes go on, and n1
        // catches up once it resumes.
        procs[1].signal("-STOP");
        write_all(&mut c0, &keys[100..150]).await;
        procs[1].signal("-CONT");
        wait_rows(&mut c1, 150, "resumed n1").await;
        wait_rows(&mut c2, 150, "n2").await;
        wait_rows(&mut c0, 150, "n0").await;

        // Every acknowledged write is there, read at R=3 through each node.
        for (i, c) in [&mut c0, &mut c1, &mut c2].into_iter().enumerate() {
            all_read_back(c, &keys, &format!("n{i}")).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
    stop_all(procs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_takes_its_share_and_the_old_holders_drop_theirs() {
    let dirs: Vec<tempfile::TempDir> = (0..5)
        .map(|_| tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}")))
        .collect();
    // Partitions leave a holder when their transfer completes; their rows go 1 s later.
    let config = dirs[4].path().join("kv.toml");
    std::fs::write(&config, "[cluster]\nleftover_grace_secs = 1\n")
        .unwrap_or_else(|e| panic!("config: {e}"));
    let config = config.to_string_lossy().into_owned();
    let extra = ["--config", config.as_str()];
    let grpc: Vec<String> = (0..4)
        .map(|_| format!("127.0.0.1:{}", free_port(false)))
        .collect();
    let gossip: Vec<String> = (0..4)
        .map(|_| format!("127.0.0.1:{}", free_port(true)))
        .collect();
    let member = |i: usize| format!("n{i}={}/{}", grpc[i], gossip[i]);
    let founders = (0..3).map(member).collect::<Vec<_>>().join(",");
    let mut procs: Vec<ServerProcess> = (0..3)
        .map(|i| start_with(i, &founders, &grpc[i], dirs[i].path(), &extra))
        .collect();
    tokio::time::timeout(TEST_BOUND, async {
        let mut clients = Vec::new();
        for addr in &grpc {
            clients.push(connect(addr).await);
        }
        let keys: Vec<String> = (0..300).map(|i| format!("key-{i:03}")).collect();
        write_all(&mut clients[0], &keys).await;
        for (i, c) in clients.iter_mut().take(3).enumerate() {
            wait_rows(c, 300, &format!("n{i} before the join")).await;
        }

        // n3 starts alone and joins through n1; its share streams to it.
        let joining = [
            extra.as_slice(),
            &[
                "--join",
                grpc[1].as_str(),
                "--gossip-seeds",
                gossip[0].as_str(),
            ],
        ]
        .concat();
        procs.push(start_with(
            3,
            &member(3),
            &grpc[3],
            dirs[3].path(),
            &joining,
        ));

        // Every key ends on exactly three nodes: n3 holds its share, the others dropped theirs.
        let mut held = Vec::new();
        for _ in 0..600 {
            held.clear();
            for c in clients.iter_mut() {
                held.push(keys_held(c).await);
            }
            if held[3] > 0 && held.iter().sum::<u64>() == 3 * 300 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(held.iter().sum::<u64>(), 900, "rows per node: {held:?}");
        assert!(
            held.iter().all(|&h| h > 0 && h < 300),
            "each of four nodes holds a share: {held:?}"
        );

        // Nothing was lost on the way: every key reads back at R=3 through the newcomer.
        all_read_back(&mut clients[3], &keys, "n3").await;
        println!("rows per node after the join: {held:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("test exceeded {TEST_BOUND:?}"));
    stop_all(procs);
}
