//! NATS access as docs/security.md prescribes it, against a private
//! nats-server (own port, own store, JetStream on, TLS with certificates
//! made here) running `docs/nats/jetsaga-accounts.conf` as shipped: one
//! user per role, each with its password and its inbox prefix.
//!
//! `jetsaga serve` (the binary), the Rust SDK participant and `jetsaga
//! sagas tail` connect with credentials and TLS and run a saga to the end;
//! a participant publishing another's reply is refused by the broker and
//! changes nothing; a connection without TLS or without credentials is
//! refused.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jetsaga::participant::{self, BoxError};
use jetsaga::secret::Secret;
use jetsaga::transport::jetstream::{JetStreamConfig, JetStreamTransport, NatsConnection};
use jetsaga::transport::ParticipantTransport as _;
use jetsaga::wire::{CommandBody, ReplyBody, StartBody};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};

use crate::infra::{self, Serve};
use crate::sagas_cli::{jetsaga, Tail};
use crate::support::saga_id;

/// The accounts and permissions of the documentation, as shipped.
const ACCOUNTS: &str = include_str!("../../docs/nats/jetsaga-accounts.conf");
/// Longest wait for the private server to listen.
const SERVER_START_MAX: Duration = Duration::from_secs(10);
/// Longest wait for one thing that should happen.
const WAIT: Duration = Duration::from_secs(10);
/// A one-step saga: its only participant is `hotels`.
const STAY: &str = "name = \"stay\"\nversion = 1\n\n[defaults]\ntimeout = \"10s\"\n\n[[steps]]\nname = \"hotel\"\nparticipant = \"hotels\"\naction = \"reserve\"\n";

/// The roles of the shipped configuration.
const ROLES: [&str; 5] = ["orchestrator", "hotels", "cars", "client", "auditor"];

/// A private nats-server with TLS and the shipped accounts; killed on drop.
struct PrivateNats {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl PrivateNats {
    fn start() -> PrivateNats {
        let dir = tempfile::tempdir().expect("temp dir");
        crate::infra::certificates(dir.path(), "jetsaga test CA");
        let port = infra::free_port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let server = format!(
            "listen: 127.0.0.1:{port}\nlog_file: \"{log}\"\njetstream {{ store_dir: \"{store}\" }}\n\
             tls {{ cert_file: \"{cert}\", key_file: \"{key}\", timeout: 2 }}\ninclude ./jetsaga-accounts.conf\n",
            log = path("nats.log"),
            store = path("store"),
            cert = path("cert.pem"),
            key = path("key.pem"),
        );
        std::fs::write(dir.path().join("server.conf"), server).expect("server.conf");
        std::fs::write(dir.path().join("jetsaga-accounts.conf"), ACCOUNTS).expect("accounts");
        let mut command = Command::new("/usr/sbin/nats-server");
        command.args(["-c", &path("server.conf")]).stdout(Stdio::null()).stderr(Stdio::null());
        for role in ROLES {
            std::fs::write(dir.path().join(format!("{role}.password")), password(role)).expect("password file");
            command.env(format!("JETSAGA_{}_PASSWORD", role.to_uppercase()), password(role));
        }
        let child = command.spawn().expect("/usr/sbin/nats-server is needed");
        let mut nats = PrivateNats { dir, child, port };
        nats.wait_until_listening();
        nats
    }

    fn wait_until_listening(&mut self) {
        let until = std::time::Instant::now() + SERVER_START_MAX;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().expect("status") {
                panic!("nats-server exited: {status}; log: {}", self.log());
            }
            assert!(std::time::Instant::now() < until, "nats-server did not listen; log: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.file("nats.log")).unwrap_or_default()
    }

    /// How `role` connects: its user and password, TLS required and the
    /// test's CA trusted, its own inbox prefix.
    fn connection(&self, role: &str) -> NatsConnection {
        NatsConnection {
            user: Some(role.to_owned()),
            password: Some(Secret::new(password(role))),
            tls_ca: Some(self.file("ca.pem")),
            require_tls: true,
            inbox_prefix: Some(format!("_INBOX_{role}")),
            ..NatsConnection::new(self.url())
        }
    }

    /// The environment that makes a `jetsaga` process connect as `role`.
    fn env(&self, role: &str) -> Vec<(&'static str, String)> {
        vec![
            ("NATS_URL", self.url()),
            ("NATS_USER", role.to_owned()),
            ("NATS_PASSWORD_FILE", self.file(&format!("{role}.password")).display().to_string()),
            ("NATS_TLS_CA", self.file("ca.pem").display().to_string()),
            ("NATS_REQUIRE_TLS", "true".to_owned()),
            ("NATS_INBOX_PREFIX", format!("_INBOX_{role}")),
        ]
    }

    async fn attach(&self, connection: NatsConnection) -> Result<JetStreamTransport, jetsaga::transport::TransportError> {
        let config = JetStreamConfig {
            connection,
            connect_attempts_max: 1,
            publish_timeout: Duration::from_secs(1),
            publish_attempts_max: 1,
            ..JetStreamConfig::default()
        };
        JetStreamTransport::attach(config).await
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn password(role: &str) -> String {
    format!("{role}Pw{}", std::process::id())
}

/// `hotels` on the SDK: every command it receives goes to `received`, and
/// it answers `ok` once `go` is true.
fn hotels_service(
    received: mpsc::Sender<CommandBody>,
    go: watch::Receiver<bool>,
) -> impl tower::Service<CommandBody, Response = ReplyBody, Error = BoxError, Future = impl Send> + Clone + Send + 'static {
    tower::service_fn(move |command: CommandBody| {
        let (received, mut go) = (received.clone(), go.clone());
        async move {
            let _ = received.send(command.clone()).await;
            go.wait_for(|go| *go).await?;
            Ok::<_, BoxError>(ReplyBody::ok(&command, Some(json!({"room": 7}))))
        }
    })
}

#[tokio::test]
async fn every_role_connects_with_credentials_and_tls_and_a_forged_reply_is_refused_by_the_broker() {
    let nats = PrivateNats::start();
    let sagas = tempfile::tempdir().expect("temp dir");
    std::fs::write(sagas.path().join("stay.toml"), STAY).expect("definition");
    let database = format!("sqlite://{}", sagas.path().join("jetsaga.db").display());
    let mut env = nats.env("orchestrator");
    env.push(("DATABASE_URL", database));
    let mut serve = Serve::start_with(sagas.path(), &[], &env);
    serve.ready().await;

    let hotels = nats.attach(nats.connection("hotels")).await.expect("hotels connects with its password over TLS");
    let (received_tx, mut received) = mpsc::channel(8);
    let (go_tx, go) = watch::channel(false);
    let commands = hotels.commands("hotels").await.expect("hotels may pull its commands");
    let (stop, stopped) = oneshot::channel::<()>();
    let participant = tokio::spawn(async move {
        participant::serve_commands(hotels, "hotels", commands, hotels_service(received_tx, go), async {
            let _ = stopped.await;
        })
        .await
    });

    let mut tail_command = jetsaga();
    tail_command.args(["sagas", "tail", "--type", "stay"]).envs(nats.env("auditor"));
    let mut tail = Tail::spawn(tail_command).await;

    let client = nats.attach(nats.connection("client")).await.expect("a client connects");
    let id = saga_id(0x5ec);
    client
        .publish_start("stay", &StartBody { saga_id: Some(id.to_string()), input: json!({"guest": "ada"}), key: None, version: None })
        .await
        .expect("start");
    let command = tokio::time::timeout(WAIT, received.recv()).await.expect("hotels got its command in time").expect("a command");
    assert_eq!(command.saga_id, id.to_string());

    // cars answers for hotels: the broker refuses the publish.
    let cars = nats.attach(nats.connection("cars")).await.expect("cars connects");
    let forged = cars.reply("hotels", &ReplyBody::failed(&command, "forged by cars"), None).await;
    assert!(forged.is_err(), "the broker took a reply of cars on hotels' subject");
    let log = nats.log();
    assert!(log.contains("Publish Violation") && log.contains("saga.reply.hotels"), "no violation in the server log:\n{log}");
    // A client may start sagas, and do nothing else.
    assert!(client.reply("hotels", &ReplyBody::failed(&command, "forged by a client"), None).await.is_err());

    go_tx.send(true).expect("hotels waits");
    let mut seen = Vec::new();
    loop {
        let line = tail.line().await;
        assert!(line.contains(&id.to_string()), "{line}");
        assert!(!line.contains("failed") && !line.contains("compensat"), "the forged reply counted: {line}\n{seen:#?}");
        seen.push(line);
        if seen.last().is_some_and(|l| l.contains("saga_completed")) {
            break;
        }
    }
    assert!(seen[0].contains("saga_started"), "{seen:#?}");

    let _ = stop.send(());
    tokio::time::timeout(WAIT, participant).await.expect("hotels stops").expect("joined").expect("hotels served");
    assert!(serve.terminate().success(), "serve stops cleanly");
}

#[tokio::test]
async fn a_connection_without_tls_or_without_credentials_is_refused() {
    let nats = PrivateNats::start();

    let anonymous = NatsConnection { user: None, password: None, ..nats.connection("hotels") };
    let refused = nats.attach(anonymous).await.expect_err("no credentials, no connection").to_string();
    assert!(refused.to_lowercase().contains("authoriz"), "{refused}");
    let wrong = NatsConnection { password: Some(Secret::new("guessed")), ..nats.connection("hotels") };
    assert!(nats.attach(wrong).await.is_err(), "a wrong password is refused");

    // Plain text, right credentials: the server wants TLS and never answers.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", nats.port)).expect("tcp");
    plain.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut info = [0u8; 4096];
    let n = plain.read(&mut info).expect("INFO");
    let info = String::from_utf8_lossy(&info[..n]);
    assert!(info.starts_with("INFO ") && info.contains("\"tls_required\":true"), "{info}");
    let connect = format!("CONNECT {{\"verbose\":false,\"user\":\"hotels\",\"pass\":\"{}\"}}\r\nPING\r\n", password("hotels"));
    let _ = plain.write_all(connect.as_bytes());
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("PONG"), "the server spoke plain text");

    // And a client that requires TLS refuses a server without it.
    let plain = NatsConnection::new(infra::nats_url());
    nats.attach(plain.clone())
        .await
        .unwrap_or_else(|e| panic!("the shared NATS at {} is needed (scripts/services): {e}", infra::nats_url()));
    let strict = NatsConnection { require_tls: true, ..plain };
    assert!(nats.attach(strict).await.is_err(), "require_tls connected to a plain server");
}
