//! Real services for the tests: NATS JetStream and PostgreSQL, each test
//! isolated by a unique subject prefix (so its own streams) and a fresh
//! schema. Absent services fail the test loudly, naming `scripts/services`.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jetsaga::store::PostgresStore;
use jetsaga::transport::jetstream::{JetStreamConfig, JetStreamTransport, NatsConnection};
use jetsaga::wire::Subjects;

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A name no other test (or test run, even with the same pid) uses:
/// `<tag>_<pid>_<n>_<ms of the run's start, mod 10^6>`.
pub fn unique(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static RUN: OnceLock<u128> = OnceLock::new();
    let run = RUN.get_or_init(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() % 1_000_000));
    format!("{tag}_{}_{}_{run}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A PostgreSQL store in a fresh schema, migrated.
pub async fn postgres(schema: &str) -> PostgresStore {
    let url = database_url();
    PostgresStore::connect_schema(&url, schema)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed (run scripts/services): {e}"))
}

/// The database URL that makes a separate process use `schema`.
pub fn schema_url(schema: &str) -> String {
    format!("{}?options=-csearch_path%3D{schema}", database_url())
}

/// The configuration of a JetStream transport under its own prefix (own streams).
pub fn nats_config(prefix: &str) -> JetStreamConfig {
    JetStreamConfig {
        connection: NatsConnection::new(nats_url()),
        prefix: Subjects::new(prefix),
        connect_attempts_max: 2,
        stream_max_bytes: STREAM_MAX_BYTES,
        ..JetStreamConfig::default()
    }
}

/// Bytes each test stream may keep: the server reserves this per stream
/// from its storage, and many tests run at once.
pub const STREAM_MAX_BYTES: i64 = 16 * 1024 * 1024;

/// A JetStream transport under its own prefix (own streams).
pub async fn nats(prefix: &str, ack_wait: Duration) -> JetStreamTransport {
    let config = JetStreamConfig { ack_wait, ..nats_config(prefix) };
    JetStreamTransport::connect(config)
        .await
        .unwrap_or_else(|e| panic!("NATS JetStream at {} is needed (run scripts/services): {e}", nats_url()))
}

/// A `jetsaga serve` child process.
pub struct Serve {
    child: Child,
    pub port: u16,
}

impl Serve {
    /// Starts `jetsaga serve` on a free port against `schema` and `prefix`.
    pub fn start(sagas: &std::path::Path, schema: &str, prefix: &str, ack_wait: &str) -> Serve {
        let env = [("NATS_URL", nats_url()), ("DATABASE_URL", schema_url(schema)), ("JETSAGA_SUBJECT_PREFIX", prefix.to_owned())];
        Self::start_with(sagas, &["--ack-wait", ack_wait], &env)
    }

    /// Starts `jetsaga serve` on a free port with more `args` and `env`
    /// (which name the broker and the database).
    pub fn start_with(sagas: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> Serve {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_jetsaga"))
            .args(["serve", "--sagas", sagas.to_str().expect("utf-8"), "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("JETSAGA_STREAM_MAX_BYTES", STREAM_MAX_BYTES.to_string())
            .env("JETSAGA_OPS_TOKEN", crate::support::TOKEN)
            .env("JETSAGA_LOG", "warn")
            .envs(env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("jetsaga serve starts");
        Serve { child, port }
    }

    /// How the process ended, if it did within `wait`.
    pub async fn exited_within(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let until = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < until {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&mut self) {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!("jetsaga serve exited early: {status}");
            }
            if self.http_get("/readyz").await.is_ok_and(|(status, _)| status == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("jetsaga serve did not become ready");
    }

    /// SIGKILL: no shutdown of any kind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, without waiting.
    pub fn sigterm(&self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.sigterm();
        self.child.wait().expect("child exits")
    }

    /// `GET path`, body as text.
    pub async fn get(&self, path: &str) -> String {
        self.http_get(path).await.map(|(_, text)| text).unwrap_or_default()
    }

    async fn http_get(&self, path: &str) -> Result<(u16, String), String> {
        crate::support::http("GET", &format!("http://127.0.0.1:{}{path}", self.port), None, None).await
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A CA named `ca_name`, and a certificate it signs for localhost and
/// 127.0.0.1: the PEM files `ca.pem`, `cert.pem` and `key.pem` in `dir`.
pub fn certificates(dir: &std::path::Path, ca_name: &str) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, ca_name);
    let ca_key = KeyPair::generate().expect("a CA key");
    let ca = ca_params.self_signed(&ca_key).expect("a CA");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("a key");
    let params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &issuer).expect("a certificate");
    for (name, pem) in [("ca.pem", ca.pem()), ("cert.pem", cert.pem()), ("key.pem", key.serialize_pem())] {
        std::fs::write(dir.join(name), pem).expect("a PEM file written");
    }
}
