//! A local ringkit deployment in one process: every service on loopback, data in SQLite files,
//! and the KV as a three-node cluster (N=3, R=W=2) gossiping over UDP.
//!
//! This is what `cargo run --release -p ringkit-examples --bin ringkit-local` starts, and what the
//! examples' own test starts on port 0 to prove the README's run command works.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use ringkit_clients::pb::{idgen::v1 as idgen, kv::v1 as kv, ratelimit::v1 as rl};
use ringkit_kv::clock::SystemClock;
use ringkit_kv::cluster::{
    assemble::ClusterNodeConfig, channels::TcpConnector, config::ClusterConfig, node::ClusterNode,
    topology::Member,
};
use ringkit_kv::storage::{SqliteConfig, SqliteStorage};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

/// Where the deployment listens and keeps its data.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Parent of every service's data directory (`idgen/`, `kv/`).
    pub data_dir: PathBuf,
    /// idgen's gRPC address.
    pub idgen: SocketAddr,
    /// ratelimit's gRPC address (ringkit.ratelimit.v1 and Envoy RLS v3).
    pub ratelimit: SocketAddr,
    /// The kv cluster's nodes' gRPC addresses, one node each (`kv-1`, `kv-2`, ...). Each node
    /// gossips over UDP on the same port number (port 0: any free port).
    pub kv: Vec<SocketAddr>,
}

impl Default for LocalConfig {
    /// `./data`, and each server binary's own default port on 127.0.0.1, so that `ringctl` finds
    /// them without flags.
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            idgen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            ratelimit: SocketAddr::from(([127, 0, 0, 1], 50061)),
            kv: [50071, 50072, 50073]
                .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
                .to_vec(),
        }
    }
}

/// The running services. Stop them with [`LocalDeployment::shutdown`].
#[derive(Debug)]
pub struct LocalDeployment {
    /// The addresses actually bound (port 0 in the config becomes a real port here).
    pub addrs: LocalConfig,
    /// Flipped to `true` to stop every server.
    stop: watch::Sender<bool>,
    /// The server tasks, awaited on shutdown so that their errors surface.
    servers: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
    /// Keeps the idgen reservation task alive and persists the high-water mark on shutdown.
    idgen: ringkit_idgen::IdGenHandle<ringkit_idgen::SystemClock>,
}

impl LocalDeployment {
    /// Opens the stores, binds the listeners and starts every service.
    ///
    /// # Errors
    /// A store that cannot be opened or an address already in use, with the path or address named.
    pub async fn start(config: LocalConfig) -> anyhow::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let mut addrs = config.clone();
        let mut servers = Vec::new();

        // idgen: worker 0, high-water mark in data/idgen.
        let idgen_dir = config.data_dir.join("idgen");
        let idgen = tokio::task::spawn_blocking(move || {
            let store =
                ringkit_idgen::SqliteMarkStore::open_dir(&idgen_dir).with_context(|| {
                    format!("opening the idgen mark store in {}", idgen_dir.display())
                })?;
            anyhow::Ok(ringkit_idgen::start(
                ringkit_idgen::GeneratorConfig::default(),
                0,
                ringkit_idgen::SystemClock,
                store,
            )?)
        })
        .await??;
        let listener = bind(config.idgen, "idgen").await?;
        addrs.idgen = listener.local_addr()?;
        let service = ringkit_idgen::grpc::IdGenService::new(idgen.generator());
        let shutdown = until_stopped();
        servers.push((
            "idgen",
            tokio::spawn(async move {
                Ok(ringkit_idgen::grpc::serve_listener(service, listener, shutdown).await?)
            }),
        ));

        // ratelimit: the built-in policy, a local in-memory store.
        use ringkit_ratelimit::{clock, counter, grpc, policy, store};
        let policies =
            policy::Policies::new(policy::parse_policy(policy::DEFAULT_POLICY, "built-in")?);
        let keyed = Arc::new(store::KeyedStore::new(store::StoreConfig::default())?);
        let local = counter::LocalCounter::new(keyed, Arc::new(clock::MonotonicClock::new()));
        let limiter =
            ringkit_ratelimit::RateLimiter::new(Arc::new(policies), counter::Counter::Local(local));
        let listener = bind(config.ratelimit, "ratelimit").await?;
        addrs.ratelimit = listener.local_addr()?;
        let shutdown = until_stopped();
        servers.push((
            "ratelimit",
            tokio::spawn(async move {
                let incoming = TcpListenerStream::new(listener);
                Ok(grpc::serve(limiter, grpc::ServeOptions::default(), incoming, shutdown).await?)
            }),
        ));

        // kv: a three-node cluster, node i in data/kv/kv-i (SQLite, FULL durability). Every
        // socket is bound first so that port 0 works: the member list names the bound addresses.
        let mut sockets = Vec::new();
        for (i, addr) in config.kv.iter().enumerate() {
            let name = format!("kv-{}", i + 1);
            let listener = bind(*addr, &name).await?;
            let udp = tokio::net::UdpSocket::bind(*addr)
                .await
                .with_context(|| format!("binding {name}'s gossip on udp {addr}"))?;
            sockets.push((name, listener, udp));
        }
        let mut members = Vec::new();
        for (name, listener, udp) in &sockets {
            let mut member = Member::new(name.as_str(), listener.local_addr()?.to_string());
            member.gossip_addr = Some(udp.local_addr()?.to_string());
            members.push(member);
        }
        addrs.kv = members
            .iter()
            .map(|m| m.grpc_addr.parse())
            .collect::<Result<_, _>>()?;
        for (name, listener, udp) in sockets {
            let dir = config.data_dir.join("kv").join(&name);
            let store_name = name.clone();
            let store = tokio::task::spawn_blocking(move || {
                SqliteStorage::open(SqliteConfig::new(dir, store_name))
            })
            .await?
            .with_context(|| format!("opening {name}'s store"))?;
            let cluster = ClusterConfig::new(name.as_str(), members.clone());
            let node = ClusterNode::start(
                ClusterNodeConfig::new(cluster),
                store,
                Arc::new(SystemClock),
                Arc::new(TcpConnector::default()),
                Some(udp),
            )
            .with_context(|| format!("starting {name}"))?;
            let shutdown = until_stopped();
            servers.push((
                "kv",
                tokio::spawn(async move { Ok(node.serve_listener(listener, shutdown).await?) }),
            ));
        }

        Ok(Self {
            addrs,
            stop,
            servers,
            idgen,
        })
    }

    /// Calls each service once through the client stubs: an ID, a kv write and read-back, a
    /// rate-limit check. Returns what it saw, one line a service.
    ///
    /// # Errors
    /// The first call that fails, with the service named.
    pub async fn smoke_test(&self) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();

        let channel = ringkit_clients::connect(&self.addrs.idgen.to_string()).await?;
        let id = idgen::id_gen_client::IdGenClient::new(channel)
            .next_id(idgen::NextIdRequest {})
            .await
            .context("idgen NextId")?
            .into_inner()
            .id;
        lines.push(format!("idgen      NextId -> {id}"));

        let (first, last) = match (self.addrs.kv.first(), self.addrs.kv.last()) {
            (Some(first), Some(last)) => (first, last),
            _ => anyhow::bail!("the deployment has no kv node"),
        };
        let channel = ringkit_clients::connect(&first.to_string()).await?;
        kv::kv_client::KvClient::new(channel)
            .put(kv::PutRequest {
                key: "ringkit-local:hello".into(),
                value: "world".into(),
                ..Default::default()
            })
            .await
            .context("kv Put")?;
        // Read through another node: any node coordinates, and the write is on a quorum.
        let channel = ringkit_clients::connect(&last.to_string()).await?;
        let got = kv::kv_client::KvClient::new(channel)
            .get(kv::GetRequest {
                key: "ringkit-local:hello".into(),
                quorum: None,
            })
            .await
            .context("kv Get")?
            .into_inner();
        let values: Vec<_> = got
            .siblings
            .iter()
            .map(|s| String::from_utf8_lossy(&s.value).into_owned())
            .collect();
        lines.push(format!(
            "kv         Put via {first}, Get via {last}: ringkit-local:hello -> {values:?} ({} sibling(s))",
            values.len()
        ));

        let channel = ringkit_clients::connect(&self.addrs.ratelimit.to_string()).await?;
        let checked = rl::rate_limiter_client::RateLimiterClient::new(channel)
            .check(rl::CheckRequest {
                domain: "default".into(),
                descriptors: vec![rl::Descriptor {
                    entries: vec![rl::Entry {
                        key: "key".into(),
                        value: "ringkit-local".into(),
                    }],
                    cost: None,
                }],
                cost: Some(1),
            })
            .await
            .context("ratelimit Check")?
            .into_inner();
        let remaining = checked
            .results
            .first()
            .and_then(|r| r.decision.as_ref())
            .map(|d| format!("{} of {} left", d.remaining, d.limit))
            .unwrap_or_default();
        lines.push(format!(
            "ratelimit  Check default/key=ringkit-local -> {:?}, {remaining}",
            checked.overall_code()
        ));
        Ok(lines)
    }

    /// Stops every server, waits for them, and persists idgen's high-water mark.
    ///
    /// # Errors
    /// The first server that ended with an error.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        let mut first_error = None;
        for (name, task) in self.servers {
            let result = task.await.map_err(anyhow::Error::from).and_then(|r| r);
            if let Err(e) = result {
                first_error.get_or_insert(e.context(format!("{name} server")));
            }
        }
        self.idgen.shutdown_async().await?;
        first_error.map_or(Ok(()), Err)
    }
}

async fn bind(addr: SocketAddr, service: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {service} on {addr} (is another ringkit-local running?)"))
}
