//! A real S3-compatible object store for the tests: a one-node Garage (crates.io `garage`,
//! installed by scripts/test.sh; `LEAKTRACE_GARAGE` names the binary, else `garage` on the
//! PATH), started per test on free loopback ports with one bucket and one key.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Garage {
    child: Child,
    binary: PathBuf,
    config: PathBuf,
    _dir: tempfile::TempDir,
    pub endpoint: String,
    pub bucket: String,
    key_id: String,
    secret: String,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("address").port()
}

impl Garage {
    pub fn start() -> Garage {
        let binary = std::env::var_os("LEAKTRACE_GARAGE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("garage"));
        let dir = tempfile::tempdir().expect("temp dir");
        let (s3, rpc) = (free_port(), free_port());
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let config = dir.path().join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{meta}\"\ndata_dir = \"{data}\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\nrpc_bind_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\n\
                 [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\n\
                 root_domain = \".s3.garage.localhost\"\n",
                meta = dir.path().join("meta").display(),
                data = dir.path().join("data").display(),
            ),
        )
        .expect("garage.toml");
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Garage ({}: {e}); scripts/test.sh installs it, or set \
                     LEAKTRACE_GARAGE to its binary",
                    binary.display()
                )
            });
        let mut garage = Garage {
            child,
            binary,
            config,
            _dir: dir,
            endpoint: format!("http://127.0.0.1:{s3}"),
            bucket: "leaktrace".into(),
            key_id: String::new(),
            secret: String::new(),
        };
        // The node's id, then its RPC up; then one layout, one bucket, one key.
        let deadline = Instant::now() + Duration::from_secs(30);
        let node = loop {
            let out = garage.cli(&["node", "id", "-q"]);
            if out.status.success() {
                break String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_string();
            }
            assert!(Instant::now() < deadline, "Garage did not start");
            std::thread::sleep(Duration::from_millis(100));
        };
        // `node id` reads the node's key file, which exists before its RPC listens: wait for
        // the node to answer over RPC before the first command that needs it.
        while !garage.cli(&["status"]).status.success() {
            assert!(Instant::now() < deadline, "Garage's RPC did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        garage.ok(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
        garage.ok(&["layout", "apply", "--version", "1"]);
        garage.ok(&["bucket", "create", "leaktrace"]);
        let key = garage.ok(&["key", "create", "leaktrace-test"]);
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("{name} not in: {key}"))
        };
        garage.key_id = field("Key ID:");
        garage.secret = field("Secret key:");
        garage.ok(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "leaktrace",
            "--key",
            "leaktrace-test",
        ]);
        garage
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.binary)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("garage CLI")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "garage {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The settings that put a deployment's titles in this bucket under `prefix`.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        [
            (
                "LEAKTRACE_STORAGE_URL",
                format!("s3://{}/{prefix}", self.bucket),
            ),
            ("LEAKTRACE_STORAGE_ENDPOINT", self.endpoint.clone()),
            ("LEAKTRACE_STORAGE_REGION", "garage".into()),
            ("AWS_ACCESS_KEY_ID", self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// [`Garage::env`] plus the secrets every machine of one deployment shares (they are not
    /// in the bucket): one deployment per `prefix`.
    pub fn deployment(&self, prefix: &str) -> Vec<(String, String)> {
        let mut env = self.env(prefix);
        env.extend(deployment_secrets(prefix));
        env
    }

    /// Every object key in the bucket.
    pub fn keys(&self) -> Vec<String> {
        let dir = tempfile::tempdir().expect("temp dir");
        self.storage(dir.path(), 1 << 30)
            .list("")
            .expect("list the bucket")
    }

    /// The bucket as a data dir `data` sees it, keeping `cache_bytes` of fetched files.
    pub fn storage(&self, data: &std::path::Path, cache_bytes: u64) -> storage::Storage {
        let settings = storage::Settings {
            url: Some(format!("s3://{}", self.bucket)),
            endpoint: Some(self.endpoint.clone()),
            region: "garage".into(),
            cache_bytes,
            credentials: Some((self.key_id.clone(), self.secret.clone())),
        };
        storage::Storage::open(&settings, data).expect("open the bucket")
    }

    /// Stops the server (the bucket becomes unreachable).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The JWT and master keys of a deployment named `name` (fixed test values, distinct per name).
pub fn deployment_secrets(name: &str) -> Vec<(String, String)> {
    let hex = |salt: &str| {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(format!("{salt}:{name}")))
    };
    vec![
        ("LEAKTRACE_JWT_SECRET".into(), hex("jwt")),
        ("LEAKTRACE_MASTER_KEY".into(), hex("master")),
    ]
}
