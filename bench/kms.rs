//! KMS benchmark (`bash bench/kms.sh`, which starts OpenBao): the latency
//! of one transit unwrap of a key-encryption key (the cache off), and the
//! time to rotate a repository holding `BENCH_KEYS` (default 10 000) wrapped
//! data keys from a
//! keystore key to a Vault transit key. Runs a real node in-process on the
//! local filesystem; prints a JSON report. Fails without OpenBao.

use std::time::{Duration, Instant};

use serde_json::json;
use snapvault::config::{KmsConfig, MasterKeyService};
use snapvault::crypto::{Kek, Keystore, MasterKey};
use snapvault::kms::Kms;
use snapvault::service::repositories::PutRepository;
use snapvault::service::rotation::{Mode, RotateRequest};
use snapvault::{Config, Node, Overrides};

const UNWRAPS: usize = 300;

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run bash bench/kms.sh"))
}

async fn transit_key(addr: &str, token: &str) -> String {
    let name = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let r = reqwest::Client::new()
        .post(format!("{addr}/v1/transit/keys/{name}"))
        .header("x-vault-token", token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    name
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (addr, token) = (env("SNAPVAULT_TEST_VAULT_ADDR"), env("SNAPVAULT_TEST_VAULT_TOKEN"));
        let transit = transit_key(&addr, &token).await;

        // 1. Unwrap latency, the cache off (every call asks the service).
        let mut ks = Keystore::default();
        ks.set_setting("kms.vault.token", token.clone());
        let service = MasterKeyService::Vault {
            address: addr.clone(),
            mount: "transit".into(),
            key: transit.clone(),
        };
        let kms_config = KmsConfig {
            master_keys: [("vault".to_string(), service)].into_iter().collect(),
            cache: Duration::ZERO,
            timeout: Duration::from_secs(10),
            retries: 0,
        };
        let kms = Kms::new(&kms_config, &ks).unwrap();
        let kek = Kek::generate();
        let wrapped = kms.wrap("vault", &kek, "bench-repo").await.unwrap();
        let mut took = Vec::new();
        for _ in 0..UNWRAPS {
            let t = Instant::now();
            kms.unwrap("vault", "vault", &wrapped.ciphertext, "bench-repo", kek.fingerprint())
                .await
                .unwrap();
            took.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        took.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let (median, p99) = (took[UNWRAPS / 2], took[UNWRAPS * 99 / 100]);

        // 2. Rotation keystore -> Vault of `keys` data keys, then to a new
        //    version of the same transit key.
        let keys: usize = std::env::var("BENCH_KEYS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("snapvault.toml");
        std::fs::write(
            &config_file,
            format!("[master_keys.vault]\nservice = \"vault\"\naddress = \"{addr}\"\nkey = \"{transit}\"\n"),
        )
        .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut ks = Keystore::default();
        ks.insert(MasterKey::generate("default"));
        ks.set_setting("kms.vault.token", token.clone());
        ks.save(&data.join("keystore.json")).unwrap();
        let o = Overrides {
            config_file: Some(config_file),
            data_dir: Some(data),
            ..Default::default()
        };
        let (node, _) = Node::start(Config::load(&o).unwrap()).await.unwrap();
        node.repositories()
            .put(PutRepository {
                name: "repo".into(),
                kind: "fs".into(),
                settings: [("location".to_string(), "repo".to_string())].into_iter().collect(),
                verify: true,
            })
            .await
            .unwrap();
        let open = node.repositories().open("repo").await.unwrap();
        for _ in 0..keys {
            open.repo.new_dek().await.unwrap();
        }
        let req = RotateRequest {
            key_id: "vault".into(),
            mode: Mode::Rewrap,
            data_keys: Vec::new(),
            max_bytes_per_sec: None,
        };
        let rotate = || async {
            let t = Instant::now();
            node.rotation().rotate("repo", &req, true).await.unwrap();
            let secs = t.elapsed().as_secs_f64();
            let state = node.rotation().key_state("repo").await.unwrap();
            let rotation = state.keyring.rotation.unwrap();
            assert_eq!(rotation.phase.as_str(), "completed");
            json!({"data_keys": rotation.done, "seconds": secs,
                "keys_per_sec": rotation.done as f64 / secs})
        };
        let to_vault = rotate().await;
        let r = reqwest::Client::new()
            .post(format!("{addr}/v1/transit/keys/{transit}/rotate"))
            .header("x-vault-token", &token)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let to_new_version = rotate().await;
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "transit_unwrap_ms": {"calls": UNWRAPS, "median": median, "p99": p99},
                "rotation_keystore_to_vault": to_vault,
                "rotation_vault_to_its_new_version": to_new_version,
            }))
            .unwrap()
        );
        node.shutdown(Duration::from_secs(10)).await;
    });
}
