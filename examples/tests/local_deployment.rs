//! The README's run command, on port 0 in a temporary directory: every service starts, answers
//! through the client stubs, stops, and starts again on the same data.

use std::net::SocketAddr;

use ringkit_examples::local::{LocalConfig, LocalDeployment};

fn on_port_zero(dir: &std::path::Path) -> LocalConfig {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    LocalConfig {
        data_dir: dir.to_path_buf(),
        idgen: any,
        ratelimit: any,
        kv: vec![any; 3],
    }
}

#[tokio::test]
async fn every_service_answers_and_restarts_on_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = LocalDeployment::start(on_port_zero(dir.path()))
        .await
        .unwrap();
    let lines = deployment.smoke_test().await.unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].contains(r#"["world"]"#), "{lines:?}");
    assert!(lines[2].contains("Ok"), "{lines:?}");
    deployment.shutdown().await.unwrap();

    assert!(dir.path().join("idgen").is_dir());
    for node in ["kv-1", "kv-2", "kv-3"] {
        assert!(dir.path().join("kv").join(node).is_dir(), "{node}");
    }

    // Restart on the same files. The smoke test writes without a context, so its second write is
    // concurrent with the first one, which survived the restart: both are kept as siblings.
    let deployment = LocalDeployment::start(on_port_zero(dir.path()))
        .await
        .unwrap();
    let lines = deployment.smoke_test().await.unwrap();
    assert!(lines[1].contains("2 sibling(s)"), "{lines:?}");
    deployment.shutdown().await.unwrap();
}
