//! A moto server (the local AWS emulator) for the conformance suites' S3 and SQS runs,
//! started from the project's venv (`scripts/setup.sh` installs it; `scripts/test.sh`
//! runs setup before `cargo test`). A missing venv or moto is a failure that says so,
//! never a skip.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

/// `moto.server` on a free loopback port; killed when dropped.
pub struct MotoServer {
    child: Child,
    pub endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The venv's Python: `$ZRU_VENV/bin/python`, by default `.venv/` in the repository.
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("ZRU_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    venv.join("bin/python")
}

impl MotoServer {
    /// Starts the server and points this process's AWS SDK and object_store settings
    /// at it (endpoint, dummy credentials, region).
    pub fn start() -> Self {
        let python = venv_python();
        let has_moto = Command::new(&python)
            .args(["-c", "import moto.server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            has_moto,
            "{} cannot import moto.server: the conformance suites run their S3 and SQS \
             backends on a moto server from the project's venv. Run `bash scripts/setup.sh` \
             (scripts/test.sh does), or set ZRU_VENV to a venv with `moto[server]`",
            python.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = tempfile::tempdir().expect("moto log dir");
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).expect("moto log");
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(out.try_clone().expect("moto log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto with {}: {e}", python.display()));
        let mut server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("moto exited ({status}) before listening:\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "moto not listening after 60 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for (name, value) in [
            ("AWS_ENDPOINT_URL", server.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
        ] {
            std::env::set_var(name, value);
        }
        server
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
